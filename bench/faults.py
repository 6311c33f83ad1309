"""The fault suite (`make faults`, `python -m bench.run --only faults`): real processes on
loopback, webhooks at a fixed rate retried as LiveKit retries them, one fault each.

Per scenario one row: sent, acked (200 within the retry budget), delivered and lost
(acked events of healthy tenants that never reached their hook), duplicates (repeat
arrivals at the hook), the longest stretch of non-200 answers, and the healthy
tenant's p99 from first send to arrival. Any loss fails the run.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import procs
from bench.fault_stack import (
    HEALTHY_HOST,
    HOLE_HOST,
    OTHER_HOST,
    Hook,
    Stack,
    sink_hooks,
    start_black_hole,
    start_cluster,
)
from bench.harness import Bench, Sink
from bench.traffic import Traffic
from sayna_sip.common import topology

Row = dict[str, Any]
# Retry delays 1s,2s,2s,5s,5s after an immediate first try (the black hole).
HOLE_SCHEDULE = "0s,1s,2s,2s,5s,5s"


@dataclass(frozen=True)
class FaultPlan:
    name: str
    rate: float  # webhooks/s
    seconds: float  # of traffic per kill scenario
    fault_at: float  # seconds into the traffic
    cluster_seconds: float
    hole_events: int  # events of the black-hole scenario, alternating two tenants
    hole_rate: float
    drain_timeout: float


FULL = FaultPlan("full", 50, 12, 3, 30, 400, 100, 90)
SHORT = FaultPlan("short", 40, 4, 1, 14, 300, 100, 60)


def _row(scenario: str, traffic: Traffic, sink: Sink, healthy: set[str], dups0: int) -> Row:
    arrivals = sink.arrivals()
    want = [i for i in traffic.acked if traffic.host(i) in healthy]
    got = [i for i in want if traffic.event_id(i) in arrivals]
    lat = sorted(arrivals[traffic.event_id(i)] - traffic.ready(i) for i in got)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None
    return traffic.order(sink) | {
        "scenario": scenario,
        "sent": traffic.count,
        "acked": len(traffic.acked),
        "delivered": len(got),
        "lost": len(want) - len(got),
        "duplicates": sink.stats()["duplicates"] - dups0,
        "non_200": traffic.non_200,
        "longest_non_200_s": round(traffic.longest_outage(), 2),
        "healthy_p99_ms": round(p99 * 1000) if p99 is not None else None,
        "slowest_answer_s": round(traffic.slowest, 2),
        "failed_tries": {str(k): v for k, v in sorted(traffic.statuses.items())},
    }


def _wait_delivered(sink: Sink, traffic: Traffic, healthy: set[str], timeout: float) -> None:
    want = {traffic.event_id(i) for i in traffic.acked if traffic.host(i) in healthy}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not want <= sink.arrivals().keys():
        time.sleep(0.2)


def run_scenario(
    b: Bench,
    sink: Sink,
    stack: Stack,
    scenario: str,
    traffic: Traffic,
    fault: Callable[[], Awaitable[None]],
    timeout: float,
) -> Row:
    healthy = set(traffic.hosts) - {HOLE_HOST}
    dups0 = sink.stats()["duplicates"]

    async def both() -> None:
        await asyncio.gather(traffic.send(stack.ingress_port), fault())

    asyncio.run(both())
    _wait_delivered(sink, traffic, healthy, timeout)
    return _row(scenario, traffic, sink, healthy, dups0)


def _traffic(b: Bench, label: str, rate: float, count: int, *hosts: str) -> Traffic:
    return Traffic(b.unique(label), hosts or (HEALTHY_HOST,), rate, count)


def service_kill(
    b: Bench, sink: Sink, plan: FaultPlan, name: str, traffic: Traffic | None = None
) -> Row:
    """SIGKILL `name` mid-stream, start it again at once."""
    nats_proc, url = b.start_nats(f"kill-{name}")
    stack = Stack(b, url, sink_hooks(sink, HEALTHY_HOST), forwarders=2)
    stack.start()

    async def fault() -> None:
        await asyncio.sleep(plan.fault_at)
        await asyncio.to_thread(stack.kill, name)
        await asyncio.to_thread(stack.restart, name)

    traffic = traffic or _traffic(b, name[:3], plan.rate, int(plan.rate * plan.seconds))
    try:
        return run_scenario(b, sink, stack, f"SIGKILL {name}", traffic, fault, plan.drain_timeout)
    finally:
        stack.close()
        b.stop(nats_proc)


def nats_restart(b: Bench, sink: Sink, plan: FaultPlan, traffic: Traffic | None = None) -> Row:
    """Stop nats-server (SIGTERM) mid-stream and start it again on its port and store."""
    nats_proc, url = b.start_nats("restart")
    stack = Stack(b, url, sink_hooks(sink, HEALTHY_HOST), forwarders=2)
    stack.start()
    current = [nats_proc]

    def bounce() -> None:
        b.stop(current[0])
        proc = b.track(procs.Proc("nats-server", current[0].cmd, b.logs, {}))
        procs.wait_tcp(proc, int(url.rsplit(":", 1)[1]))
        current[0] = proc

    async def fault() -> None:
        await asyncio.sleep(plan.fault_at)
        await asyncio.to_thread(bounce)

    traffic = traffic or _traffic(b, "nrs", plan.rate, int(plan.rate * plan.seconds))
    try:
        return run_scenario(
            b, sink, stack, "nats-server restart", traffic, fault, plan.drain_timeout
        )
    finally:
        stack.close()
        b.stop(current[0])


def cluster_failover(b: Bench, sink: Sink, plan: FaultPlan, traffic: Traffic | None = None) -> Row:
    """R3 cluster: SIGKILL the LK_EVENTS leader, restart it, then the same for a follower."""
    cluster = start_cluster(b, "failover")
    stack = Stack(b, cluster.url, sink_hooks(sink, HEALTHY_HOST), forwarders=2, replicas=3)
    stack.start()

    async def lose(pick_leader: bool) -> None:
        leader = await cluster.leader(topology.LK_EVENTS)
        names = [n.name for n in cluster.nodes]
        victim = leader if pick_leader else next(n for n in names if n != leader)
        await asyncio.to_thread(cluster.kill, victim)
        await cluster.leader(topology.LK_EVENTS)  # a new one was elected (or kept)
        await asyncio.sleep(plan.cluster_seconds / 8)
        await asyncio.to_thread(cluster.restart, victim)
        await cluster.wait_current(topology.LK_EVENTS)

    async def fault() -> None:
        await asyncio.sleep(plan.cluster_seconds / 8)
        await lose(pick_leader=True)
        await lose(pick_leader=False)

    traffic = traffic or _traffic(b, "clu", plan.rate, int(plan.rate * plan.cluster_seconds))
    try:
        return run_scenario(
            b, sink, stack, "R3 leader, then follower", traffic, fault, plan.drain_timeout
        )
    finally:
        stack.close()
        cluster.close()


def black_hole(b: Bench, sink: Sink, plan: FaultPlan) -> list[Row]:
    """Two tenants alternating at `hole_rate`: both healthy (baseline), then one a hole."""
    _, hole_url = start_black_hole(b)
    nats_proc, url = b.start_nats("hole")
    hooks = [*sink_hooks(sink, HEALTHY_HOST, OTHER_HOST), Hook(HOLE_HOST, hole_url)]
    env = {"SIP_RETRY_SCHEDULE": HOLE_SCHEDULE}
    stack = Stack(b, url, hooks, forwarders=2, env=env)
    stack.start()

    async def no_fault() -> None:
        return None

    rows = []
    try:
        for label, other in (("baseline", OTHER_HOST), ("hole", HOLE_HOST)):
            traffic = _traffic(b, label[:3], plan.hole_rate, plan.hole_events, HEALTHY_HOST, other)
            name = "black-hole tenant" if other == HOLE_HOST else "two healthy tenants"
            rows.append(run_scenario(b, sink, stack, name, traffic, no_fault, plan.drain_timeout))
    finally:
        stack.close()
        b.stop(nats_proc)
    return rows


def run_all(
    b: Bench,
    sink: Sink,
    plan: FaultPlan,
    log: Callable[[str], None],
    select: Collection[str] = (),
) -> list[Row]:
    """Every step, or those whose label contains one of `select`."""
    from bench import order_faults  # its scenarios are built on this module's

    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], Row | list[Row]]]] = [
        ("ingress", lambda: service_kill(b, sink, plan, "ingress")),
        ("router", lambda: service_kill(b, sink, plan, "router")),
        ("forwarder", lambda: service_kill(b, sink, plan, "forwarder-1")),
        ("nats restart", lambda: nats_restart(b, sink, plan)),
        ("cluster", lambda: cluster_failover(b, sink, plan)),
        ("black hole", lambda: black_hole(b, sink, plan)),
        # Ordered delivery per call (#30): five-event calls, ordering on (the default).
        ("order test", lambda: order_faults.order_test(b, sink, plan)),
        ("order test, unordered", lambda: order_faults.order_test(b, sink, plan, "none")),
        ("forwarder, calls", lambda: order_faults.forwarder_kill(b, sink, plan)),
        ("nats restart, calls", lambda: order_faults.nats_restart(b, sink, plan)),
        ("cluster, calls", lambda: order_faults.cluster_failover(b, sink, plan)),
    ]
    for label, step in steps:
        if select and not any(word in label for word in select):
            continue
        started = time.perf_counter()
        got = step()
        rows += got if isinstance(got, list) else [got]
        log(f"faults: {label} took {time.perf_counter() - started:.1f}s")
    return rows


COLUMNS = (
    ("scenario", 26),
    ("sent", 5),
    ("acked", 5),
    ("delivered", 9),
    ("lost", 4),
    ("duplicates", 10),
    ("non_200", 7),
    ("longest_non_200_s", 17),
    ("healthy_p99_ms", 14),
    ("slowest_answer_s", 16),
)


def table(rows: list[Row]) -> str:
    head = "  ".join(name.ljust(width) for name, width in COLUMNS)
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = ("-" if row[n] is None else str(row[n]) for n, _ in COLUMNS)
        lines.append("  ".join(c.ljust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)))
    return "\n".join(lines)


def disordered_calls(rows: list[Row]) -> int:
    """Calls out of order (or with a numbering gap) where the order is promised."""
    return sum(
        r["calls_out_of_order"] + r["calls_with_gaps"]
        for r in rows
        if "calls" in r and r.get("ordering", "call") == "call"
    )


ORDER_COLUMNS = (
    ("scenario", 28),
    ("calls", 5),
    ("calls_out_of_order", 18),
    ("calls_with_gaps", 15),
    ("duplicates", 10),
    ("healthy_p99_ms", 14),
    ("example", 60),
)


def order_table(rows: list[Row]) -> str:
    """The call scenarios: per scenario, calls that did not arrive in LiveKit's order."""
    head = "  ".join(name.ljust(width) for name, width in ORDER_COLUMNS)
    lines = [head, "-" * len(head)]
    for row in rows:
        if "calls" in row:
            cells = ("-" if row.get(n) in (None, "") else str(row[n]) for n, _ in ORDER_COLUMNS)
            lines.append(
                "  ".join(c.ljust(w) for c, (_, w) in zip(cells, ORDER_COLUMNS, strict=True))
            )
    return "\n".join(lines)


