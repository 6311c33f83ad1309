"""The three measurements, each next to its baseline in the same run.

1. ingress: max-rate signed webhooks (200 after PubAck) vs a bare Litestar 200.
2. end_to_end: POST -> sink arrival at fixed offered rates, vs the in-process forwarder.
3. forwarders: deliveries/s of 1, 2, 4 forwarders draining a backlog, vs raw aiohttp.
Each returns plain dicts for the JSON file; peak RSS goes to `memory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nats

from bench import capacity, events, procs
from bench.harness import Bench, Sink, endpoint_ids
from bench.plan import Plan
from bench.procs import Proc
from bench.stats import summary_ms
from sayna_sip.common import contracts, topology
from sayna_sip.common.contracts import Header

Row = dict[str, Any]
# Messages a forwarder put back (nak) because the host was at its cap: churn, not work.
DEFERRED = "sayna_sip_forwarder_deferred_total"


def _memory(scenario: str, *named: tuple[str, Proc]) -> list[Row]:
    return [
        {"scenario": scenario, "process": name, "peak_rss_mb": round(p.peak_rss_mb(), 1)}
        for name, p in named
    ]


def _start_ingress(b: Bench, env: dict[str, str]) -> tuple[Proc, int]:
    port = procs.free_port()
    return b.start_service("ingress", "ingress", env | {"PORT": str(port)}, port), port


def _closed(b: Bench, proc: Proc, port: int, label: str, conns: int, plan: Plan, count: int) -> Row:
    cpu0 = proc.cpu_seconds()
    args = ["--mode", "closed", "--conns", str(conns), "--duration", str(plan.ingress_seconds)]
    args += ["--warmup", str(plan.warmup_seconds), "--count", str(count)]
    r = b.loadgen(port, label, args)
    busy = plan.ingress_seconds + plan.warmup_seconds
    return {
        "target": label,
        "conns": conns,
        "rate": r["rate"],
        "ok": r["ok"],
        "errors": r["sent"] - r["ok"],
        "latency": r["latency"],
        "server_cpu_util": round((proc.cpu_seconds() - cpu0) / busy, 2),
        # CPU per request moves much less than req/s when other work shares the cores.
        "server_cpu_us_per_req": round((proc.cpu_seconds() - cpu0) / max(r["issued"], 1) * 1e6),
        "loadgen_cpu_util": r["cpu_util"],
        "ids_wrapped": r.get("wrapped", 0),
    }


def ingress(b: Bench, sink: Sink, plan: Plan) -> tuple[list[Row], list[Row]]:
    """Closed-loop webhooks/s: the ingress (router off) against the bare Litestar handler."""
    bare, bare_port = b.start_baseline("bare", [])
    nats_proc, url = b.start_nats("ingress")
    b.provision(url, sink)
    ing, ing_port = _start_ingress(b, b.service_env(url, sink))
    rows: list[Row] = []
    # Enough distinct signed events that the ingress never sees a duplicate id.
    count = int(12_000 * (plan.ingress_seconds + plan.warmup_seconds))
    for conns in plan.ingress_conns:
        rows.append(_closed(b, bare, bare_port, "bare", conns, plan, 2_000))
        profiled = conns == plan.ingress_conns[-1]
        with b.profiles.record("ingress", ing) if profiled else contextlib.nullcontext():
            rows.append(_closed(b, ing, ing_port, "ingress", conns, plan, count))
    memory = _memory("ingress", ("ingress", ing), ("nats-server", nats_proc), ("bare", bare))
    b.stop(ing, bare, nats_proc)
    return rows, memory


def _deferred(workers: Sequence[Proc]) -> float:
    return sum(procs.metric_total(f, DEFERRED) for f in workers)


def _open_rate(
    b: Bench,
    sink: Sink,
    port: int,
    label: str,
    rate: int,
    plan: Plan,
    servers: Sequence[Proc],
    workers: Sequence[Proc] = (),
    store: tuple[str, Path] | None = None,
) -> Row:
    """One offered rate; `servers` are every process of the system under test (for CPU);
    `store` (NATS URL, store dir): also count what the rate left in each stream and on disk."""
    sink.reset()
    deferred0 = _deferred(workers)
    stored0 = _stored(store)
    cpu0 = [p.cpu_seconds() for p in servers]
    args = ["--mode", "open", "--rate", str(rate), "--duration", str(plan.e2e_seconds)]
    r = b.loadgen(port, f"{label}{rate}", [*args, "--conns", str(plan.e2e_conns)])
    sink.wait_for(r["ok"], plan.drain_timeout)
    spent = {p.name: p.cpu_seconds() - c for p, c in zip(servers, cpu0, strict=True)}
    stored = {k: v - stored0.get(k, 0) for k, v in _stored(store).items()}
    arrivals, failed = sink.arrivals(), set(r["failed_indices"])
    latencies, lost = [], 0
    for i in range(r["sent"]):
        if i in failed:
            continue
        at = arrivals.get(events.event_id(r["run"], i))
        if at is None:
            lost += 1
        else:
            latencies.append(at - (r["wall0"] + i / rate))
    return {
        "target": label,
        "offered_rate": rate,
        "accepted": r["ok"],
        "rejected": r["sent"] - r["ok"],
        "delivered": len(latencies),
        "lost": lost,
        "duplicates": sink.stats()["duplicates"],
        "e2e": summary_ms(latencies),
        "response": r["latency"],
        "loadgen_cpu_util": r["cpu_util"],
        "max_send_lag_ms": round(r["max_send_lag_ms"], 2),
        "deferred": _deferred(workers) - deferred0,
        "cpu_us_per_event": round(sum(spent.values()) / max(r["ok"], 1) * 1e6),
        "cpu_us_per_event_by_process": {
            name: round(sec / max(r["ok"], 1) * 1e6) for name, sec in spent.items()
        },
        **({"stored": stored} if store else {}),
    }


def _stored(store: tuple[str, Path] | None) -> dict[str, int]:
    """Bytes in each stream and on disk now (docs/capacity.md's bytes per event)."""
    if store is None:
        return {}
    url, path = store
    return asyncio.run(capacity.stream_bytes(url)) | {"disk": capacity.disk_bytes(path)}


def end_to_end(b: Bench, sink: Sink, plan: Plan) -> tuple[list[Row], list[Row]]:
    """POST -> hook arrival through ingress, router and forwarder(s), vs in-process."""
    nats_proc, url = b.start_nats("e2e")
    b.provision(url, sink)
    env = b.service_env(url, sink)
    ing, ing_port = _start_ingress(b, env)
    router_port = procs.free_port()
    router = b.start_service(
        "router", "router", env | {"ROUTER_PORT": str(router_port)}, router_port
    )
    workers = _start_forwarders(b, env, plan.e2e_forwarders)
    system = [ing, router, *workers, nats_proc]
    store = (url, b.dir / "nats-e2e")
    rows = [
        _open_rate(b, sink, ing_port, "sayna-sip", rate, plan, system, workers, store)
        for rate in plan.e2e_rates[:-1]
    ]
    last = plan.e2e_rates[-1]
    with b.profiles.record("router", router), b.profiles.record("forwarder-e2e", workers[0]):
        rows.append(_open_rate(b, sink, ing_port, "sayna-sip", last, plan, system, workers, store))
    memory = _memory("e2e", ("ingress", ing), ("router", router), ("nats-server", nats_proc))
    memory += _memory("e2e", *(("forwarder", f) for f in workers), ("sink", sink.proc))
    b.stop(ing, router, *workers, nats_proc)
    extra = ["--hook-url", sink.url(), "--ca", str(b.ca_path)]
    inproc, port = b.start_baseline("inproc", extra)
    rows += [_open_rate(b, sink, port, "in-process", r, plan, [inproc]) for r in plan.e2e_rates]
    memory += _memory("e2e", ("in-process", inproc))
    b.stop(inproc)
    return rows, memory


def _start_forwarders(b: Bench, env: dict[str, str], count: int) -> list[Proc]:
    specs = []
    for n in range(count):
        port = procs.free_port()
        specs.append((f"forwarder-{n + 1}", "forwarder", env | {"FORWARDER_PORT": str(port)}, port))
    return b.start_services(specs)


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (all cores, /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def _publish_backlog(nats_url: str, run: str, count: int, endpoints: int = 1) -> None:
    """Delivery messages exactly as the router publishes them (see router/routing.py),
    spread over the tenant hook's `endpoints` (each copy its own event id, so the sink
    counts deliveries, not duplicates)."""
    ids = endpoint_ids(endpoints)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    subject = contracts.delivery_subject(events.TENANT_HOST)
    try:
        for start in range(0, count, 500):
            batch = []
            for i in range(start, min(count, start + 500)):
                event_id = events.event_id(run, i)
                headers = {
                    Header.MSG_ID: event_id,
                    Header.EVENT_ID: event_id,
                    Header.EVENT: "participant_joined",
                    Header.ROOM: f"{events.ROOM_PREFIX}{run}-{i}",
                    Header.HOOK: events.TENANT_HOST,
                    Header.SIP_HOST: events.TENANT_HOST,
                    Header.RECEIVED_AT: f"{time.time():.6f}",
                }
                if ids[i % endpoints] != "default":
                    headers[Header.ENDPOINT] = ids[i % endpoints]
                body = events.event_body(run, i)
                batch.append(
                    js.publish(subject, body, stream=topology.SIP_DELIVERIES, headers=headers)
                )
            await asyncio.gather(*batch)
    finally:
        await nc.close()


def _drain(
    b: Bench, sink: Sink, nats_proc: Proc, url: str, env: dict[str, str], k: int, plan: Plan
) -> Row:
    """The backlog is stored first, then k forwarders start together and drain it: the
    publisher does not compete for the cores, as the raw sender has none either. Rate
    and CPU count from the moment all k are ready (a few deliveries may come before)."""
    sink.reset()
    run = b.unique(f"fwd{k}x")
    asyncio.run(_publish_backlog(url, run, plan.backlog, b.endpoints))
    workers = _start_forwarders(b, env, k)
    with b.profiles.record("forwarder", workers[0]) if k == 1 else contextlib.nullcontext():
        ready = time.time()
        cpu0 = [f.cpu_seconds() for f in workers]
        sink_cpu0, nats_cpu0, machine0 = (
            sink.proc.cpu_seconds(), nats_proc.cpu_seconds(), _machine_busy()
        )  # fmt: skip
        delivered = sink.wait_for(plan.backlog, plan.drain_timeout)
        machine = _machine_busy() - machine0
        cpu = [f.cpu_seconds() - c for f, c in zip(workers, cpu0, strict=True)]
        nats_cpu = nats_proc.cpu_seconds() - nats_cpu0
        sink_cpu = sink.proc.cpu_seconds() - sink_cpu0
    times = sorted(t for t in sink.arrivals().values() if t >= ready)
    span = (times[-1] - times[0]) if len(times) > 1 else 0.0
    busy = max(span, 1e-6)
    row = {
        "forwarders": k,
        "endpoints": b.endpoints,
        "backlog": plan.backlog,
        "delivered": delivered,
        "measured": len(times),
        "seconds": round(span, 3),
        "rate": round((len(times) - 1) / busy, 1) if span else 0.0,
        "forwarder_cpu_util": [round(c / busy, 2) for c in cpu],
        "sink_cpu_util": round(sink_cpu / busy, 2),
        "nats_cpu_util": round(nats_cpu / busy, 2),
        "machine_busy_cores": round(machine / busy, 2),
        "cpu_us_per_delivery": round(sum(cpu) / max(len(times), 1) * 1e6),
        "duplicates": sink.stats()["duplicates"],
        "deferred": _deferred(workers),
        "peak_rss_mb": [round(f.peak_rss_mb(), 1) for f in workers],
    }
    b.stop(*workers)
    return row


def forwarders(b: Bench, sink: Sink, plan: Plan) -> tuple[list[Row], Row, list[Row]]:
    """Deliveries/s for 1, 2, 4 forwarder processes, and the raw aiohttp POST rate
    at the forwarder's per-host cap (10 in flight)."""
    sink.reset()
    raw_row = b.raw_rate(sink, plan.backlog, concurrency=10)
    nats_proc, url = b.start_nats("forwarders")
    b.provision(url, sink)
    env = b.service_env(url, sink)
    rows = [_drain(b, sink, nats_proc, url, env, k, plan) for k in plan.forwarder_counts]
    memory = _memory("forwarders", ("nats-server", nats_proc))
    b.stop(nats_proc)
    return rows, raw_row, memory
