"""Delivery-contract properties a tenant or an operator would feel if they broke, checked
end to end (real nats-server, real HTTPS sinks, a forwarder started as the CLI does):
redirects, a hook the watch has not shown yet, the compatibility signature's key, the
attempt's own timestamp, the unsigned-at-start warning, and SSRF with a mixed DNS answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from standardwebhooks import Webhook

from sayna_sip.common import hookstore, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.contracts import DeadReason, Header
from sayna_sip.common.hook import EndpointEntry, HookEntry
from tests.fixtures.https_sink import HttpsSink, Reply
from tests.forwarder.conftest import (
    StartForwarder,
    drained,
    forwarder_env,
    publish,
    put_hook,
    wait_dead,
)

NEW = "the-new-secret-of-32-characters!"
OLD = "the-old-secret-of-32-characters!"
WHSEC = "whsec_" + base64.b64encode(b"w" * 32).decode()


def sayna_hmac(secret: str, headers: dict[str, str], body: bytes) -> str:
    """`X-Sayna-Signature` as a receiver written against the original computes it, with
    the configured secret string as the key."""
    signed = f"v1:{headers['x-sayna-timestamp']}:{headers['x-sayna-event-id']}:".encode() + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_failures_and_never_followed(
    status: int, start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    target = https_sink.url("/elsewhere")
    https_sink.program("/moved", then=Reply(status, headers={"Location": target}))
    await put_hook(jetstream, "moved.example.com", https_sink.url("/moved"))
    await start_forwarder(SIP_RETRY_SCHEDULE="0s,100ms")

    await publish(jetstream, "moved.example.com")

    (dead,) = await wait_dead(jetstream, 1)
    h = dead.headers or {}
    assert (h[Header.DEAD_REASON], h[Header.LAST_STATUS]) == (DeadReason.EXHAUSTED, str(status))
    assert len(https_sink.received("/moved")) == 2  # retried like any other failure
    assert https_sink.received("/elsewhere") == []  # the Location was never requested


class _FrozenWatch:
    """A KV watch that replays the bucket once and then hears of no change: the moment
    between a hook's write and its watch update, held open."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._replayed = False

    async def updates(self, timeout: float = 5.0) -> Any:
        if self._replayed:
            await asyncio.Event().wait()
        entry = await self._real.updates(timeout)
        self._replayed = entry is None
        return entry

    def __aiter__(self) -> _FrozenWatch:
        return self

    async def __anext__(self) -> Any:
        return await self.updates()

    async def stop(self) -> None:
        await self._real.stop()


@pytest.fixture
def frozen_watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every `sip_hooks` watch opened from now on goes quiet after its initial replay."""
    real_watchall = KeyValue.watchall

    async def watchall(kv: KeyValue, **kwargs: Any) -> _FrozenWatch:
        return _FrozenWatch(await real_watchall(kv, **kwargs))

    monkeypatch.setattr(KeyValue, "watchall", watchall)
    yield


async def test_a_hook_the_watch_has_not_shown_yet_is_read_from_kv(
    frozen_watch: None,
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
) -> None:
    await start_forwarder()
    await put_hook(jetstream, "fresh.example.com", https_sink.url("/fresh"))

    event_id, body = await publish(jetstream, "fresh.example.com")

    (got,) = await https_sink.wait_for(1, "/fresh")
    assert (got.headers["webhook-id"], got.body) == (event_id, body)
    await drained(jetstream)
    assert await wait_dead(jetstream, 0, timeout=0) == []  # not dead-lettered as removed


async def test_compat_signature_uses_the_configured_whsec_string_and_the_current_secret(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    static = [{"host": "w.example.com", "url": https_sink.url("/w"), "secret": WHSEC}]
    await put_hook(jetstream, "w.example.com", https_sink.url("/w"))
    await put_hook(jetstream, "rot.example.com", https_sink.url("/rot"))
    # Rotation: the first secret listed is the current one, the second the old one.
    await start_forwarder(SIP_HOOKS_JSON=json.dumps(static), SIP_HOOK_SECRET=f"{NEW} {OLD}")

    await publish(jetstream, "w.example.com")
    await publish(jetstream, "rot.example.com")

    (w,) = await https_sink.wait_for(1, "/w")
    (rot,) = await https_sink.wait_for(1, "/rot")
    assert w.headers["x-sayna-signature"] == sayna_hmac(WHSEC, w.headers, w.body)
    assert Webhook(WHSEC).verify(w.body, w.headers) is not None  # base64 key for this one
    assert rot.headers["x-sayna-signature"] == sayna_hmac(NEW, rot.headers, rot.body)
    for secret in (NEW, OLD):  # both Standard Webhooks signatures verify during the overlap
        assert Webhook(secret.encode()).verify(rot.body, rot.headers) is not None


async def test_webhook_timestamp_is_the_attempt_time_not_the_receive_time(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    await put_hook(jetstream, "late.example.com", https_sink.url("/late"))
    await start_forwarder(SIP_HOOK_SECRET=NEW)

    # Received ten minutes ago (a retry, a redrive, a backlog): receivers reject
    # timestamps more than 5 minutes off, so the signature must carry the time of sending.
    await publish(jetstream, "late.example.com", received_at=time.time() - 600)

    (got,) = await https_sink.wait_for(1, "/late")
    assert abs(int(got.headers["webhook-timestamp"]) - got.at) < 5
    assert got.headers["x-sayna-timestamp"] == got.headers["webhook-timestamp"]
    assert Webhook(NEW.encode()).verify(got.body, got.headers) is not None  # within ±5 min


def _unsigned_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "unsigned" in r.getMessage().lower()
    ]


async def test_warns_once_at_start_when_deliveries_go_out_unsigned(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sayna_sip")
    await put_hook(jetstream, "open.example.com", https_sink.url("/open"))
    await start_forwarder()
    assert len(_unsigned_warnings(caplog)) == 1  # at start, before any delivery

    for _ in range(3):
        await publish(jetstream, "open.example.com")
    got = await https_sink.wait_for(3, "/open")
    assert not any("webhook-signature" in r.headers for r in got)
    assert len(_unsigned_warnings(caplog)) == 1  # once, not per delivery


async def test_no_unsigned_warning_when_a_secret_signs(
    start_forwarder: StartForwarder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sayna_sip")
    await start_forwarder(SIP_HOOK_SECRET=NEW)
    assert _unsigned_warnings(caplog) == []


# --- SSRF: a name whose DNS answer mixes a refused and a permitted address ----------------

MIXED = "mixed.hooks.test"
REFUSED = "127.0.0.2"  # loopback: refused, since only 127.0.0.1/32 is allowed below
PERMITTED = "127.0.0.1"


@pytest.fixture
async def mixed_sink(test_ca: tuple[trustme.CA, Path]) -> AsyncIterator[HttpsSink]:
    """An HTTPS sink on 127.0.0.1 whose certificate names `MIXED`."""
    sink = HttpsSink(*test_ca)
    await sink.start(cert_hosts=(MIXED,))
    yield sink
    await sink.stop()


@pytest.fixture
async def refused_listener(mixed_sink: HttpsSink) -> AsyncIterator[list[str]]:
    """A TCP listener on the refused address and the sink's port that records every
    connection made to it (there must be none)."""
    seen: list[str] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(str(writer.get_extra_info("peername")))
        writer.close()

    server = await asyncio.start_server(accept, REFUSED, mixed_sink.port)
    yield seen
    server.close()
    await server.wait_closed()


@pytest.fixture
def mixed_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """`MIXED` resolves to the refused address first, then the permitted one."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != MIXED:
            return real(host, port, *args, **kwargs)
        p = int(port or 0)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, p))
            for a in (REFUSED, PERMITTED)
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


