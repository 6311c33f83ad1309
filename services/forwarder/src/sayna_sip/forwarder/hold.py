"""Messages that wait in this process, in order, for a slot of a fast host.

A host at its cap whose requests take milliseconds frees a slot every few hundred
microseconds. Putting its next messages back in JetStream (a nak with a delay) would
leave those slots idle until the redeliveries come, and cost a nak and a fetch each:
that held one forwarder at a fifth of a raw sender's rate. Such a message waits here
instead and starts the moment one of its host's requests ends. Only what the host
is expected to drain within `gate.HOLD_WINDOW` is held (the gate says how many),
never longer than `HOLD_MAX`, and held messages count against the process's
concurrency: a slow or hanging host's messages are nak'ed as before, so they hold
neither memory nor the other tenants' share of the fetch budget.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from nats.aio.msg import Msg

from sayna_sip.common.delivery import Delivery
from sayna_sip.forwarder.order import Order

HOLD_MAX = 1.0  # seconds; a message held longer goes back to JetStream (its host slowed)


@dataclass(frozen=True)
class Held:
    msg: Msg
    delivery: Delivery
    since: float  # monotonic time it was held
    order: Order | None = None  # its turn in its call's lane, when it keeps one


class HoldQueues:
    """One FIFO per host; `len()` is the total held."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Held]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def held(self, host: str) -> int:
        queue = self._queues.get(host)
        return len(queue) if queue else 0

    def push(self, host: str, item: Held) -> None:
        self._queues.setdefault(host, deque()).append(item)
        self._count += 1

    def pop(self, host: str) -> Held | None:
        """The host's oldest held message, or None."""
        queue = self._queues.get(host)
        if not queue:
            return None
        self._count -= 1
        item = queue.popleft()
        if not queue:
            del self._queues[host]
        return item

    def expired(self, now: float) -> list[Held]:
        """Take out every message held since before `now - HOLD_MAX`."""
        out: list[Held] = []
        for host in [h for h, q in self._queues.items() if q[0].since < now - HOLD_MAX]:
            queue = self._queues[host]
            while queue and queue[0].since < now - HOLD_MAX:
                out.append(queue.popleft())
            if not queue:
                del self._queues[host]
        self._count -= len(out)
        return out

    def next_expiry(self) -> float | None:
        """When the oldest held message expires (monotonic), or None when none is held."""
        if not self._queues:
            return None
        return min(q[0].since for q in self._queues.values()) + HOLD_MAX

    def take_all(self) -> list[Held]:
        """Empty every queue (shutdown)."""
        out = [item for queue in self._queues.values() for item in queue]
        self._queues.clear()
        self._count = 0
        return out
