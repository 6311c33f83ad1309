"""A test send (`POST /sip/hooks/{host}/test`) as the forwarder serves it: one signed
`sip_hook_test` event to the endpoint asked for, and the answer the ingress shows the
operator (status, error, excerpt, duration), also when the hook, the endpoint or the
request is wrong. Asked over NATS as the ingress asks, no ingress in between."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from typing import Any

import pytest
from nats.aio.client import Client
from nats.errors import NoRespondersError
from standardwebhooks import Webhook

from sayna_sip.common import contracts, topology
from sayna_sip.common.hook import Endpoint, Hook
from sayna_sip.common.hosts import host_token
from tests.fixtures.https_sink import HttpsSink, Reply
from tests.forwarder.conftest import FAST, SECRET, StartForwarder

HOST = "tenant.example"
LOG = "sayna_sip.forwarder"


async def ask(nc: Client, request: bytes, timeout: float = 5) -> dict[str, Any]:
    reply = await nc.request(contracts.HOOK_TEST_SUBJECT, request, timeout=timeout)
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


async def put_hook(nc: Client, sink: HttpsSink) -> None:
    """`default` at /t, a `second` endpoint at /s."""
    second = Endpoint(id="second", url=sink.url("/s"))
    hook = Hook.new(HOST, sink.url("/t"), "runtime").with_endpoint(second)
    kv = await nc.jetstream().key_value(topology.HOOKS_BUCKET)
    await kv.put(host_token(HOST), hook.encode())


async def hanging_test_send(nc: Client, sink: HttpsSink) -> asyncio.Task[dict[str, Any]]:
    """A test send to `default`, whose endpoint hangs (until `sink.release()`), in flight."""
    sink.program("/t", Reply(hang=True))
    asked = asyncio.create_task(ask(nc, json.dumps({"host": HOST}).encode(), 20))
    await sink.wait_for(1, "/t")
    return asked


async def test_a_test_send_posts_one_signed_test_event_and_answers_what_came_back(
    start_forwarder: StartForwarder,
    nats_client: Client,
    https_sink: HttpsSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await start_forwarder(SIP_HOOK_SECRET=SECRET)
    await put_hook(nats_client, https_sink)
    https_sink.program("/t", Reply(200, b"hello from the tenant"))

    with caplog.at_level(logging.INFO, LOG):
        answer = await ask(nats_client, json.dumps({"host": HOST}).encode())  # no endpoint

    assert answer == {
        "status": 200,
        "duration_ms": answer["duration_ms"],
        "error": None,
        "response_excerpt": "hello from the tenant",
    }
    assert isinstance(answer["duration_ms"], float) and 0 < answer["duration_ms"] < 5000
    assert answer["duration_ms"] == round(answer["duration_ms"], 1)
    (request,) = https_sink.received("/t")
    event = json.loads(request.body)
    assert list(event) == ["event", "id", "createdAt", "hook"]
    assert (event["event"], event["hook"]) == ("sip_hook_test", HOST)
    assert re.fullmatch(r"test_[0-9a-f]{16}", event["id"])
    assert abs(int(event["createdAt"]) - time.time()) < 5
    assert request.body == json.dumps(event, separators=(",", ":")).encode()
    assert Webhook(SECRET.encode()).verify(request.body, request.headers) is not None
    assert request.headers["webhook-id"] == event["id"]
    lines = [m for name, _, m in caplog.record_tuples if name == LOG and "hook_test" in m]
    assert lines == [
        f"event=hook_test host={HOST} endpoint=default status=200"
        f' duration_ms={answer["duration_ms"]:.1f} error=""'
    ]


async def test_a_failing_endpoint_is_answered_with_its_status_error_and_excerpt(
    start_forwarder: StartForwarder,
    nats_client: Client,
    https_sink: HttpsSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await start_forwarder(SIP_HOOK_SECRET=SECRET)
    await put_hook(nats_client, https_sink)
    https_sink.program("/s", Reply(500, b"boom"))

    with caplog.at_level(logging.INFO, LOG):
        answer = await ask(nats_client, json.dumps({"host": HOST, "endpoint": "second"}).encode())

    got = (answer["status"], answer["error"], answer["response_excerpt"])
    assert got == (500, "HTTP 500", "boom")
    assert answer["duration_ms"] > 0 and answer["duration_ms"] == round(answer["duration_ms"], 1)
    assert len(https_sink.received("/s")) == 1 and https_sink.received("/t") == []
    assert (
        f"event=hook_test host={HOST} endpoint=second status=500"
        f' duration_ms={answer["duration_ms"]:.1f} error="HTTP 500"'
    ) in [m for _, _, m in caplog.record_tuples]


async def test_an_unknown_hook_or_endpoint_or_a_broken_request_is_answered_not_sent(
    start_forwarder: StartForwarder,
    nats_client: Client,
    https_sink: HttpsSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await start_forwarder(SIP_HOOK_SECRET=SECRET)
    await put_hook(nats_client, https_sink)
    nothing = {"status": None, "duration_ms": 0.0, "response_excerpt": ""}

    unknown = await ask(nats_client, b'{"host":"nobody.example"}')
    assert unknown == {**nothing, "error": "no such hook"}
    no_endpoint = await ask(nats_client, json.dumps({"host": HOST, "endpoint": "nope"}).encode())
    assert no_endpoint == {**nothing, "error": f"hook {HOST} has no endpoint nope"}

    with caplog.at_level(logging.ERROR, LOG):
        broken = await ask(nats_client, b"{not json")
    assert broken["error"].startswith("DecodeError(") and broken == {
        **nothing,
        "error": broken["error"],
    }
    assert (LOG, logging.ERROR, "event=hook_test_crashed") in caplog.record_tuples
    assert https_sink.received() == []


async def test_a_stopping_forwarder_leaves_the_queue_and_answers_what_it_was_asked(
    start_forwarder: StartForwarder, nats_client: Client, https_sink: HttpsSink
) -> None:
    # It leaves the queue group first: another forwarder answers (here: none is left); the
    # test send in flight is finished within the grace and answered, as a delivery is.
    fwd = await start_forwarder(dataclasses.replace(FAST, shutdown_grace=30.0))
    await put_hook(nats_client, https_sink)
    asked = await hanging_test_send(nats_client, https_sink)
    stopping = asyncio.create_task(fwd.stop())
    try:
        async with asyncio.timeout(5):
            while True:
                try:
                    await ask(nats_client, json.dumps({"host": HOST}).encode(), timeout=0.5)
                except NoRespondersError:
                    break
                except TimeoutError:
                    continue
        assert not stopping.done() and not asked.done()  # still finishing the first
    finally:
        https_sink.release()
    answer = await asked
    assert (answer["status"], answer["error"], answer["response_excerpt"]) == (
        200, None, "released",
    )  # fmt: skip
    await stopping


async def test_a_test_send_cut_short_by_a_stop_is_answered_so(
    start_forwarder: StartForwarder, nats_client: Client, https_sink: HttpsSink
) -> None:
    fwd = await start_forwarder(dataclasses.replace(FAST, shutdown_grace=0.2))
    await put_hook(nats_client, https_sink)
    asked = await hanging_test_send(nats_client, https_sink)
    try:
        await fwd.stop()
        assert await asked == {
            "status": None,
            "duration_ms": 0.0,
            "error": "the forwarder stopped before the test send ended; try again",
            "response_excerpt": "",
        }
    finally:
        https_sink.release()


async def test_a_hanging_hook_does_not_hold_the_next_test_send(
    start_forwarder: StartForwarder, nats_client: Client, https_sink: HttpsSink
) -> None:
    await start_forwarder(SIP_HOOK_SECRET=SECRET)
    await put_hook(nats_client, https_sink)
    hanging = await hanging_test_send(nats_client, https_sink)
    try:
        request = json.dumps({"host": HOST, "endpoint": "second"}).encode()
        answer = await ask(nats_client, request, timeout=3)
        assert (answer["status"], answer["error"]) == (200, None)
        assert not hanging.done()
    finally:
        https_sink.release()
    assert (await hanging)["status"] == 200
