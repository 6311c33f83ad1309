"""What the forwarder records, counts and logs as it settles each attempt (settle.py), on
a real nats-server and HTTPS sink: the attempt records operators read (every field), the
retry, dead-letter and latency metrics, and the log lines of a retry and a dead letter."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Callable

import httpx
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from sayna_sip.common import contracts, topology
from sayna_sip.common.contracts import DeadReason, Header
from sayna_sip.common.delivery import Delivery
from sayna_sip.common.hook import Hook
from sayna_sip.common.hosts import host_token
from sayna_sip.common.records import AttemptRecord
from sayna_sip.forwarder import signing
from sayna_sip.forwarder.app import Forwarder
from sayna_sip.forwarder.order import LaneState
from sayna_sip.forwarder.order_lanes import lane_key
from sayna_sip.forwarder.settle import nak
from tests.fixtures.https_sink import HttpsSink, Received, Reply
from tests.forwarder.conftest import (
    SECRET,
    Attempts,
    StartForwarder,
    drained,
    publish,
    put_hook,
    wait_dead,
)
from tests.forwarder.test_order_lanes import (
    HOST,
    publish_call_event,
    put_ordered_hook,
    seqs_by_room,
)

ROOM = "sip-room-1"


async def metrics(fwd: Forwarder) -> str:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://127.0.0.1:{fwd.port}/metrics")).text


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of `text` (0 when absent); `labels` in the order shown."""
    tags = ",".join(f'{k}="{v}"' for k, v in labels.items())
    sample = f"sayna_sip_forwarder_{name}{{{tags}}}" if tags else f"sayna_sip_forwarder_{name}"
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _is_tenth(value: float) -> bool:
    return value == round(value, 1)


async def test_each_attempt_is_recorded_with_what_it_sent_got_and_when_it_retries(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    attempts: Attempts,
    caplog: pytest.LogCaptureFixture,
) -> None:
    https_sink.program("/r", Reply(503, b"busy right now"), then=Reply(200, b"okay"))
    await put_hook(jetstream, "rec.example.com", https_sink.url("/r"))
    fwd = await start_forwarder(
        SIP_RETRY_SCHEDULE="0s,300ms", SIP_ATTEMPT_BODY_BYTES="4", SIP_HOOK_SECRET=SECRET
    )
    before = time.time()

    with caplog.at_level(logging.INFO, logger="sayna_sip.forwarder"):
        event_id, _ = await publish(jetstream, "rec.example.com")
        first, second = await attempts.wait(2)
        await drained(jetstream)

    sent = https_sink.received("/r")
    assert len(sent) == 2
    for n, a in enumerate((first, second), start=1):
        assert (a.event_id, a.event, a.room) == (event_id, "participant_joined", "sip-room-1")
        assert (a.host, a.endpoint, a.url, a.attempt) == (
            "rec.example.com", "default", https_sink.url("/r"), n
        )  # fmt: skip
        assert (a.redrive, a.call_seq, a.late, a.released) == (0, 0, False, 0)
        assert a.rate_limited_ms == 0.0 and a.reason == ""
        # the trace of the request sent (none unless a tracer is set up in this process)
        parent = a.request_headers.get("traceparent", "")
        assert a.trace_id == (parent.split("-")[1] if parent else "")
        assert a.request_headers["webhook-id"] == event_id  # what was sent, as sent
        assert a.request_headers["webhook-signature"] == "v1,<redacted>"
        assert a.duration_ms > 0 and _is_tenth(a.duration_ms)  # ms to a tenth
    assert before <= first.started_at < second.started_at <= time.time()
    # The 503: failed, its excerpt cut to SIP_ATTEMPT_BODY_BYTES, the retry due in 300 ms
    # ± 20 %, to the millisecond, and it went then.
    assert (first.outcome, first.status, first.error, first.response) == (
        "failed", 503, "HTTP 503", "busy"
    )  # fmt: skip
    assert first.retry_at == round(first.retry_at, 3)
    assert first.started_at + 0.24 <= first.retry_at <= first.started_at + 0.36 + 0.1
    assert sent[1].at >= first.retry_at - 0.01
    assert (second.outcome, second.status, second.error, second.response) == (
        "delivered", 200, "", "okay"
    )  # fmt: skip
    assert second.retry_at == 0.0

    text = await metrics(fwd)
    assert metric(text, "retries_scheduled_total", host="rec.example.com") == 1.0
    assert metric(text, "delivery_latency_seconds_count") == 1.0  # the delivered one only
    assert fwd.worker.delivered == 1
    retry = [r.getMessage() for r in caplog.records if "delivery_retry" in r.getMessage()]
    assert len(retry) == 1
    assert re.fullmatch(
        rf"event=delivery_retry event_id={event_id} hook=rec\.example\.com attempt=1 "
        r'delay=0\.\d{3} error="HTTP 503"',
        retry[0],
    ), retry


