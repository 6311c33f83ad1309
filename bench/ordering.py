"""Ordered delivery per call (`ordering: call`) next to `ordering: none`, in one run (#30).

Two whole pipelines (nats-server, ingress, router, forwarders), one per ordering
(`SIP_ORDERING`), both delivering to the bench sink; every measurement runs on one
and then at once on the other, so they see the same machine:
- end to end: `plan.order_calls` interleaved calls x 5 events (bench/calls.py) posted
  at each of `plan.order_rates`, latency from when an event could first go (its send;
  for `room_started`, its call's join) to its first arrival at the sink;
- drain: the same calls' numbered copies stored first (as the router stores them), then
  k forwarders start together: deliveries/s.
For both: CPU per event (every process of the pipeline, nats-server included), NATS
messages per event (nats-server's /varz `in_msgs + out_msgs`: every publish, reply,
pull request, delivery, ack and KV read or write), and how many calls arrived out of
order. Targets (issue #30): deliveries/s ordered >= 0.9x unordered, p99 <= 1.2x.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import nats

from bench import calls, events, procs
from bench.fault_stack import HEALTHY_HOST, Stack, sink_hooks
from bench.harness import Bench, Sink
from bench.plan import Plan
from bench.procs import Proc
from bench.stats import summary_ms
from sayna_sip.common import contracts, topology
from sayna_sip.common.delivery import Delivery

Row = dict[str, Any]
MODES = ("call", "none")
WAITS = "sayna_sip_forwarder_order_waits_total"
DEFERRED = "sayna_sip_forwarder_deferred_total"


class Pipeline:
    """One ordering's nats-server (with its monitoring port) and services."""

    def __init__(self, b: Bench, sink: Sink, mode: str, forwarders: int) -> None:
        self.mode = mode
        self.monitor = procs.free_port()
        self.nats, url = b.start_nats(f"order-{mode}", monitor=self.monitor)
        env = {"SIP_ORDERING": mode}
        self.stack = Stack(b, url, sink_hooks(sink, HEALTHY_HOST), forwarders, env)
        self.url = url
        self.stack.start()

    def procs(self) -> list[Proc]:
        return [*self.stack.services.values(), self.nats]

    def nats_msgs(self) -> int:
        varz = httpx.get(f"http://127.0.0.1:{self.monitor}/varz", timeout=5.0).json()
        return int(varz["in_msgs"]) + int(varz["out_msgs"])

    def forwarders(self) -> list[Proc]:
        return self.stack.forwarders()

    def stop_forwarders(self) -> None:
        for name in [n for n in self.stack.services if n.startswith("forwarder")]:
            self.stack.kill(name)

    def start_forwarders(self, b: Bench, k: int) -> list[Proc]:
        """k forwarders at once (as scenarios.forwarders starts them)."""
        specs = []
        for n in range(k):
            name = f"forwarder-{n + 1}"
            port = self.stack.ports.setdefault(name, procs.free_port())
            specs.append((name, "forwarder", self.stack.env | {"FORWARDER_PORT": str(port)}, port))
        started = b.start_services(specs)
        for (name, *_), proc in zip(specs, started, strict=True):
            self.stack.services[name] = proc
        return started

    def close(self, b: Bench) -> None:
        self.stack.close()
        b.stop(self.nats)


class Meter:
    """CPU seconds of a pipeline's processes and its NATS messages, from now on."""

    def __init__(self, p: Pipeline, workers: list[Proc]) -> None:
        self._p, self._procs, self._workers = p, p.procs(), workers
        self._cpu = [x.cpu_seconds() for x in self._procs]
        self._msgs = p.nats_msgs()
        self._waits = _total(workers, WAITS)
        self._naks = _total(workers, DEFERRED)

    def read(self, events_done: int) -> Row:
        spent = [x.cpu_seconds() - c for x, c in zip(self._procs, self._cpu, strict=True)]
        per = max(events_done, 1)
        return {
            "cpu_us_per_event": round(sum(spent) / per * 1e6),
            "cpu_us_per_event_by_process": {
                x.name: round(s / per * 1e6) for x, s in zip(self._procs, spent, strict=True)
            },
            "nats_msgs_per_event": round((self._p.nats_msgs() - self._msgs) / per, 2),
            "order_waits": _total(self._workers, WAITS) - self._waits,
            "naks": _total(self._workers, DEFERRED) - self._naks,
        }


def _total(workers: list[Proc], metric: str) -> float:
    return sum(procs.metric_total(w, metric) for w in workers)


def _order(run: str, count: int, n_calls: int, sink: Sink) -> Row:
    got = calls.check_order(run, count, n_calls, sink.arrivals(), sink.seqs())
    return {"calls_out_of_order": got.out_of_order, "calls_with_gaps": got.gaps,
            "example": got.example}  # fmt: skip


