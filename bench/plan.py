"""How big each benchmark run is: full (`make bench`), quick and smoke (for the test)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    name: str
    ingress_conns: tuple[int, ...]  # concurrent client connections, closed loop
    ingress_seconds: float
    warmup_seconds: float
    e2e_rates: tuple[int, ...]  # offered events/s, open loop
    e2e_seconds: float
    e2e_conns: int  # client connections the open-loop generator may use
    e2e_forwarders: int
    backlog: int  # forwarder scaling: events waiting in SIP_DELIVERIES
    forwarder_counts: tuple[int, ...]
    drain_timeout: float  # how long to wait for the last deliveries
    order_calls: int  # ordering: concurrent calls of 5 events each
    order_rates: tuple[int, ...]  # ordering: offered events/s end to end
    order_forwarders: tuple[int, ...]  # ordering: forwarders draining the calls' copies


FULL = Plan(
    name="full",
    ingress_conns=(16, 64),
    ingress_seconds=8.0,
    warmup_seconds=1.0,
    e2e_rates=(200, 500, 1000),
    e2e_seconds=10.0,
    e2e_conns=64,
    e2e_forwarders=1,
    backlog=10_000,
    forwarder_counts=(1, 2, 4),
    drain_timeout=60.0,
    order_calls=1000,
    order_rates=(200, 500),
    order_forwarders=(1, 2),
)

QUICK = Plan(
    name="quick",
    ingress_conns=(32,),
    ingress_seconds=4.0,
    warmup_seconds=0.5,
    e2e_rates=(200, 500),
    e2e_seconds=4.0,
    e2e_conns=64,
    e2e_forwarders=1,
    backlog=3_000,
    forwarder_counts=(1, 2),
    drain_timeout=30.0,
    order_calls=200,
    order_rates=(200, 500),
    order_forwarders=(2,),
)

SMOKE = Plan(
    name="smoke",
    ingress_conns=(4,),
    ingress_seconds=0.5,
    warmup_seconds=0.1,
    e2e_rates=(50,),
    e2e_seconds=1.0,
    e2e_conns=8,
    e2e_forwarders=1,
    backlog=100,
    forwarder_counts=(1,),
    drain_timeout=15.0,
    order_calls=20,
    order_rates=(50,),
    order_forwarders=(1,),
)

PLANS = {p.name: p for p in (FULL, QUICK, SMOKE)}