async def test_a_dead_letter_is_recorded_counted_and_logged_with_its_reason(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    attempts: Attempts,
    caplog: pytest.LogCaptureFixture,
) -> None:
    https_sink.program("/gone", Reply(410, b"no such tenant"))
    await put_hook(jetstream, "gone.example.com", https_sink.url("/gone"))
    fwd = await start_forwarder()

    with caplog.at_level(logging.WARNING, logger="sayna_sip.forwarder"):
        event_id, _ = await publish(jetstream, "gone.example.com")
        (a,) = await attempts.wait(1)
        await wait_dead(jetstream, 1)
        await drained(jetstream)

    assert (a.outcome, a.status, a.reason, a.retry_at) == ("dead", 410, DeadReason.GONE, 0.0)
    assert (a.attempt, a.error, a.response) == (1, "HTTP 410", "no such tenant")
    text = await metrics(fwd)
    assert metric(text, "dead_letters_total", host="gone.example.com", reason="gone") == 1.0
    assert metric(text, "retries_scheduled_total", host="gone.example.com") == 0.0
    assert metric(text, "delivery_latency_seconds_count") == 0.0
    assert fwd.worker.delivered == 0
    dead = [r.getMessage() for r in caplog.records if "delivery_dead" in r.getMessage()]
    assert dead == [
        f"event=delivery_dead event_id={event_id} hook=gone.example.com reason=gone attempts=1"
        ' error="HTTP 410"'
    ]


async def test_a_blocked_target_is_recorded_blocked_not_failed(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    attempts: Attempts,
) -> None:
    await put_hook(jetstream, "evil.example.com", "https://10.0.0.1/b")
    await start_forwarder(SIP_HOOK_ALLOW_NETWORKS="")
    await publish(jetstream, "evil.example.com")

    (a,) = await attempts.wait(1)

    assert (a.outcome, a.reason, a.status, a.attempt) == ("blocked", DeadReason.BLOCKED, None, 1)
    assert "blocked address" in a.error


async def test_a_proxy_failure_is_recorded_as_the_proxys_with_its_retry_due(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    attempts: Attempts,
) -> None:
    with socket.socket() as s:  # a port nothing listens on: the proxy is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await put_hook(jetstream, "px.example.com", https_sink.url("/px"))
    await start_forwarder(SIP_EGRESS_PROXY=f"http://127.0.0.1:{port}")
    await publish(jetstream, "px.example.com")

    a = (await attempts.wait(1))[0]

    assert (a.outcome, a.status, a.reason, a.attempt) == ("proxy_error", None, "", 1)
    assert a.error.startswith("cannot reach the proxy: ")
    assert a.started_at + 0.7 <= a.retry_at <= a.started_at + 1.3  # its own 1 s backoff


