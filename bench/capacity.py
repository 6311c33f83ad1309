"""The sizing model of docs/capacity.md, from one `make bench` run's measured costs.

Every process's CPU is modelled as a straight line in the event rate N (events/s):
`cores = idle + per_event_us * N / 1e6` (its polling loops cost something at rest;
batching makes the per-event part fall as N grows, which a line through the lowest and
the highest measured rate captures). The check fits the line on those two rates of the
end-to-end scenario and predicts the rates in between, all within one run, so a noisy
shared machine moves both sides alike. Disk is bytes stored per event per stream, times
N, times the retention. `size()` turns the lines into cores, replicas and NATS disk and
memory for a given N and retention.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats

from sayna_sip.common import topology

Row = dict[str, Any]
SERVICES = ("ingress", "router", "forwarder", "nats-server")
TOLERANCE = 0.25  # the bound on a prediction's error
UTIL = 0.6  # plan every process at 60 % of a core: bursts, GC pauses, one replica lost
FORWARDER_CONCURRENCY = 100  # FORWARDER_CONCURRENCY's default: requests in flight per worker
# nats-server memory per message, measured by `python -m bench.nats_memory` (2026-12-06):
DEDUPE_ENTRY_BYTES = 190  # a message id held for the duplicate window
SUBJECT_BYTES = 236  # a subject the stream holds (a record's subject names its event)
DEDUPED_STREAMS = 2  # LK_EVENTS and SIP_DELIVERIES carry a Nats-Msg-Id per message
RECORDS_PER_EVENT = 2  # a route record and an attempt record per delivered event
STORED = (
    topology.LK_EVENTS,
    topology.SIP_ATTEMPTS,
    topology.SIP_AUDIT,
    topology.SIP_DELIVERIES,
    topology.SIP_DEAD,
)


@dataclass(frozen=True)
class Line:
    idle: float  # cores at rest
    per_event_us: float  # CPU microseconds per event on top

    def cores(self, rate: float) -> float:
        return self.idle + self.per_event_us * rate / 1e6


def service_cores(row: Row) -> dict[str, float]:
    """Cores each service used while `row`'s traffic ran (forwarders summed)."""
    by = row["cpu_us_per_event_by_process"]
    rate = row["offered_rate"]
    cores = dict.fromkeys(SERVICES, 0.0)
    for name, us in by.items():
        service = "forwarder" if name.startswith("forwarder") else name
        if service in cores:
            cores[service] += us * rate / 1e6
    return cores


def _rows(e2e: list[Row]) -> list[Row]:
    rows = (r for r in e2e if r["target"] == "sayna-sip" and "cpu_us_per_event_by_process" in r)
    return sorted(rows, key=lambda r: r["offered_rate"])


def fit(e2e: list[Row]) -> dict[str, Line]:
    """The line of each service through the lowest and the highest measured rate."""
    rows = _rows(e2e)
    lo, hi = rows[0], rows[-1]
    r_lo, r_hi = lo["offered_rate"], hi["offered_rate"]
    c_lo, c_hi = service_cores(lo), service_cores(hi)
    lines = {}
    for s in SERVICES:
        slope = (c_hi[s] - c_lo[s]) / (r_hi - r_lo) if r_hi != r_lo else c_lo[s] / r_lo
        lines[s] = Line(idle=c_lo[s] - slope * r_lo, per_event_us=slope * 1e6)
    return lines


def check(e2e: list[Row]) -> dict[str, Any]:
    """Predict every rate between the two the lines were fitted on; `ok` when each total
    (and the figures are printed per service) is within TOLERANCE of the measured one."""
    rows = _rows(e2e)
    if len(rows) < 3:
        return {"ok": None, "why": "needs 3 or more end-to-end rates (the full plan)", "points": []}
    lines = fit(e2e)
    points = []
    for row in rows[1:-1]:
        rate, measured = row["offered_rate"], service_cores(row)
        predicted = {s: lines[s].cores(rate) for s in SERVICES}
        total_m, total_p = sum(measured.values()), sum(predicted.values())
        points.append({
            "rate": rate,
            "measured_cores": round(total_m, 3),
            "predicted_cores": round(total_p, 3),
            "error": round(total_p / total_m - 1, 3),
            "by_service_error": {
                s: round(predicted[s] / measured[s] - 1, 3) if measured[s] else None
                for s in SERVICES
            },
        })  # fmt: skip
    ok = all(abs(p["error"]) <= TOLERANCE for p in points)
    return {"ok": ok, "tolerance": TOLERANCE, "points": points}


def bytes_per_event(e2e: list[Row]) -> dict[str, float]:
    """Stored bytes per accepted event, per stream and on disk, over every measured rate."""
    rows = [r for r in _rows(e2e) if r.get("stored")]
    events = sum(r["accepted"] for r in rows)
    if not events:
        return {}
    names = [*STORED, "disk"]
    return {n: round(sum(r["stored"].get(n, 0) for r in rows) / events, 1) for n in names}


@dataclass(frozen=True)
class Sizing:
    rate: float
    days: float
    cores: dict[str, float]  # per service, summed over its replicas (nats-server: per node)
    replicas: dict[str, int]
    nats_disk_gb: float  # per node: R3 keeps a full copy on each
    nats_memory_gb: float  # per node


