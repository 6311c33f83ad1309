"""Test sends: a forwarder answers `sip.ops.hook_test` requests from the ingress with one
signed delivery of a synthetic `sip_hook_test` event, made like any other (same client,
SSRF policy and signing). The forwarders share a queue group: one of them answers.
"""

from __future__ import annotations

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
    def __init__(self, nc: Client, deliverer: Deliverer) -> None:
        self._nc = nc
        self._deliverer = deliverer
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(
            contracts.HOOK_TEST_SUBJECT, queue=contracts.HOOK_TEST_QUEUE, cb=self._handle
        )

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _handle(self, msg: Msg) -> None:
        try:
            answer = await self._answer(msg.data)
        except Exception as exc:  # answer something: the operator is waiting
            log.exception("event=hook_test_crashed")
            answer = {
                "status": None,
                "duration_ms": 0.0,
                "error": repr(exc),
                "response_excerpt": "",
            }
        await msg.respond(json.dumps(answer).encode())

    async def _answer(self, data: bytes) -> dict[str, object]:
        request = msgspec.json.decode(data, type=TestRequest)
        hook = await self._deliverer.resolve(request.host)
        if hook is None:
            return {
                "status": None,
                "duration_ms": 0.0,
                "error": "no such hook",
                "response_excerpt": "",
            }
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
