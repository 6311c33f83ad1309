"""Router test helpers: publish events as the ingress does, set hooks, read deliveries."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from sayna_sip.common import contracts, topology
from sayna_sip.common.contracts import Header
from sayna_sip.common.hook import Hook
from sayna_sip.common.hosts import host_token
from sayna_sip.router.app import RouterService


def ingress_headers(event: dict[str, Any]) -> dict[str, str]:
    """The headers the ingress puts on an LK_EVENTS message."""
    return {
        Header.MSG_ID: event["id"],
        Header.EVENT_ID: event["id"],
        Header.EVENT: event["event"],
        Header.ROOM: (event.get("room") or {}).get("name", ""),
        Header.RECEIVED_AT: f"{time.time():.6f}",
    }


async def publish_event(js: JetStreamContext, event: dict[str, Any]) -> bytes:
    """Store `event` in LK_EVENTS as the ingress does; returns the exact body."""
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = ingress_headers(event)
    subject = contracts.lk_event_subject(event["event"], headers[Header.ROOM])
    await publish_raw(js, body, headers, subject)
    return body


async def publish_raw(
    js: JetStreamContext, body: bytes, headers: dict[str, str], subject: str
) -> None:
    await js.publish(subject, body, headers=headers, stream=topology.LK_EVENTS)


async def put_hook(js: JetStreamContext, host: str, url: str | None = None) -> None:
    kv = await js.key_value(topology.HOOKS_BUCKET)
    record = Hook.new(host, url or f"https://hooks.test/{host_token(host)}", "runtime")
    await kv.put(host_token(host), record.encode())


async def delete_hook(js: JetStreamContext, host: str) -> None:
    kv = await js.key_value(topology.HOOKS_BUCKET)
    await kv.delete(host_token(host))


async def take_deliveries(js: JetStreamContext, n: int, timeout: float = 5.0) -> list[Msg]:
    """Fetch (and ack) `n` messages from SIP_DELIVERIES, as the forwarders' durable."""
    sub = await js.pull_subscribe_bind(topology.FORWARDER_CONSUMER, stream=topology.SIP_DELIVERIES)
    got: list[Msg] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"only {len(got)} of {n} deliveries within {timeout}s")
            try:
                batch = await sub.fetch(n - len(got), timeout=left)
            except TimeoutError:
                continue
            for msg in batch:
                await msg.ack()
            got.extend(batch)
    finally:
        await sub.unsubscribe()
    return got


async def stored_deliveries(js: JetStreamContext) -> int:
    return (await js.stream_info(topology.SIP_DELIVERIES)).state.messages


async def drained(js: JetStreamContext, timeout: float = 5.0) -> None:
    """Wait until the router's durables have acked (or terminated) everything in LK_EVENTS.

    JetStream has no event for "consumer caught up", so this polls their info.
    """
    deadline = time.monotonic() + timeout
    while True:
        infos = [
            await js.consumer_info(topology.LK_EVENTS, name) for name in topology.ROUTER_CONSUMERS
        ]
        if all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos):
            return
        if time.monotonic() > deadline:
            busy = [i for i in infos if i.num_pending or i.num_ack_pending]
            raise AssertionError(f"router did not drain LK_EVENTS: {busy}")
        await asyncio.sleep(0.02)


async def router_backlog(js: JetStreamContext) -> tuple[int, int, int]:
    """(ack pending, pending, redelivered) summed over the router's durables."""
    infos = [await js.consumer_info(topology.LK_EVENTS, n) for n in topology.ROUTER_CONSUMERS]
    return (
        sum(i.num_ack_pending for i in infos),
        sum(i.num_pending for i in infos),
        sum(i.num_redelivered for i in infos),
    )


def headers_of(msg: Msg) -> dict[str, str]:
    assert msg.headers is not None, f"message on {msg.subject} has no headers"
    return msg.headers


def clean_env() -> dict[str, str]:
    """This environment without sayna-sip settings, so a child reads only its YAML."""
    ours = ("SIP_", "NATS_", "LIVEKIT_", "AUTH_", "ROUTER_", "LOG_", "HOST", "PORT")
    return {k: v for k, v in os.environ.items() if not k.startswith(ours)}


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll `condition` (reconnects, reloads and counters announce themselves to no one)."""
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


def events_counted(router: RouterService, outcome: str) -> float:
    """The router's `sayna_sip_router_events_total` for one outcome (0 before any)."""
    value = router.registry.get_sample_value("sayna_sip_router_events_total", {"outcome": outcome})
    return value or 0.0
