"""Test sends: a forwarder answers `sip.ops.hook_test` requests from the ingress with one
signed delivery of a synthetic `sip_hook_test` event, made like any other (same client,
SSRF policy and signing). The forwarders share a queue group: one of them answers.

Every request asked is answered, also by a forwarder that is stopping: it leaves the queue
group first (later requests go to another forwarder), gives the sends in flight the
deliveries' grace period, and answers the ones it cuts short with an error that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets as _random
import time

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from sayna_sip.common import contracts
from sayna_sip.common.hook import DEFAULT_ENDPOINT
from sayna_sip.common.logs import quote
from sayna_sip.forwarder.delivery import Deliverer
from sayna_sip.forwarder.policy import Kind

log = logging.getLogger("sayna_sip.forwarder")

# How long a stop waits for the server to confirm the unsubscribe and hand over what was
# already on its way to this forwarder.
DRAIN_TIMEOUT_S = 2.0
STOPPED = "the forwarder stopped before the test send ended; try again"


class TestRequest(msgspec.Struct, frozen=True):
    host: str
    endpoint: str = DEFAULT_ENDPOINT  # an ingress of the previous release sends none


def test_event(host: str) -> tuple[str, bytes]:
    """A synthetic event id and body in LiveKit's shape."""
    event_id = "test_" + _random.token_hex(8)
    body = {"event": contracts.TEST_EVENT, "id": event_id, "createdAt": str(int(time.time()))}
    body["hook"] = host
    return event_id, json.dumps(body, separators=(",", ":")).encode()


class TestResponder:
    def __init__(self, nc: Client, deliverer: Deliverer, grace: float) -> None:
        self._nc = nc
        self._deliverer = deliverer
        self._grace = grace  # the deliveries' shutdown grace: a test send gets the same
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(
            contracts.HOOK_TEST_SUBJECT, queue=contracts.HOOK_TEST_QUEUE, cb=self._dispatch
        )

    async def stop(self) -> None:
        """Leave the queue group, answer what was asked: finished within the grace, or told
        it was cut short."""
        if self._sub is not None:
            with contextlib.suppress(Exception):  # a lost connection answers nothing more
                await asyncio.wait_for(self._sub.drain(), DRAIN_TIMEOUT_S)  # type: ignore[no-untyped-call]
        tasks = list(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self._grace)
        for task in pending:
            task.cancel()  # its handler answers STOPPED
        await asyncio.gather(*pending, return_exceptions=True)

    async def _dispatch(self, msg: Msg) -> None:
        # nats-py runs a subscription's callbacks one at a time: one hanging hook would
        # hold every later test send of this forwarder behind it.
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg: Msg) -> None:
        try:
            answer = await self._answer(msg.data)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await msg.respond(json.dumps(_failed(STOPPED)).encode())
            raise
        except Exception as exc:  # answer something: the operator is waiting
            log.exception("event=hook_test_crashed")
            answer = _failed(repr(exc))
        await msg.respond(json.dumps(answer).encode())

    async def _answer(self, data: bytes) -> dict[str, object]:
        request = msgspec.json.decode(data, type=TestRequest)
        hook = await self._deliverer.resolve(request.host)
        if hook is None:
            return _failed("no such hook")
        endpoint = hook.endpoint(request.endpoint)
        if endpoint is None:
            return _failed(f"hook {hook.host} has no endpoint {request.endpoint}")
        event_id, body = test_event(hook.host)
        started = time.monotonic()
        result = await self._deliverer.send(hook, endpoint, event_id, body)
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        log.info(
            "event=hook_test host=%s endpoint=%s status=%s duration_ms=%.1f error=%s",
            hook.host, endpoint.id, result.status, duration_ms, quote(result.error),
        )  # fmt: skip
        return {
            "status": result.status,
            "duration_ms": duration_ms,
            "error": None if result.kind is Kind.DELIVERED else result.error,
            "response_excerpt": result.excerpt,
        }


def _failed(error: str) -> dict[str, object]:
    return {"status": None, "duration_ms": 0.0, "error": error, "response_excerpt": ""}
