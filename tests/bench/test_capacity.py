"""The capacity model of docs/capacity.md: lines fitted on a run's end-to-end rows, the
within-25 % check `make bench` prints, and the sizing arithmetic of the worked example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import capacity


def row(rate: int, us: dict[str, int], stored: dict[str, int] | None = None) -> dict[str, Any]:
    accepted = rate * 10
    r: dict[str, Any] = {
        "target": "sayna-sip",
        "offered_rate": rate,
        "accepted": accepted,
        "cpu_us_per_event_by_process": us,
    }
    if stored is not None:
        r["stored"] = stored
    return r


def linear(rate: int, idle: float, per_us: float) -> int:
    """us per event of a process costing `idle` cores + `per_us` us per event at `rate`."""
    return round((idle + per_us * rate / 1e6) / rate * 1e6)


def rows_on_a_line(middle_factor: float = 1.0) -> list[dict[str, Any]]:
    out = []
    for rate in (200, 500, 1000):
        f = middle_factor if rate == 500 else 1.0
        out.append(row(rate, {
            "ingress": round(linear(rate, 0.05, 250) * f),
            "router": round(linear(rate, 0.10, 400) * f),
            "forwarder-1": round(linear(rate, 0.08, 350) * f),
            "nats-server": round(linear(rate, 0.10, 450) * f),
        }))  # fmt: skip
    return [*out, {**row(500, {"inproc": 400}), "target": "in-process"}]


def test_the_lines_go_through_the_lowest_and_highest_rate() -> None:
    lines = capacity.fit(rows_on_a_line())
    assert lines["router"].idle == pytest.approx(0.10, abs=0.002)
    assert lines["router"].per_event_us == pytest.approx(400, rel=0.01)
    assert lines["forwarder"].cores(1000) == pytest.approx(0.08 + 0.35, rel=0.01)


@pytest.mark.parametrize(("factor", "ok"), [(1.0, True), (1.2, True), (0.8, True), (1.4, False)])
def test_the_check_fails_when_the_middle_rate_is_off_by_more_than_25_percent(
    factor: float, ok: bool
) -> None:
    result = capacity.check(rows_on_a_line(factor))
    (point,) = result["points"]
    assert point["rate"] == 500
    assert point["error"] == pytest.approx(1 / factor - 1, abs=0.01)
    assert result["ok"] is ok


def test_the_check_needs_a_rate_between_the_two_it_fits() -> None:
    assert capacity.check(rows_on_a_line()[:2])["ok"] is None


def test_bytes_per_event_average_over_the_rates() -> None:
    # 1000 events at 100/s, then 3000 at 300/s: 1000 B, 500 B of records, 2000 B on disk each
    rows = [
        row(100, {"ingress": 1}, {"LK_EVENTS": 10**6, "SIP_ATTEMPTS": 500_000, "disk": 2 * 10**6}),
        row(
            300,
            {"ingress": 1},
            {"LK_EVENTS": 3 * 10**6, "SIP_ATTEMPTS": 1_500_000, "disk": 6 * 10**6},
        ),
    ]
    stored = capacity.bytes_per_event(rows)
    assert stored["LK_EVENTS"] == 1000
    assert stored["SIP_ATTEMPTS"] == 500
    assert stored["disk"] == 2000


def test_size_for_n_events_and_r_days() -> None:
    lines = {s: capacity.Line(0.1, 500) for s in capacity.SERVICES}
    stored = {"LK_EVENTS": 1000.0, "SIP_ATTEMPTS": 1000.0, "disk": 2400.0}
    s = capacity.size(2000, 7, lines, stored, nats_rss_mb=100, hook_latency_s=0.2)
    assert s.replicas["router"] == 2  # ceil(1.1 / 0.6)
    assert s.cores["router"] == pytest.approx(1.1 + 0.1)  # the second replica idles too
    assert s.cores["nats-server"] == pytest.approx(1.1)  # per node
    assert s.replicas["forwarder"] == 4  # 2000/s * 0.2 s in flight / 100 per worker
    # 2000/s * 7 days * 2000 B * 1.2 (disk over stream bytes) per node
    assert s.nats_disk_gb == pytest.approx(2000 * 7 * 86400 * 2000 * 1.2 / 1e9, rel=0.01)
    # 100 MB + 2000/s * 600 s window * 2 streams * 190 B of message ids
    # + 2 record subjects of 236 B per event kept (7 days of them)
    ids, subjects = 2000 * 600 * 2 * 190, 2000 * 7 * 86400 * 2 * 236
    assert s.nats_memory_gb == pytest.approx(0.1 + (ids + subjects) / 1e9, rel=0.01)


def test_records_stop_growing_at_their_byte_cap() -> None:
    lines = {s: capacity.Line(0.1, 500) for s in capacity.SERVICES}
    stored = {"LK_EVENTS": 1000.0, "SIP_ATTEMPTS": 1000.0}
    capped = capacity.size(2000, 7, lines, stored, 100, records_max_bytes=1 << 30)
    assert capped.nats_disk_gb == pytest.approx(
        (2000 * 7 * 86400 * 1000 + (1 << 30)) / 1e9, rel=0.01
    )


def test_the_command_sizes_from_a_results_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = rows_on_a_line()
    for r in rows:
        r["stored"] = {"LK_EVENTS": r["accepted"] * 1500, "SIP_ATTEMPTS": r["accepted"] * 700}
    res = {"e2e": rows, "memory": [{"process": "nats-server", "peak_rss_mb": 90.0}]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(res))
    assert capacity.main([str(path), "--rate", "600", "--days", "7"]) == 0
    out = capsys.readouterr().out
    assert "capacity check: PASSED" in out
    assert "600 events/s, 7 days retained" in out
    assert "bytes per event: LK_EVENTS 1500, SIP_ATTEMPTS 700" in out
