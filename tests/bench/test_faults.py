"""Short variants of the fault suite (`make faults` runs them and the long ones): real processes,
one fault each, and what a user would notice — lost events, refused webhooks, a
healthy tenant slowed by another."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import faults
from bench.harness import Bench, Sink
from bench.traffic import Traffic


@pytest.mark.parametrize(
    ("failures", "oks", "longest"),
    [
        ([], [1.0], 0.0),
        ([(0.0, 1.0)], [], 1.0),
        ([(0.0, 0.0), (0.2, 0.2), (0.4, 0.4)], [], 0.4),  # refused at once, retried
        ([(0.0, 1.0), (0.5, 2.0), (3.0, 3.5)], [2.5], 2.0),  # a 200 ends a stretch
        ([(5.0, 5.2), (0.0, 0.1), (0.1, 0.3)], [0.35, 4.0], 0.3),  # out of order
    ],
)
def test_longest_outage_is_the_longest_stretch_of_failures_without_a_200(
    failures: list[tuple[float, float]], oks: list[float], longest: float
) -> None:
    traffic = Traffic("r", ("h",), 1.0, 0, failures=failures, oks=oks)
    assert traffic.longest_outage() == pytest.approx(longest)


@pytest.fixture
def bench_sink(tmp_path: Path) -> Iterator[tuple[Bench, Sink]]:
    """A bench run directory with its HTTPS sink; every child process stopped after."""
    b = Bench(tmp_path, secrets.token_hex(3))
    try:
        sink = b.start_sink()
        try:
            yield b, sink
        finally:  # an idle keep-alive TLS connection holds the sink's shutdown for 5 s
            sink.close()
    finally:
        b.close()


@pytest.mark.slow  # 10 s of two stacks; make test keeps forwarder/test_resilience's black hole
def test_a_black_hole_tenant_does_not_slow_the_healthy_one(
    bench_sink: tuple[Bench, Sink],
) -> None:
    # The setup at 300 events: 2 forwarders, retries 1s,2s,2s,5s,5s, one hook
    # accepting TCP and never answering. Before the fix the healthy p99 was 3.7 s.
    baseline, hole = faults.black_hole(*bench_sink, faults.SHORT)
    assert hole["lost"] == baseline["lost"] == 0
    p99, base = hole["healthy_p99_ms"], baseline["healthy_p99_ms"]
    assert p99 <= 1000, (baseline, hole)
    assert p99 <= max(2 * base, 300), (baseline, hole)  # noise floor on a shared machine


@pytest.mark.slow  # 25 s; make test keeps ingress/test_cluster_readiness's leader change
def test_losing_the_stream_leader_and_a_follower_refuses_no_webhook(
    bench_sink: tuple[Bench, Sink],
) -> None:
    row = faults.cluster_failover(*bench_sink, faults.SHORT)
    assert (row["lost"], row["non_200"]) == (0, 0), row
    assert row["acked"] == row["sent"]