async def test_a_crash_nats_cannot_dead_letter_comes_back_after_half_a_second(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A bug in delivery while SIP_DEAD is gone: the dead letter cannot be written, so the
    # message is not acked but put back, 0.5 s later, and dead-lettered once it can be.
    crashes: list[float] = []

    def broken(*_: object) -> dict[str, str]:
        crashes.append(time.monotonic())
        raise KeyError("a bug")

    monkeypatch.setattr(signing, "signature_headers", broken)
    await put_hook(jetstream, "bug.example.com", https_sink.url("/bug"))
    dead_config = (await jetstream.stream_info(topology.SIP_DEAD)).config
    await start_forwarder()
    await jetstream.delete_stream(topology.SIP_DEAD)
    with caplog.at_level(logging.WARNING, logger="sayna_sip.forwarder"):
        event_id, _ = await publish(jetstream, "bug.example.com")
        async with asyncio.timeout(10):
            while len(crashes) < 2:  # noqa: ASYNC110  # the crash has no event to await
                await asyncio.sleep(0.02)
        await jetstream.add_stream(dead_config)
        (dead,) = await wait_dead(jetstream, 1)
        await drained(jetstream)
    assert 0.45 <= crashes[1] - crashes[0] < 1.4, crashes  # ERROR_PAUSE, 0.5 s
    letter = dead.headers or {}
    assert letter[Header.DEAD_REASON] == "internal error: KeyError"
    assert letter[Header.LAST_ERROR] == "KeyError: 'a bug'"
    failed = [r.getMessage() for r in caplog.records if "settle_failed" in r.getMessage()]
    assert failed and all(m.startswith(f"event=settle_failed event_id={event_id} ") for m in failed)


async def test_a_crash_that_cannot_even_be_dead_lettered_is_dropped_not_looped(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_: object, **__: object) -> dict[str, str]:
        raise KeyError("a bug")

    monkeypatch.setattr(signing, "signature_headers", broken)
    monkeypatch.setattr(Delivery, "dead_headers", broken)
    await put_hook(jetstream, "bug.example.com", https_sink.url("/bug"))
    await start_forwarder()
    with caplog.at_level(logging.ERROR, logger="sayna_sip.forwarder"):
        event_id, _ = await publish(jetstream, "bug.example.com")
        await drained(jetstream)  # terminated: gone from the work queue, never redelivered
    dropped = [r.getMessage() for r in caplog.records if "delivery_dropped" in r.getMessage()]
    assert dropped == [f"event=delivery_dropped event_id={event_id} hook=bug.example.com"]
    assert await wait_dead(jetstream, 1, timeout=0.2) == []
    info = await jetstream.consumer_info(topology.SIP_DELIVERIES, topology.FORWARDER_CONSUMER)
    assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (0, 0, 0)


async def test_a_paced_copy_is_counted_waiting_and_its_attempt_says_how_long(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    attempts: Attempts,
) -> None:
    # 10/s: three at once, the 2nd and 3rd wait for slots 0.1 s and 0.2 s away.
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    hook = Hook(host="rl.example.com", url=https_sink.url("/rl"), source="runtime", rate_limit=10)
    await kv.put(host_token("rl.example.com"), hook.encode())
    fwd = await start_forwarder()
    for _ in range(3):
        await publish(jetstream, "rl.example.com")

    got = await attempts.wait(3)
    await drained(jetstream)

    waited = sorted(a.rate_limited_ms for a in got)
    assert waited[0] == 0.0 and all(_is_tenth(w) for w in waited)
    assert 0.0 < waited[1] <= 150.0 and 0.0 < waited[2] <= 250.0, waited  # less when late
    text = await metrics(fwd)
    labels = {"endpoint": "default", "host": "rl.example.com"}  # as exposed: sorted
    # the records' waits (carried to the ms by Sayna-Paced) are the metric's seconds
    in_ms = metric(text, "rate_limited_seconds_total", **labels) * 1000
    assert abs(in_ms - sum(waited)) <= 1.0, (in_ms, waited)
    assert metric(text, "deferred_total", host="rl.example.com", reason="rate_limit") == 2.0
    assert {a.attempt for a in got} == {1}  # the wait spent no try
    assert fwd.worker.delivered == 3
    # put back due at their slots, 0.1 s apart: not all at once
    sent = sorted(r.at for r in https_sink.received("/rl"))
    assert sent[2] - sent[0] >= 0.1, sent
    # From the ingress's receipt to the ack, each: the waits (0.1 + 0.2 s) and a little.
    latency = metric(text, "delivery_latency_seconds_sum")
    assert metric(text, "delivery_latency_seconds_count") == 3.0
    assert sum(waited) / 1000 <= latency < 2.0, latency


def _slow_first_join(status: int, delay: float) -> Callable[[Received], Reply | None]:
    """The call's join (copy 2) answers its first request after `delay` s with `status`."""
    answered: list[bool] = []

    def decide(r: Received) -> Reply | None:
        if r.headers["webhook-id"].endswith("_2") and not answered:
            answered.append(True)
            return Reply(status=status, delay=delay)
        return None

    return decide


@pytest.mark.parametrize("status", [200, 500])
async def test_a_head_released_while_its_request_hung_says_late_and_how_many_waited(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    attempts: Attempts,
    status: int,
) -> None:
    # The join's request takes 3 s; the hold is 0.5 s: the copies behind it are released
    # (after their 1 s in-process wait) while it is in flight. When it ends, delivered or
    # failed, its record says it went late and how many it had held back.
    https_sink.decide("/order", _slow_first_join(status, 3.0))
    await put_ordered_hook(jetstream, https_sink.url("/order"))
    await start_forwarder(
        SIP_ORDER_HOLD_MAX="500ms", FORWARDER_TIMEOUT="6", SIP_RETRY_SCHEDULE="0s,100ms"
    )
    for seq in (1, 2, 3):
        await publish_call_event(jetstream, ROOM, seq)

    await attempts.wait(3 if status == 200 else 4)
    await drained(jetstream)

    (head, *again) = [a for a in attempts if a.call_seq == 2]
    assert (head.outcome, head.status, head.late, head.released) == (
        "delivered" if status == 200 else "failed", status, True, 1
    )  # fmt: skip
    assert [a.outcome for a in again] == ([] if status == 200 else ["delivered"])
    assert not any(a.late or a.released for a in attempts if a.call_seq != 2)
    assert seqs_by_room(https_sink.received("/order"))[ROOM][:3] == [1, 2, 3]


async def test_a_failed_head_tells_the_lane_when_it_is_due_again(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    attempts: Attempts,
) -> None:
    # Other forwarders read the lane in KV: the copies behind a failed head wait in
    # JetStream until its retry is due, the due the attempt's record shows.
    https_sink.decide("/order", _slow_first_join(500, 0.0))
    await put_ordered_hook(jetstream, https_sink.url("/order"))
    await start_forwarder(SIP_RETRY_SCHEDULE="0s,3s")
    for seq in (1, 2):
        await publish_call_event(jetstream, ROOM, seq)

    failed = next(a for a in await attempts.wait(2) if a.call_seq == 2)

    kv = await jetstream.key_value(topology.LANES_BUCKET)
    lane = LaneState.decode((await kv.get(_lane_of(ROOM))).value)
    assert (lane.done, failed.outcome) == (1, "failed")
    assert lane.due == pytest.approx(failed.retry_at, abs=0.05)
    assert lane.due > time.time() + 1.5  # 3 s from the failure, ± 20 %


def _lane_of(room: str) -> str:
    d = Delivery.first(
        event_id="EV_x", event="participant_joined", room=room, hook=HOST, sip_host=HOST,
        received_at="0", call_seq=2,
    )  # fmt: skip
    return lane_key(d)


async def test_each_attempts_span_says_what_the_endpoint_answered(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    attempts: Attempts,
    spans: InMemorySpanExporter,
) -> None:
    # A trace shows each try: its HTTP status, and an error status with the reason when it
    # did not deliver (a connection refused has no HTTP status at all).
    https_sink.program("/t", Reply(503), then=Reply(200))
    await put_hook(jetstream, "t.example.com", https_sink.url("/t"))
    await put_hook(jetstream, "down.example.com", "https://127.0.0.1:1/t")
    await start_forwarder(SIP_RETRY_SCHEDULE="0s,100ms,100ms", FORWARDER_CONNECT_TIMEOUT="1")
    await publish(jetstream, "t.example.com")
    await publish(jetstream, "down.example.com")

    got = await attempts.wait(3)

    await drained(jetstream)

    shown = {}
    for span in spans.get_finished_spans():
        if span.name == "sip.attempt" and span.attributes:
            key = (span.attributes["sayna.hook"], span.attributes["sayna.attempt"])
            status = span.attributes.get("http.response.status_code")
            shown[key] = (status, span.status.status_code, span.status.description)
    assert shown[("t.example.com", 1)] == (503, StatusCode.ERROR, "HTTP 503")
    assert shown[("t.example.com", 2)] == (200, StatusCode.UNSET, None)
    down = shown[("down.example.com", 1)]
    assert down[:2] == (None, StatusCode.ERROR) and down[2] == got_error(got, "down.example.com")


def got_error(got: list[AttemptRecord], host: str) -> str:
    return next(a.error for a in got if a.host == host and a.attempt == 1)


async def test_a_nak_nats_cannot_take_is_logged_not_raised(
    nats_client: Client, jetstream: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    # The connection is gone: the message comes back after its ack wait anyway.
    await publish(jetstream, "nak.example.com")
    sub = await jetstream.pull_subscribe(
        contracts.DELIVERY_SUBJECTS,
        durable=topology.FORWARDER_CONSUMER,
        stream=topology.SIP_DELIVERIES,
    )
    (msg,) = await sub.fetch(1, timeout=5)
    await nats_client.close()
    with caplog.at_level(logging.DEBUG, logger="sayna_sip.forwarder"):
        await nak(msg, 0.5)
    lines = [r.getMessage() for r in caplog.records if "nak_failed" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("event=nak_failed error="), lines
