"""Records written by the Recorder and read back by the query layer, on a real nats-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec.structs
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from sayna_sip.common import records, topology
from sayna_sip.common.deliveries import Deliveries
from sayna_sip.common.recorder import Recorder, RecorderMetrics
from sayna_sip.common.records import AttemptRecord, RouteRecord
from sayna_sip.common.streamscan import StreamReader
from tests.fixtures.nats import NatsServer


@pytest.fixture
async def recorder(nats_client: Client, jetstream: JetStreamContext) -> AsyncIterator[Recorder]:
    """A started Recorder writing to SIP_ATTEMPTS."""
    rec = Recorder(nats_client, RecorderMetrics(CollectorRegistry()))
    await rec.start()
    yield rec
    await rec.stop()


@pytest.fixture
async def deliveries(nats_client: Client, jetstream: JetStreamContext) -> AsyncIterator[Deliveries]:
    """The query layer over SIP_ATTEMPTS."""
    reader = StreamReader(nats_client, topology.SIP_ATTEMPTS)
    await reader.start()

    async def last_seq() -> int:
        return (await jetstream.stream_info(topology.SIP_ATTEMPTS)).state.last_seq

    yield Deliveries(reader, last_seq)
    await reader.close()


def _attempt(
    event_id: str, n: int, outcome: str, status: int | None, host: str = "a.io"
) -> AttemptRecord:
    return AttemptRecord(
        event_id=event_id, host=host, attempt=n, outcome=outcome, status=status,
        started_at=time.time(), duration_ms=10.0 * n, response=f"body {n}",
    )  # fmt: skip


async def test_an_event_shows_its_route_and_attempts_in_order(
    recorder: Recorder, deliveries: Deliveries
) -> None:
    recorder.record(RouteRecord(event_id="EV_x", event="participant_joined", room="sip-1",
                                outcome="matched", at=time.time(), host="a.io"))  # fmt: skip
    for n, (outcome, status) in enumerate([("failed", 500), ("failed", 503), ("delivered", 200)]):
        recorder.record(_attempt("EV_x", n + 1, outcome, status))
    recorder.record(_attempt("EV_other", 1, "delivered", 200))
    await recorder.flush()

    view = await deliveries.event("EV_x")

    assert view is not None and view.route is not None
    assert view.route.outcome == "matched" and view.event == "participant_joined"
    assert [(a.attempt, a.status) for a in view.attempts] == [(1, 500), (2, 503), (3, 200)]
    assert await deliveries.event("EV_nothing") is None


async def test_list_is_newest_first_filtered_and_paginated(
    recorder: Recorder, deliveries: Deliveries
) -> None:
    for i in range(30):
        recorder.record(_attempt(f"EV_{i}", 1, "dead" if i % 3 == 0 else "delivered", 200,
                                 host="a.io" if i % 2 else "b.io"))  # fmt: skip
    await recorder.flush()

    seen: list[str] = []
    cursor = None
    while True:
        page = await deliveries.page(host="b.io", outcome="dead", limit=2, cursor=cursor)
        seen += [r.event_id for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == ["EV_24", "EV_18", "EV_12", "EV_6", "EV_0"]
    everything = await deliveries.page(limit=100)
    assert len(everything.items) == 30 and everything.next_cursor is None


async def test_since_excludes_older_records(recorder: Recorder, deliveries: Deliveries) -> None:
    recorder.record(_attempt("EV_old", 1, "delivered", 200))
    await recorder.flush()
    cut = time.time()
    await asyncio.sleep(0.01)
    recorder.record(_attempt("EV_new", 1, "delivered", 200))
    await recorder.flush()

    page = await deliveries.page(since=cut)
    assert [r.event_id for r in page.items] == ["EV_new"]
    page = await deliveries.page(until=cut)
    assert [r.event_id for r in page.items] == ["EV_old"]


async def test_stats_of_8_delivered_and_2_failed_is_a_success_rate_of_0_8(
    recorder: Recorder, deliveries: Deliveries
) -> None:
    for i in range(8):
        recorder.record(_attempt(f"EV_{i}", 1, "delivered", 200))
    recorder.record(_attempt("EV_8", 1, "failed", 500))
    recorder.record(_attempt("EV_9", 2, "dead", 410))
    recorder.record(_attempt("EV_10", 1, "failed", 500, host="other.io"))
    # The egress proxy failed: no request reached the endpoint, so its stats ignore it.
    recorder.record(_attempt("EV_11", 1, "proxy_error", None))
    await recorder.flush()

    stats = await deliveries.stats("a.io", 3600)

    assert (stats.attempts, stats.delivered, stats.failed) == (10, 8, 2)
    assert stats.success_rate == 0.8
    assert stats.p50_ms == 10.0 and stats.p99_ms == 20.0
    assert stats.last_success_at and stats.last_failure_at


async def test_records_while_nats_is_down_are_counted_not_waited_for(
    nats_server: NatsServer, nats_client: Client, jetstream: JetStreamContext
) -> None:
    metrics = RecorderMetrics(CollectorRegistry())
    rec = Recorder(nats_client, metrics, timeout=0.3)
    await rec.start()
    nats_server.stop()

    for i in range(10):
        rec.record(_attempt(f"EV_{i}", 1, "delivered", 200))  # a plain call: nothing to await
    await rec.flush(timeout=3.0)

    failed = sum(metrics.failed.labels(r)._value.get() for r in ("nats", "timeout"))
    assert failed == 10
    await rec.stop()
    nats_server.start()


async def test_a_record_the_stream_refuses_is_counted_not_raised(
    nats_client: Client, jetstream: JetStreamContext
) -> None:
    metrics = RecorderMetrics(CollectorRegistry())
    rec = Recorder(nats_client, metrics)
    await rec.start()
    await jetstream.delete_stream(topology.SIP_ATTEMPTS)

    rec.record(_attempt("EV_lost", 1, "delivered", 200))
    await rec.flush()
    await rec.stop()

    assert metrics.failed.labels("rejected")._value.get() == 1
    assert metrics.written.labels("attempt")._value.get() == 0


async def test_dead_letters_made_without_a_request_are_not_failed_attempts(
    recorder: Recorder, deliveries: Deliveries
) -> None:
    # Every request got 200, then the hook was disabled: the console showed 66.7 % and a
    # "last failure" for a hook that never failed.
    recorder.record(_attempt("EV_1", 1, "delivered", 200))
    recorder.record(_attempt("EV_2", 1, "delivered", 200))
    for reason in ("hook disabled", "hook removed"):
        rec = _attempt("EV_3", 1, "dead", None)
        recorder.record(msgspec.structs.replace(rec, reason=reason, duration_ms=0.0))
    await recorder.flush()

    stats = await deliveries.stats("a.io", 3600)

    assert (stats.attempts, stats.delivered, stats.failed) == (2, 2, 0)
    assert stats.success_rate == 1.0 and stats.last_failure_at is None


async def test_an_event_of_more_than_one_batch_shows_every_attempt(
    recorder: Recorder, deliveries: Deliveries
) -> None:
    # Direct gets return 1,000 records at most: the 1,001st and the next come in a second
    # read, from just past the last one seen (a redriven event keeps adding attempts).
    for n in range(1, 1003):
        recorder.record(_attempt("EV_many", n, "failed", 500))
    await recorder.flush()

    view = await deliveries.event("EV_many")

    assert view is not None and view.route is None
    assert [a.attempt for a in view.attempts] == list(range(1, 1003))
    stats = await deliveries.stats("a.io", 3600)
    assert (stats.attempts, stats.failed) == (1002, 1002)


async def test_an_event_without_its_route_takes_its_name_and_room_from_an_attempt(
    recorder: Recorder, deliveries: Deliveries
) -> None:
    recorder.record(AttemptRecord(event_id="EV_r", event="room_started", room="sip-9",
                                  host="a.io", attempt=1, outcome="delivered",
                                  started_at=time.time()))  # fmt: skip
    for n, redrive in ((2, 0), (1, 1), (1, 0)):  # stored out of order: shown by generation, try
        failed = _attempt("EV_r", n, "failed", 500)
        recorder.record(msgspec.structs.replace(failed, redrive=redrive))
    await recorder.flush()

    view = await deliveries.event("EV_r")

    assert view is not None and view.route is None
    assert (view.event_id, view.event, view.room) == ("EV_r", "room_started", "sip-9")
    assert [(a.redrive, a.attempt) for a in view.attempts] == [(0, 1), (0, 1), (0, 2), (1, 1)]


async def test_an_event_shows_its_latest_route(recorder: Recorder, deliveries: Deliveries) -> None:
    # A router redelivery writes the route again: the last one written is shown.
    for room in ("sip-old", "sip-new"):
        recorder.record(RouteRecord(event_id="EV_x", event="room_finished", room=room,
                                    outcome="matched", at=time.time(), host="a.io"))  # fmt: skip
    await recorder.flush()

    view = await deliveries.event("EV_x")

    assert view is not None and view.route is not None
    assert (view.room, view.route.room, view.attempts) == ("sip-new", "sip-new", [])


async def test_a_window_after_every_record_is_empty_and_one_before_takes_all(
    recorder: Recorder, deliveries: Deliveries
) -> None:
    for i in range(3):
        recorder.record(_attempt(f"EV_{i}", 1, "delivered", 200))
    await recorder.flush()
    later = time.time() + 60

    assert (await deliveries.page(since=later)).items == []
    assert [r.event_id for r in (await deliveries.page(until=later)).items] == [
        "EV_2", "EV_1", "EV_0"
    ]  # fmt: skip
    page = await deliveries.page(until=later, limit=2)
    assert page.next_cursor is not None
    rest = await deliveries.page(until=later, limit=2, cursor=page.next_cursor)
    assert [r.event_id for r in rest.items] == ["EV_0"] and rest.next_cursor is None
    nothing = await deliveries.stats("a.io", 3600, now=later + 3600)
    assert (nothing.attempts, nothing.success_rate, nothing.p50_ms, nothing.p99_ms) == (
        0, None, None, None
    )  # fmt: skip  # shown as null: no rate, no latency
    assert (nothing.last_success_at, nothing.last_failure_at, nothing.truncated) == (
        None, None, False
    )  # fmt: skip


def _at(
    event_id: str, started_at: float, outcome: str = "delivered", status: int | None = 200,
    duration_ms: float = 10.0, endpoint: str = "default",
) -> AttemptRecord:  # fmt: skip
    return AttemptRecord(event_id=event_id, host="a.io", endpoint=endpoint, attempt=1,
                         outcome=outcome, status=status, started_at=started_at,
                         duration_ms=duration_ms)  # fmt: skip


async def test_stats_count_one_endpoint_its_recent_rate_and_its_latest_times(
    recorder: Recorder, deliveries: Deliveries
) -> None:
    now = time.time()
    # The current rate is over the last 10 s; started_at decides, not the order stored.
    recorder.record(_at("EV_new", now - 9.5))
    recorder.record(_at("EV_old", now - 10.5))
    recorder.record(_at("EV_f2", now - 1, "failed", 500))
    recorder.record(_at("EV_f1", now - 30, "failed", 500))
    recorder.record(_at("EV_b", now - 1, endpoint="backup", duration_ms=99.0))
    await recorder.flush()

    stats = await deliveries.stats("a.io", 3600, now=now)

    assert (stats.attempts, stats.delivered, stats.failed, stats.recent) == (4, 2, 2, 2)
    assert stats.last_success_at == now - 9.5 and stats.last_failure_at == now - 1
    backup = await deliveries.stats("a.io", 3600, now=now, endpoint="backup")
    assert (backup.attempts, backup.delivered, backup.p50_ms) == (1, 1, 99.0)


async def test_stats_take_an_attempt_started_at_the_window_edge(
    recorder: Recorder, deliveries: Deliveries
) -> None:
    edge = float(int(time.time()) - 1)  # whole seconds: now - window is the edge exactly
    recorder.record(_at("EV_edge", edge))
    await recorder.flush()

    assert (await deliveries.stats("a.io", 60.0, now=edge + 60.0)).attempts == 1
    assert (await deliveries.stats("a.io", 59.5, now=edge + 60.0)).attempts == 0
    # the current rate's 10 s, edges included
    assert (await deliveries.stats("a.io", 3600, now=edge + 10.0)).recent == 1
    assert (await deliveries.stats("a.io", 3600, now=edge + 10.5)).recent == 0


async def test_stats_count_a_connection_error_and_time_only_what_was_measured(
    recorder: Recorder, deliveries: Deliveries
) -> None:
    now = time.time()
    recorder.record(_at("EV_1", now, duration_ms=12.3456))
    recorder.record(_at("EV_2", now, "failed", None, duration_ms=40.0))  # refused after 40 ms
    recorder.record(_at("EV_3", now, "failed", None, duration_ms=0.0))  # nothing measured
    await recorder.flush()

    stats = await deliveries.stats("a.io", 3600, now=now)

    assert (stats.attempts, stats.delivered, stats.failed) == (3, 1, 2)
    assert stats.success_rate == 0.3333  # 4 decimals
    assert stats.durations == [12.3456, 40.0]
    assert (stats.p50_ms, stats.p99_ms) == (12.3, 40.0)


async def test_stats_of_one_attempt_are_its_own_duration(
    recorder: Recorder, deliveries: Deliveries
) -> None:
    recorder.record(_at("EV_1", time.time(), "dead", 410, duration_ms=7.0))
    await recorder.flush()

    stats = await deliveries.stats("a.io", 3600)

    assert (stats.p50_ms, stats.p99_ms, stats.success_rate) == (7.0, 7.0, 0.0)
    assert stats.last_success_at is None and stats.truncated is False


async def test_stats_past_their_read_bound_say_truncated(
    nats_client: Client, jetstream: JetStreamContext, recorder: Recorder, deliveries: Deliveries
) -> None:
    # 1,002 attempts, a bound of 1,000: the first batch fills it, the rest is not read.
    for n in range(1, 1003):
        recorder.record(_attempt(f"EV_{n}", 1, "delivered", 200))
    await recorder.flush()
    reader = StreamReader(nats_client, topology.SIP_ATTEMPTS)
    await reader.start()

    async def last_seq() -> int:
        return (await jetstream.stream_info(topology.SIP_ATTEMPTS)).state.last_seq

    try:
        stats = await Deliveries(reader, last_seq, stats_cap=1000).stats("a.io", 3600)
    finally:
        await reader.close()

    assert (stats.attempts, stats.truncated) == (1000, True)
    assert (await deliveries.stats("a.io", 3600)).truncated is False


async def test_a_record_this_release_cannot_read_is_skipped(
    jetstream: JetStreamContext, recorder: Recorder, deliveries: Deliveries
) -> None:
    good = _attempt("EV_ok", 1, "delivered", 200)
    subject = records.subject(good)
    await jetstream.publish(subject, b'{"kind":"attempt","v":"x"}', stream=topology.SIP_ATTEMPTS)
    recorder.record(good)
    await recorder.flush()
    await jetstream.publish(subject, b"not json", stream=topology.SIP_ATTEMPTS)

    page = await deliveries.page()
    view = await deliveries.event("EV_ok")

    assert [r.event_id for r in page.items] == ["EV_ok"]
    assert view is not None and [a.event_id for a in view.attempts] == ["EV_ok"]
    assert (await deliveries.stats("a.io", 3600)).attempts == 1
