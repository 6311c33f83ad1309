"""Per-hook circuit breaker (Convoy's shape), so a dead endpoint costs almost nothing.

Closed: requests flow; outcomes are counted in time buckets over a sliding window.
It opens when at least `min_requests` attempts in the window failed at `failure_ratio`
or more. Open: nothing is sent for `open_for` seconds (the worker naks the messages
with that delay). Then one probe goes out (half-open): success closes the breaker,
failure opens it again. Pure and clock-driven: the caller passes `now` (monotonic).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class BreakerSettings:
    window: float = 300.0  # Convoy: 5-minute window ...
    bucket: float = 30.0  # ... sampled in 30 s buckets
    min_requests: int = 10
    failure_ratio: float = 0.7
    open_for: float = 30.0  # then half-open


class CircuitBreaker:
    def __init__(self, settings: BreakerSettings) -> None:
        self.s = settings
        self._buckets: deque[list[float]] = deque()  # [start, successes, failures]
        self._opened_at: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def wait(self, now: float) -> float | None:
        """None when a request may go out now (claims the probe when half-open);
        otherwise seconds to wait before asking again."""
        if self._opened_at is None:
            return None
        remaining = self._opened_at + self.s.open_for - now
        if remaining > 0:
            return remaining
        if self._probing:  # one probe at a time; the others wait for its verdict
            return self.s.open_for / 4
        self._probing = True
        return None

    def record(self, ok: bool, now: float) -> bool:
        """Count an attempt's outcome; True when this outcome opened the breaker."""
        if self._opened_at is not None:
            if not self._probing:  # a request sent before it opened: ignore
                return False
            self._probing = False
            if ok:
                self._opened_at = None
                self._buckets.clear()
                return False
            self._opened_at = now
            return True
        self._count(ok, now)
        successes = sum(b[1] for b in self._buckets)
        failures = sum(b[2] for b in self._buckets)
        total = successes + failures
        if total >= self.s.min_requests and failures / total >= self.s.failure_ratio:
            self._opened_at = now
            return True
        return False

    def _count(self, ok: bool, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - self.s.window:
            self._buckets.popleft()
        if not self._buckets or self._buckets[-1][0] <= now - self.s.bucket:
            self._buckets.append([now, 0, 0])
        self._buckets[-1][1 if ok else 2] += 1
