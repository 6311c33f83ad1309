"""The fault suite's ordered-delivery scenarios (#30): calls of five events instead of
one event per room, and per scenario whether every call reached its hook in order.

- the issue's order test: 40 calls interleaved (a webhook every 10 ms, 0.4 s between a
  call's events), the tenant answers 500 once to the first attempt of
  `participant_joined` in half of the calls; with `ordering: call`, and the same with
  `ordering: none` to show what the ordering prevents;
- SIGKILL of a forwarder mid-call, a nats-server restart, the R3 leader and follower
  kill: the fault suite's faults (bench/faults.py) on call traffic, ordering on.
A call is in order when its events *first* arrived in LiveKit's order: a head the hook
got but whose forwarder died before moving the lane on is sent again before the next
(a duplicate the tenant drops on `webhook-id`), never after it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bench import calls, events, faults
from bench.fault_stack import HEALTHY_HOST, Stack, sink_hooks
from bench.harness import Bench, Sink
from bench.traffic import Traffic, _Conn

Row = dict[str, Any]


@dataclass
class CallTraffic(Traffic):
    """`count` = calls x 5 webhooks; event i is step i // calls of call i % calls. As
    LiveKit does, a call's next webhook is not sent before the previous one was answered
    200 (or given up): a refused join is retried before the call goes on."""

    n_calls: int = 1
    _answered: dict[int, asyncio.Event] = field(default_factory=dict)

    async def send(self, port: int) -> None:
        self._answered = {i: asyncio.Event() for i in range(self.count)}
        await super().send(port)

    async def _deliver(self, i: int, request: bytes, port: int, pool: list[_Conn]) -> None:
        if i >= self.n_calls:
            await self._answered[i - self.n_calls].wait()
            self.sent_at[i] = max(self.sent_at[i], time.time())  # its first try, for latency
        try:
            await super()._deliver(i, request, port, pool)
        finally:
            self._answered[i].set()

    def _request(self, i: int, port: int) -> bytes:
        body = calls.event_body(self.run, i, self.n_calls, self.host(i))
        return events.http_request(f"127.0.0.1:{port}", "/livekit/webhook", body, events.sign(body))

    def ready(self, i: int) -> float:
        return calls.ready_at(self.sent_at, i, self.n_calls)

    def order(self, sink: Sink) -> Row:
        got = calls.check_order(self.run, self.count, self.n_calls, sink.arrivals(), sink.seqs())
        return {"calls": self.n_calls, "calls_out_of_order": got.out_of_order,
                "calls_with_gaps": got.gaps, "example": got.example}  # fmt: skip


def call_traffic(b: Bench, label: str, rate: float, n_calls: int) -> CallTraffic:
    return CallTraffic(b.unique(label), (HEALTHY_HOST,), rate, n_calls * calls.STEPS,
                       n_calls=n_calls)  # fmt: skip


def joins(traffic: CallTraffic, every: int = 2) -> list[str]:
    """The event ids of `participant_joined` of every `every`-th call."""
    first = calls.JOIN * traffic.n_calls
    return [traffic.event_id(first + c) for c in range(0, traffic.n_calls, every)]


def order_test(
    b: Bench,
    sink: Sink,
    plan: faults.FaultPlan,
    ordering: str = "call",
    n_calls: int = 40,
    env: dict[str, str] | None = None,
) -> Row:
    """The issue's test: every call in order with `ordering: call` (2 forwarders, the
    default retry schedule unless `env` says otherwise)."""
    nats_proc, url = b.start_nats(f"order-{ordering}")
    env = {"SIP_ORDERING": ordering} | (env or {})
    stack = Stack(b, url, sink_hooks(sink, HEALTHY_HOST), forwarders=2, env=env)
    stack.start()
    traffic = call_traffic(b, f"ord{ordering[0]}", 100.0, n_calls)
    refused0 = sink.stats()["refused"]
    sink.fail_once(joins(traffic))

    async def no_fault() -> None:
        return None

    try:
        name = f"order test (ordering: {ordering})"
        row = faults.run_scenario(b, sink, stack, name, traffic, no_fault, plan.drain_timeout)
    finally:
        stack.close()
        b.stop(nats_proc)
    row["refused_by_tenant"] = sink.stats()["refused"] - refused0
    row["ordering"] = ordering
    return row


def _calls(plan: faults.FaultPlan, seconds: float) -> int:
    return max(1, int(plan.rate * seconds) // calls.STEPS)


def forwarder_kill(b: Bench, sink: Sink, plan: faults.FaultPlan) -> Row:
    traffic = call_traffic(b, "okf", plan.rate, _calls(plan, plan.seconds))
    row = faults.service_kill(b, sink, plan, "forwarder-1", traffic)
    return row | {"scenario": "SIGKILL forwarder-1, calls"}


def nats_restart(b: Bench, sink: Sink, plan: faults.FaultPlan) -> Row:
    traffic = call_traffic(b, "onr", plan.rate, _calls(plan, plan.seconds))
    return faults.nats_restart(b, sink, plan, traffic) | {"scenario": "nats restart, calls"}


def cluster_failover(b: Bench, sink: Sink, plan: faults.FaultPlan) -> Row:
    traffic = call_traffic(b, "ocl", plan.rate, _calls(plan, plan.cluster_seconds))
    row = faults.cluster_failover(b, sink, plan, traffic)
    return row | {"scenario": "R3 leader+follower, calls"}