def main(short: bool, out_dir: Path, keep: bool, select: Collection[str] = ()) -> int:
    """Run every scenario, print the table, write `<out_dir>/<date>-faults.json`;
    1 when an acked event of a healthy tenant was lost, or a call that orders by call
    arrived out of order. `select`: only the steps whose label contains one of these."""
    plan = SHORT if short else FULL
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="sayna-faults-"))

    def log(line: str) -> None:
        print(f"[faults {time.perf_counter() - started:5.1f}s] {line}", file=sys.stderr, flush=True)

    b = Bench(work, secrets.token_hex(3))
    try:
        sink = b.start_sink()
        rows = run_all(b, sink, plan, log, select)
        sink.close()
    finally:
        b.close()
        if keep:
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"date": datetime.now().astimezone().isoformat(timespec="seconds")}
    result |= {"plan": asdict(plan), "rows": rows}
    result["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    path = out_dir / f"{datetime.now():%Y-%m-%d-%H%M%S}-faults-{plan.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print()
    print(order_table(rows))
    print(f"results: {path} ({result['elapsed_seconds']}s)")
    lost = sum(r["lost"] for r in rows)
    if lost:
        print(f"FAILED: {lost} acked event(s) lost")
    disordered = disordered_calls(rows)
    if disordered:
        print(f"FAILED: {disordered} call(s) out of order (or numbered with a gap)")
    return 1 if lost or disordered else 0
