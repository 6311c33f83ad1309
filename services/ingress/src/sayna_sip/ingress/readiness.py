"""What the ingress's `/readyz` means: a webhook sent now would be stored.

A stream leader election, or a reconnect to another cluster node, is ridden through by
the store's retries (`PUBLISH_BUDGET_S`): webhooks are answered late, not refused. So
trouble (a failed try, a failed topology check, a lost connection) makes the ingress
"not ready" only once it has lasted longer than that budget, or when a webhook was
actually refused (503) and none has been stored since. A load balancer then takes an
ingress out exactly when it would refuse webhooks, not for every leader change.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class StoreHealth:
    """Evidence about storing webhooks, fed by the publisher and the readiness probe.

    `grace`: how long trouble may last and still be ridden through (the store's budget).
    """

    def __init__(self, grace: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self._clock = clock
        self._trouble_since: float | None = None
        self._refused_at: float | None = None

    def stored(self) -> None:
        """A webhook was stored: whatever happened before is over."""
        self._trouble_since = self._refused_at = None

    def fine(self) -> None:
        """The probe reached the topology: trouble is over, a refusal is not forgotten."""
        self._trouble_since = None

    def trouble(self) -> None:
        """A try or a probe failed for a passing reason (or NATS is not connected)."""
        if self._trouble_since is None:
            self._trouble_since = self._clock()

    def refused(self) -> None:
        """A webhook was answered 503: its budget was spent or NATS refused it for good."""
        self.trouble()
        self._refused_at = self._clock()

    def why_not(self) -> str | None:
        """None when a webhook sent now would be stored, else why not (for the 503 body)."""
        now = self._clock()
        if self._refused_at is not None and now - self._refused_at < self.grace:
            return "the last webhook could not be stored and none has been since"
        if self._trouble_since is not None and now - self._trouble_since >= self.grace:
            lasted = now - self._trouble_since
            return (
                f"NATS has failed for {lasted:.1f} s, longer than the {self.grace:g} s store budget"
            )
        return None
