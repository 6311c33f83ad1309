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

from sayna_sip.common import topology
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
