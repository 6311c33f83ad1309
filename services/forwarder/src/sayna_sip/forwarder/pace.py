"""Rate limits per hook (`rate_limit`, deliveries per second), kept across all forwarders.

Each forwarder takes an equal share of a hook's limit: `rate_limit / peers`, where
`peers` is the number of live forwarders (`peers.PeerCount`). Within its share it hands
out **slots**, evenly spaced (GCRA: a theoretical arrival time per hook, one interval
apart, no burst): a delivery whose slot is now goes at once; one whose slot is later is
put back in JetStream *due at its slot* and marked as paced, so whichever forwarder pulls
it at that time sends it without taking another slot. The attempts of a hook over any
window of T seconds are then at most `rate_limit * T + peers`, whichever forwarders make
them, and the wait costs no attempt and no worker slot.

Pure state with the clock passed in, like `gate.HostGate`.
"""

from __future__ import annotations

from dataclasses import dataclass

FORGET_AFTER = 60.0  # a hook idle this long (its slots all past) is dropped from memory


@dataclass(frozen=True)
class Slot:
    at: float  # when the delivery may be attempted (monotonic clock of `reserve`)
    wait: float  # seconds from now until then (0 = at once)


class Pacer:
    """The next free slot of each rate-limited hook in this process."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}  # hook -> theoretical arrival time of its next slot

    def reserve(self, hook: str, rate_limit: float, peers: int, now: float) -> Slot:
        """Take the hook's next slot at this forwarder's share of `rate_limit`."""
        interval = max(1, peers) / rate_limit
        at = max(self._next.get(hook, now), now)
        self._next[hook] = at + interval
        if len(self._next) > 1024:
            self._forget(now)
        return Slot(at, at - now)

    def _forget(self, now: float) -> None:
        for hook, at in list(self._next.items()):
            if at < now - FORGET_AFTER:
                del self._next[hook]