def size(
    rate: float,
    days: float,
    lines: dict[str, Line],
    stored: dict[str, float],
    nats_rss_mb: float,
    hook_latency_s: float = 0.2,
    records_max_bytes: float | None = None,
) -> Sizing:
    """What N events/s with `days` of retention (events and records) needs;
    `records_max_bytes` (SIP_ATTEMPTS_MAX_BYTES) caps the records, None: no cap.

    nats-server is measured as one R1 server; with R3 each node stores every message
    (leaders and followers spread over the nodes), so each node is sized as that server.
    """
    one = {s: lines[s].cores(rate) for s in SERVICES}  # as if one process did it all
    replicas = {s: max(2, math.ceil(one[s] / UTIL)) for s in ("ingress", "router")}
    in_flight = rate * hook_latency_s  # requests waiting for tenants' answers at once
    replicas["forwarder"] = max(
        2, math.ceil(one["forwarder"] / UTIL), math.ceil(in_flight / FORWARDER_CONCURRENCY)
    )
    # Every replica pays the idle part (its polling loops); the per-event part is shared.
    cores = {s: one[s] + (replicas[s] - 1) * lines[s].idle for s in replicas}
    cores["nats-server"] = one["nats-server"]
    replicas["nats-server"] = 3
    seconds = days * 86400
    per_event = stored.get(topology.SIP_ATTEMPTS, 0.0)
    records = rate * seconds * per_event
    if records_max_bytes is not None:
        records = min(records, records_max_bytes)
    disk = (rate * seconds * stored.get(topology.LK_EVENTS, 0.0) + records) * _disk_overhead(stored)
    dedupe = rate * topology.DUPLICATE_WINDOW * DEDUPED_STREAMS * DEDUPE_ENTRY_BYTES
    kept = records / per_event if per_event else rate * seconds  # events with records kept
    subjects = kept * RECORDS_PER_EVENT * SUBJECT_BYTES
    return Sizing(
        rate=rate,
        days=days,
        cores={s: round(c, 2) for s, c in cores.items()},
        replicas=replicas,
        nats_disk_gb=round(disk / 1e9, 1),
        nats_memory_gb=round((nats_rss_mb * 1e6 + dedupe + subjects) / 1e9, 2),
    )


def _disk_overhead(stored: dict[str, float]) -> float:
    """On-disk bytes over stream bytes (file store headers and indexes), at least 1."""
    logical = sum(stored.get(n, 0.0) for n in STORED)
    return max(1.0, stored.get("disk", 0.0) / logical) if logical else 1.0


async def stream_bytes(nats_url: str) -> dict[str, int]:
    """The bytes each stored stream holds now (a snapshot; the bench takes deltas)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        return {n: (await js.stream_info(n)).state.bytes for n in STORED}
    finally:
        await nc.close()


def disk_bytes(store: Path) -> int:
    """The size of every file under nats-server's store directory."""
    total = 0
    for root, _, files in os.walk(store):
        for f in files:
            try:
                total += (Path(root) / f).stat().st_size
            except FileNotFoundError:  # a block compacted away meanwhile
                continue
    return total


def text(res: dict[str, Any]) -> list[str]:
    """The printed section: the check, the fitted lines and the bytes per event."""
    e2e = res.get("e2e") or []
    if not _rows(e2e):
        return []
    result = check(e2e)
    lines = ["6. Capacity model (docs/capacity.md): CPU lines fitted on the lowest and highest"]
    lines.append("   end-to-end rates, predicting the rates between (same run, same noise)")
    for s, line in fit(e2e).items():
        lines.append(f"   {s:<12} {line.idle:6.3f} cores idle + {line.per_event_us:5.0f} us/event")
    for p in result["points"]:
        lines.append(
            f"   at {p['rate']} ev/s: predicted {p['predicted_cores']:.3f} cores, measured"
            f" {p['measured_cores']:.3f}: error {p['error']:+.1%} (bound ±{TOLERANCE:.0%})"
        )
    if result["ok"] is None:
        lines.append(f"   check not run: {result['why']}")
    else:
        lines.append(f"   capacity check: {'PASSED' if result['ok'] else 'FAILED'}")
    stored = bytes_per_event(e2e)
    if stored:
        lines.append("   bytes per event: " + ", ".join(f"{k} {v:.0f}" for k, v in stored.items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.capacity RESULTS.json --rate N --days R`: the sizing of docs/capacity.md."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m bench.capacity", description=main.__doc__)
    p.add_argument("results", type=Path, help="a full `make bench` results file")
    p.add_argument("--rate", type=float, required=True, help="events/s")
    p.add_argument("--days", type=float, default=7.0, help="retention of events and records")
    p.add_argument("--hook-latency", type=float, default=0.2, help="tenants' answer time, s")
    p.add_argument("--records-max-bytes", type=float, default=None, help="SIP_ATTEMPTS_MAX_BYTES")
    args = p.parse_args(argv)
    res = json.loads(args.results.read_text())
    rss = max(
        (m["peak_rss_mb"] for m in res["memory"] if m["process"] == "nats-server"), default=0.0
    )
    print("\n".join(text(res)))
    s = size(
        args.rate,
        args.days,
        fit(res["e2e"]),
        bytes_per_event(res["e2e"]),
        rss,
        args.hook_latency,
        args.records_max_bytes,
    )
    print(f"\n{s.rate:g} events/s, {s.days:g} days retained:")
    for name in SERVICES:
        unit = "per node, 3 nodes" if name == "nats-server" else f"{s.replicas[name]} replicas"
        print(f"  {name:<12} {s.cores[name]:6.2f} cores ({unit})")
    print(f"  NATS disk {s.nats_disk_gb} GB per node, memory {s.nats_memory_gb} GB per node")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