def end_to_end(b: Bench, sink: Sink, p: Pipeline, rate: int, plan: Plan) -> Row:
    """`plan.order_calls` calls x 5 events posted at `rate`, through the whole pipeline."""
    sink.reset()
    n_calls = plan.order_calls
    count = n_calls * calls.STEPS
    meter = Meter(p, p.forwarders())
    args = ["--mode", "open", "--rate", str(rate), "--duration", str(count / rate)]
    args += ["--conns", str(plan.e2e_conns), "--calls", str(n_calls)]
    r = b.loadgen(p.stack.ingress_port, f"ord{p.mode}{rate}", args)
    sink.wait_for(r["ok"], plan.drain_timeout)
    arrivals, failed = sink.arrivals(), set(r["failed_indices"])
    sent_at = [r["wall0"] + i / rate for i in range(r["sent"])]
    latencies, lost = [], 0
    by_event: dict[str, list[float]] = {name: [] for name in calls.CALL}
    for i in range(r["sent"]):
        at = arrivals.get(events.event_id(r["run"], i))
        if i in failed:
            continue
        if at is None:
            lost += 1
        else:
            latencies.append(at - calls.ready_at(sent_at, i, n_calls))
            by_event[calls.CALL[calls.call_of(i, n_calls)[1]]].append(latencies[-1])
    return {
        "ordering": p.mode, "offered_rate": rate, "calls": n_calls, "accepted": r["ok"],
        "delivered": len(latencies), "lost": lost, "duplicates": sink.stats()["duplicates"],
        "e2e": summary_ms(latencies), "max_send_lag_ms": round(r["max_send_lag_ms"], 2),
        # Per event: the join's latency holds its room_started's delivery (ordered, it
        # goes only after it), which is where an ordered p99 parts from an unordered one.
        "e2e_by_event": {name: summary_ms(v) for name, v in by_event.items()},
        **meter.read(r["ok"]), **_order(r["run"], r["sent"], n_calls, sink),
    }  # fmt: skip


async def _store_calls(url: str, run: str, n_calls: int) -> None:
    """Every call's copies for the tenant's default endpoint, numbered as the router
    numbers them, in the interleaved order the router would have stored them."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    subject = contracts.delivery_subject(events.TENANT_HOST)
    count = n_calls * calls.STEPS
    try:
        for start in range(0, count, 500):
            batch = []
            for i in range(start, min(count, start + 500)):
                call, step = calls.call_of(i, n_calls)
                d = Delivery.first(
                    event_id=events.event_id(run, i), event=calls.CALL[step],
                    room=calls.room_name(run, call), hook=events.TENANT_HOST,
                    sip_host=events.TENANT_HOST, received_at=f"{time.time():.6f}",
                    call_seq=step + 1,
                )  # fmt: skip
                body = calls.event_body(run, i, n_calls)
                batch.append(
                    js.publish(
                        subject, body, stream=topology.SIP_DELIVERIES, headers=d.to_headers()
                    )
                )
            await asyncio.gather(*batch)
    finally:
        await nc.close()


def drain(b: Bench, sink: Sink, p: Pipeline, k: int, plan: Plan) -> Row:
    """The calls' copies stored first, then k forwarders drain them: deliveries/s."""
    p.stop_forwarders()
    sink.reset()
    run = b.unique(f"ordd{p.mode}{k}x")
    n_calls = plan.order_calls
    count = n_calls * calls.STEPS
    asyncio.run(_store_calls(p.url, run, n_calls))
    workers = p.start_forwarders(b, k)
    ready = time.time()
    meter = Meter(p, workers)
    delivered = sink.wait_for(count, plan.drain_timeout)
    times = sorted(t for t in sink.arrivals().values() if t >= ready)
    measured = meter.read(len(times))  # per delivery of the measured window
    span = (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {
        "ordering": p.mode, "forwarders": k, "calls": n_calls, "backlog": count,
        "delivered": delivered, "measured": len(times), "seconds": round(span, 3),
        "rate": round((len(times) - 1) / span, 1) if span else 0.0,
        "duplicates": sink.stats()["duplicates"], **measured,
        **_order(run, count, n_calls, sink),
    }  # fmt: skip


def ordering(b: Bench, sink: Sink, plan: Plan) -> tuple[Row, list[Row]]:
    """Both pipelines; each measurement on one ordering, then on the other."""
    forwarders = max(plan.order_forwarders)  # end to end too: a call's events spread over them
    pipes = {mode: Pipeline(b, sink, mode, forwarders) for mode in MODES}
    out: Row = {"e2e": [], "drain": [], "calls": plan.order_calls}
    try:
        turn = 0  # which ordering goes first alternates: neither always gets the cooler cores
        for rate in plan.order_rates:
            for mode in _alternate(turn := turn + 1):
                out["e2e"].append(end_to_end(b, sink, pipes[mode], rate, plan))
        for k in plan.order_forwarders:
            for mode in _alternate(turn := turn + 1):
                out["drain"].append(drain(b, sink, pipes[mode], k, plan))
        memory = [
            {"scenario": "ordering", "process": f"{proc.name} ({mode})",
             "peak_rss_mb": round(proc.peak_rss_mb(), 1)}
            for mode, pipe in pipes.items() for proc in pipe.procs()
        ]  # fmt: skip
    finally:
        for pipe in pipes.values():
            pipe.close(b)
    out["ratios"] = ratios(out)
    out["e2e_forwarders"] = forwarders
    return out, memory


def _alternate(turn: int) -> tuple[str, ...]:
    return MODES if turn % 2 else MODES[::-1]


def ratios(res: Row) -> Row:
    """Ordered over unordered, per rate (p99) and forwarder count (deliveries/s)."""

    def pick(rows: list[Row], key: str, value: int, mode: str) -> Row | None:
        return next((r for r in rows if r[key] == value and r["ordering"] == mode), None)

    out: Row = {"p99": {}, "deliveries_per_s": {}}
    for rate in sorted({r["offered_rate"] for r in res["e2e"]}):
        call, none = (pick(res["e2e"], "offered_rate", rate, m) for m in MODES)
        if call and none and none["e2e"]["p99_ms"]:
            out["p99"][str(rate)] = round(call["e2e"]["p99_ms"] / none["e2e"]["p99_ms"], 2)
    for k in sorted({r["forwarders"] for r in res["drain"]}):
        call, none = (pick(res["drain"], "forwarders", k, m) for m in MODES)
        if call and none and none["rate"]:
            out["deliveries_per_s"][str(k)] = round(call["rate"] / none["rate"], 2)
    return out
