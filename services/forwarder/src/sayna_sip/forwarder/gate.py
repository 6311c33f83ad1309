"""Tenant isolation: who may send now, per hook host.

Each hook host gets at most `host_cap` concurrent requests and a circuit breaker.
A message for a host at its cap or behind an open breaker is not held anywhere: the
worker naks it with the delay returned here, so it waits in JetStream (no slot, no
memory) and does not count as a failed attempt. The busy delay follows how long the
host's requests take (recent ones, and the oldest still running), so a hanging host's
backlog is looked at rarely and a fast host's soon.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sayna_sip.common.labels import DeferReason
from sayna_sip.forwarder.breaker import BreakerSettings, CircuitBreaker

BUSY_FLOOR = 0.02  # shortest wait of a message put back for a busy host
BUSY_CEILING = 2.0
QUEUE_CEILING = 30.0  # a deferred message is looked at again within this (breaker's open_for)
EWMA_WEIGHT = 0.2
HOLD_WINDOW = 0.5  # hold in process what a host at its cap drains within this (hold.py)


@dataclass(frozen=True)
class Defer:
    delay: float
    reason: DeferReason  # BUSY or BREAKER


@dataclass
class _Host:
    breaker: CircuitBreaker
    started: list[float] = field(default_factory=list)  # start times of requests in flight
    latency: float = 0.0  # EWMA of request durations, seconds
    measured: bool = False  # a request of this host has ended (latency means something)
    next_free: float = 0.0  # monotonic time the last deferred message was told to return

    @property
    def in_flight(self) -> int:
        return len(self.started)

    def busy_delay(self, now: float) -> float:
        """How long one of its requests takes now: the recent ones, or the oldest still
        running when that is longer (before its first answer, only that is known)."""
        oldest = now - min(self.started) if self.started else 0.0
        return min(max(self.latency, oldest, 1e-3), BUSY_CEILING)

    def queue_delay(self, now: float, cap: int) -> float:
        """When a deferred message may find a slot: each one deferred books the next
        of the host's expected completions (`busy_delay / cap` apart), so a backlog comes
        back at the rate the host drains it, not all at once every `busy_delay`."""
        step = self.busy_delay(now) / cap
        self.next_free = min(max(self.next_free, now + step) + step, now + QUEUE_CEILING)
        # The floor keeps a fast host's bounced messages from coming straight back.
        return max(self.next_free - now, BUSY_FLOOR)


class HostGate:
    def __init__(self, host_cap: int, breaker: BreakerSettings, rng: random.Random) -> None:
        self._cap = host_cap
        self._breaker = breaker
        self._rng = rng
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host(CircuitBreaker(self._breaker))
        return state

    def busy(self, host: str, now: float) -> Defer:
        """How long a message of `host`, at its cap, should wait in JetStream."""
        delay = self._host(host).queue_delay(now, self._cap)
        return Defer(delay * self._rng.uniform(0.8, 1.2), DeferReason.BUSY)

    def hold_limit(self, host: str, now: float) -> int:
        """How many of `host`'s messages may wait in this process for one of its slots:
        what its requests, at their recent speed, finish within HOLD_WINDOW. A request
        still running counts with its age, so a host that starts hanging holds none.
        None before its first answer: a black hole's first requests never end, and
        holding its messages stalled the other tenants now and then (p99 ~1 s)."""
        state = self._hosts.get(host)
        if state is None or not state.measured or state.breaker.is_open:
            return 0
        return int(self._cap * HOLD_WINDOW / state.busy_delay(now))

    def admit(self, host: str, now: float) -> Defer | None:
        """Take a slot for `host` at `now` (None), or say how long its message should
        wait. The caller releases the slot with the same `now` as `started`."""
        state = self._host(host)
        if state.in_flight >= self._cap:
            return self.busy(host, now)
        wait = state.breaker.wait(now)
        if wait is not None:
            # Spread the wake-ups so the backlog does not return as one burst.
            return Defer(
                wait + self._rng.uniform(0, 0.2) * state.breaker.s.open_for, DeferReason.BREAKER
            )
        state.started.append(now)
        return None

    def release(self, host: str, started: float, ok: bool | None, now: float) -> bool:
        """Free the slot taken at `started`; `ok` is None when no request went out.
        True when this outcome opened the host's breaker."""
        state = self._host(host)
        state.started.remove(started)
        if ok is None:
            return False
        weight = EWMA_WEIGHT if state.measured else 1.0  # the first answer sets it
        state.latency += weight * (now - started - state.latency)
        state.measured = True
        return state.breaker.record(ok, now)