async def test_a_name_resolving_to_a_refused_and_a_permitted_address_never_dials_the_refused(
    mixed_dns: None,
    refused_listener: list[str],
    mixed_sink: HttpsSink,
    start_forwarder: StartForwarder,
    jetstream: JetStreamContext,
) -> None:
    await put_hook(jetstream, "mixed.example.com", mixed_sink.url("/m", host=MIXED))
    await start_forwarder(
        SIP_HOOK_ALLOW_NETWORKS=f"{PERMITTED}/32", SIP_HOOK_CA_BUNDLE=str(mixed_sink.ca_path)
    )

    event_id, _ = await publish(jetstream, "mixed.example.com")

    (got,) = await mixed_sink.wait_for(1, "/m")
    assert got.headers["webhook-id"] == event_id  # delivered through the checked address
    await drained(jetstream)
    assert refused_listener == []  # not one connection to the refused address


async def test_a_delivery_of_the_previous_release_goes_to_the_default_endpoint_only(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    # A hook with two endpoints; a SIP_DELIVERIES message written before endpoints existed
    # (no Sayna-Endpoint header, `publish` writes exactly the previous router's headers).
    host = "two.example.com"
    entry = HookEntry(
        host=host,
        url=https_sink.url("/default"),
        endpoints=(EndpointEntry(id="crm", url=https_sink.url("/crm")),),
    )
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    hook = hookstore.record(entry, "runtime", None, None)
    await kv.put(hook.key, hook.encode())
    await start_forwarder()
    await publish(jetstream, host)
    await publish(jetstream, host, headers_extra={Header.ENDPOINT: "crm"})
    (default,) = await https_sink.wait_for(1, "/default")
    (crm,) = await https_sink.wait_for(1, "/crm")
    assert default.headers["webhook-id"] != crm.headers["webhook-id"]
    assert len(https_sink.received("/default")) == 1


async def test_a_static_endpoint_sends_the_configs_header_values_and_secret(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    # A YAML/SIP_HOOKS_JSON hook with a second endpoint; KV holds the header names only
    # (as the provisioner writes it), the forwarder takes the values from its config.
    host = "static-two.example.com"
    static = [{
        "host": host, "url": https_sink.url("/s-default"),
        "endpoints": [{"id": "crm", "url": https_sink.url("/s-crm"), "secret": WHSEC,
                       "headers": {"X-Api-Key": "static-key-0123"}}],
    }]  # fmt: skip
    env = {"SIP_HOOKS_JSON": json.dumps(static)}
    config = ServerConfig.from_env(forwarder_env("nats://unused:4222", https_sink, **env))
    assert config.sip is not None
    hook = hookstore.record(config.sip.hooks[0], "config", None, None)
    assert b"static-key-0123" not in hook.encode() and WHSEC.encode() not in hook.encode()
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    await kv.put(hook.key, hook.encode())
    await start_forwarder(**env)
    await publish(jetstream, host, headers_extra={Header.ENDPOINT: "crm"})
    (got,) = await https_sink.wait_for(1, "/s-crm")
    assert got.headers["x-api-key"] == "static-key-0123"
    assert Webhook(WHSEC).verify(got.body, got.headers) is not None
