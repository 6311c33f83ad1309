"""Tenant isolation: who may send now, per hook host.

Each hook host gets at most `host_cap` concurrent requests and a circuit breaker.
A message for a host at its cap or behind an open breaker is not held anywhere: the
worker naks it with the delay returned here, so it waits in JetStream (no slot, no
memory) and does not count as a failed attempt. The busy delay follows the host's
recent request time, so a hanging host is asked about rarely and a fast one soon.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sayna_sip.forwarder.breaker import BreakerSettings, CircuitBreaker

BUSY_FLOOR = 0.05
BUSY_CEILING = 2.0
EWMA_WEIGHT = 0.2


@dataclass(frozen=True)
class Defer:
    delay: float
    reason: str  # "busy" | "breaker"


@dataclass
class _Host:
    breaker: CircuitBreaker
    in_flight: int = 0
    latency: float = 0.1  # EWMA of request durations, seconds


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

    def in_flight(self, host: str) -> int:
        state = self._hosts.get(host)
        return state.in_flight if state else 0

    def admit(self, host: str, now: float) -> Defer | None:
        """Take a slot for `host` (None), or say how long its message should wait."""
        state = self._host(host)
        if state.in_flight >= self._cap:
            busy = min(max(state.latency, BUSY_FLOOR), BUSY_CEILING)
            return Defer(busy * self._rng.uniform(0.5, 1.5), "busy")
        wait = state.breaker.wait(now)
        if wait is not None:
            # Spread the wake-ups so the backlog does not return as one burst.
            return Defer(wait + self._rng.uniform(0, 0.2) * state.breaker.s.open_for, "breaker")
        state.in_flight += 1
        return None

    def release(self, host: str, ok: bool | None, duration: float, now: float) -> bool:
        """Free the slot; `ok` is None when no request went out. True if the breaker opened."""
        state = self._host(host)
        state.in_flight -= 1
        if ok is None:
            return False
        state.latency += EWMA_WEIGHT * (duration - state.latency)
        return state.breaker.record(ok, now)
