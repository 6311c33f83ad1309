"""Ordered delivery per call across forwarders: lane state in KV `sip_lanes`, waiters
woken the moment their head ends.

Several forwarders pull the same durable, so a call's copies may be in different
processes at once; the lane's `done` (order.py) in KV decides whose turn it is. NATS
work per ordered copy on the usual path (nothing failing): one compare-and-set when it
ends (`done` + 1; for a call's first copy a create: nothing earlier can be pending, so it
goes without reading KV), one core-NATS notice `sip.lane.<key>` (no round trip) carrying
the lane's new state and revision, which every forwarder keeps in its cache, and a KV
read only when the cache cannot tell that it is the copy's turn (a notice missed, a copy
redelivered). A copy waiting in the process where its head ends goes the moment the
head's request ended (`ending`), while the head's compare-and-set is under way, and so
does a call's second copy wherever it waits (a call's first copy's end is announced at
once, `ended 1`, besides the notice after its write); the
lane's writes of one process are made one at a time per lane, each catching up on what
ended here before it (a write that failed), so `done` never stops short of a copy that
went. A copy that is not its turn waits:
- in this process, up to `WAIT_SLICE`, while its head is expected to end soon (in flight,
  or not fetched yet), woken by the notice (or directly when the head ended here);
- in JetStream (a nak with a delay, no attempt spent, no copy written) while the head
  waits for its retry (`due`), or after the slice: then it also starts the lane's hold
  clock (`since`), so a head that never ends releases the rest after SIP_ORDER_HOLD_MAX.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from sayna_sip.common import contracts, kvwrite
from sayna_sip.common.delivery import Delivery
from sayna_sip.common.hosts import host_token
from sayna_sip.forwarder import order
from sayna_sip.forwarder.metrics import ForwarderMetrics
from sayna_sip.forwarder.order import LaneState, Order, Turn

log = logging.getLogger("sayna_sip.forwarder")

WAIT_SLICE = 1.0  # seconds a copy waits in process for its head before going back to JetStream
BACKOFF_FIRST = 0.25  # first wait in JetStream after a slice; doubles per redelivery
BACKOFF_MAX = 5.0
DUE_SLACK = 0.05  # a head due within this is taken as in flight
CACHE_SIZE = 4096  # lanes whose state this process remembers (LRU)
WRITE_TRIES = 5  # compare-and-set conflicts before giving up on an advance


def lane_key(d: Delivery) -> str:
    """KV key (and notice subject tail) of the copy's lane: hook, endpoint, room. The
    room is hashed: any bytes, bounded length."""
    room = hashlib.sha256(d.room.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{host_token(d.hook)}.{d.endpoint}.{room}"


def _first(d: Delivery, redelivered: int) -> bool:
    """A call's first copy, handed over for the first time: whatever its lane holds, it
    goes (no copy comes before it), and as a late one only if it is a duplicate."""
    return d.call_seq == 1 and redelivered == 1 and not d.attempt and d.paced is None


@dataclass(frozen=True)
class Later:
    """Not its turn: put it back in JetStream for `delay` seconds."""

    delay: float


class CallLanes:
    def __init__(
        self,
        nc: Client,
        kv: KeyValue,
        hold_max: float,
        max_waiting: int,
        metrics: ForwarderMetrics,
    ) -> None:
        self._nc = nc
        self._kv = kv
        self._hold_max = hold_max
        self._metrics = metrics
        self._cache: OrderedDict[str, tuple[LaneState, int | None]] = OrderedDict()
        # Lanes whose head ended here and whose write may not have landed: the highest
        # such seq (every copy up to it ended). Dropped once KV shows it.
        self._ended: dict[str, int] = {}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # per lane: lock, its users
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._waiting = 0  # copies waiting in this process
        self._max_waiting = max_waiting  # beyond it a copy waits in JetStream at once
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(f"{contracts.LANE_NOTICE}.>", cb=self._notice)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def turn(self, d: Delivery, redelivered: int = 1) -> Order | Later:
        """Wait (here, briefly) for the copy's turn: its Order when it may go, or how
        long it should wait in JetStream. `redelivered`: times JetStream handed it over."""
        key = lane_key(d)
        event = self._watch(key)
        deadline = time.monotonic() + WAIT_SLICE
        waited = False
        try:
            while True:
                event.clear()  # before reading: a notice after the read wakes the wait
                ended_here = self._ended.get(key, 0)
                if ended_here and ended_here + 1 == d.call_seq and self._behind(key, d.call_seq):
                    return Order(d.call_seq)  # its head ended (here, or as a notice said)
                if _first(d, redelivered) and key not in self._cache and not ended_here:
                    # Nothing earlier can be pending: no read; its end creates the lane
                    # (or, when the lane exists after all, reads it then).
                    self._remember(key, LaneState(), None)
                    return Order(d.call_seq)
                state, rev = await self._read(key, d.call_seq)
                if ended_here > state.done:  # what ended here counts before it lands
                    state = msgspec.structs.replace(state, done=ended_here, since=0.0, due=0.0)
                now = time.time()
                verdict = order.turn(state, d.call_seq)
                if verdict is not Turn.WAIT:
                    late = verdict is Turn.LATE
                    return Order(d.call_seq, late, order.released_count(state, d.call_seq))
                if not waited:
                    waited = True
                    self._metrics.order_waits.labels(d.hook).inc()
                if order.hold_over(state, now, self._hold_max):
                    await self._release(d, key, state, rev)
                    continue
                left = deadline - time.monotonic()
                room = self._waiting <= self._max_waiting
                if state.due <= now + DUE_SLACK and left > 0 and room:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(left):
                            await event.wait()
                    continue
                return await self._later(d, key, state, rev, now, redelivered)
        finally:
            self._unwatch(key, event)

    async def ending(self, d: Delivery, went: Order) -> None:
        """Copy `d`, which went as its lane's head, ended (its request is over, it is
        delivered or dead): a copy of its lane waiting here goes now, before `ended`
        has written it. A call's first copy also tells every forwarder at once
        (`ended <seq>`): the router stores a held `room_started` with the join that
        names the host, so the join is most likely waiting, here or elsewhere. A crash
        before the write redelivers `d` (it goes again, a duplicate, after the copies
        that went on this word; those not yet acked go again after it)."""
        if went.late:
            return  # not its lane's head: nothing waits for it
        key = lane_key(d)
        self._ended_at(key, d.call_seq)
        if d.call_seq == 1:
            await self._nc.publish(f"{contracts.LANE_NOTICE}.{key}", b"ended %d" % d.call_seq)

    def _ended_at(self, key: str, seq: int) -> None:
        """Every copy up to `seq` of the lane ended, its write may not have landed."""
        if seq > self._ended.get(key, 0) and self._behind(key, seq + 1):
            self._ended[key] = seq
            while len(self._ended) > CACHE_SIZE:  # writes that never landed: KV decides
                del self._ended[next(iter(self._ended))]
            self._wake(key)

    def _behind(self, key: str, seq: int) -> bool:
        """The cached lane has not moved past `seq` (a copy up to it is not late)."""
        cached = self._cache.get(key)
        return cached is None or cached[0].done < seq

    async def ended(self, d: Delivery) -> int:
        """Copy `d` ended (delivered or dead-lettered): move its lane on, wake whoever
        waits for it. Call before acking, so a crash in between redelivers it as the
        head. Returns how many it had held back when it was a released head (else 0)."""
        key = lane_key(d)
        async with self._lock(key):
            for _ in range(WRITE_TRIES):
                state, rev = await self._read(key, d.call_seq)
                new = order.advance(self._caught_up(key, state, d.call_seq), d.call_seq)
                if new is None:
                    return 0
                written = await self._write(key, new, rev)
                if written is not None:
                    if new.done != state.done:
                        self._wake(key)
                        await self._announce(key, new, written)
                    return order.released_count(state, d.call_seq)
                self._cache.pop(key, None)
        log.warning("event=lane_advance_failed hook=%s room=%s", d.hook, d.room)
        return 0

    async def failed(self, d: Delivery, due: float) -> int:
        """The head failed and is due again at `due` (unix s): its waiters go back to
        JetStream until then. Best effort. Returns its released count, as `ended`."""
        key = lane_key(d)
        async with self._lock(key):
            state, rev = await self._read(key, d.call_seq)
            new = order.failed(self._caught_up(key, state, d.call_seq), d.call_seq, due)
            if new is not None:
                await self._write(key, new, rev)
            return order.released_count(state, d.call_seq)

    def _caught_up(self, key: str, state: LaneState, seq: int) -> LaneState:
        """`state` with the copies before `seq` that ended here and whose own write did
        not land (it failed: their copy comes again, late) moved past."""
        for earlier in range(state.head, min(self._ended.get(key, 0), seq - 1) + 1):
            state = order.advance(state, earlier) or state
        return state

    @contextlib.asynccontextmanager
    async def _lock(self, key: str) -> AsyncIterator[None]:
        """The lane's writes of this process one at a time: the next copy's write waits
        for its head's, so it is not refused for the revision the head's is making."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users > 1:
                self._locks[key] = (lock, users - 1)
            else:
                del self._locks[key]

    async def _later(
        self, d: Delivery, key: str, state: LaneState, rev: int | None, now: float,
        redelivered: int,
    ) -> Later:  # fmt: skip
        """Back to JetStream: until the head is due, or a backoff; never past the hold's
        end. Starts the hold clock (once per lane and seq reached)."""
        noted = order.waiting(state, d.call_seq, now)
        if noted is not None:
            await self._write(key, noted, rev)  # lost to a concurrent write: noted next time
            state = noted
        backoff = min(BACKOFF_FIRST * 2 ** max(0, redelivered - 1), BACKOFF_MAX)
        until = state.due if state.due > now + DUE_SLACK else now + backoff
        until = min(until, order.hold_deadline(state, now, self._hold_max))
        return Later(max(until - now, DUE_SLACK))

    async def _release(self, d: Delivery, key: str, state: LaneState, rev: int | None) -> None:
        new = order.release(state)
        written = await self._write(key, new, rev)
        if written is not None:
            count = order.released_count(new, state.head)
            log.warning(
                "event=lane_released hook=%s endpoint=%s room=%s head=%d waited=%d",
                d.hook, d.endpoint, d.room, state.head, count,
            )  # fmt: skip
            self._metrics.order_released.labels(d.hook).inc()
            self._wake(key)
            await self._announce(key, new, written)
        else:
            self._cache.pop(key, None)

    async def _read(self, key: str, seq: int) -> tuple[LaneState, int | None]:
        """The lane's state: from the cache when it shows `seq` as the head (`done` only
        grows, so that cannot be stale in the copy's favour), else from KV."""
        cached = self._cache.get(key)
        if cached is not None and cached[0].head == seq:
            self._cache.move_to_end(key)
            return cached
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:  # a new lane (or one forgotten after its TTL)
            state, rev = LaneState(), None
        else:
            state, rev = LaneState.decode(entry.value), entry.revision
        self._remember(key, state, rev)
        return state, rev

    async def _write(self, key: str, state: LaneState, rev: int | None) -> int | None:
        """Compare-and-set: the new revision, or None when another forwarder wrote first
        (the caller re-reads)."""
        value = state.encode()
        try:
            if rev is None:
                new_rev = await kvwrite.create(self._kv, key, value)
            else:
                new_rev = await kvwrite.update(self._kv, key, value, rev)
        except KeyWrongLastSequenceError:
            self._cache.pop(key, None)
            return None
        self._remember(key, state, new_rev)
        return new_rev

    async def _announce(self, key: str, state: LaneState, rev: int) -> None:
        """Tell every forwarder the lane moved on: `<revision> <state JSON>` (a release
        before this one sent an empty notice: read the lane again)."""
        await self._nc.publish(f"{contracts.LANE_NOTICE}.{key}", b"%d %s" % (rev, state.encode()))

    def _remember(self, key: str, state: LaneState, rev: int | None) -> None:
        cached = self._cache.get(key)
        if cached is not None and rev is not None and (cached[1] or 0) > rev:
            return  # a late notice: what we know is newer
        self._cache[key] = (state, rev)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        if rev is not None and self._ended.get(key, 0) <= state.done:
            self._ended.pop(key, None)  # stored: KV tells from now on

    def _watch(self, key: str) -> asyncio.Event:
        event = asyncio.Event()  # one per waiter: a wake-up is never cleared by another
        self._waiters.setdefault(key, set()).add(event)
        self._waiting += 1
        return event

    def _unwatch(self, key: str, event: asyncio.Event) -> None:
        self._waiting -= 1
        events = self._waiters.get(key)
        if events is not None:
            events.discard(event)
            if not events:
                del self._waiters[key]

    def _wake(self, key: str) -> None:
        for event in self._waiters.get(key, ()):
            event.set()

    async def _notice(self, msg: Msg) -> None:
        key = msg.subject[len(contracts.LANE_NOTICE) + 1 :]
        rev, _, value = msg.data.partition(b" ")
        if rev == b"ended":  # a head ended on another forwarder; its write follows
            with contextlib.suppress(ValueError):
                self._ended_at(key, int(value))
            return
        try:
            revision = int(rev)
            state = LaneState.decode(value)
        except ValueError:  # empty (or unreadable, msgspec's DecodeError): read it again
            self._cache.pop(key, None)
        else:
            self._remember(key, state, revision)
        self._wake(key)
