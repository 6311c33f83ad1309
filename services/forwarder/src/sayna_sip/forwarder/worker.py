"""The fetch loop: keep pull requests open on the shared durable consumer for the free
slots (pull.py), start each message as it arrives, holding only what a fast host will
take within moments.

Per message, in order: not yet due (`Sayna-Not-Before`) -> nak until due; a copy of a
call whose endpoint orders by call and whose turn it is not yet -> waits for it
(order_lanes.py: briefly here, else in JetStream; no attempt spent); its hook's
`rate_limit` has no slot now -> put back due at its slot (pace.py); host at its
cap but fast -> held in process until one of its requests ends (hold.py); host at its
cap otherwise, or behind an open breaker (the `HostGate`) -> nak with a short delay
(not an attempt); else start a delivery task. A waiting retry costs no worker slot and survives
restarts. What a finished attempt means for its message (ack / retry copy / dead letter,
and its attempt record) is decided in `settle.Settlement` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

import nats.errors
from nats.aio.msg import Msg
from opentelemetry.trace import SpanKind

from sayna_sip.common import tracing
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.contracts import Header
from sayna_sip.common.delivery import BadEnvelope, Delivery
from sayna_sip.common.labels import DeferReason
from sayna_sip.common.logs import quote
from sayna_sip.forwarder.delivery import Deliverer
from sayna_sip.forwarder.gate import HostGate
from sayna_sip.forwarder.hold import Held, HoldQueues
from sayna_sip.forwarder.metrics import ForwarderMetrics
from sayna_sip.forwarder.order import Order
from sayna_sip.forwarder.order_lanes import CallLanes, Later
from sayna_sip.forwarder.pace import Pacer
from sayna_sip.forwarder.policy import Kind
from sayna_sip.forwarder.pull import OnMessage, Puller
from sayna_sip.forwarder.settle import ERROR_PAUSE, Settlement, nak, retry_schedule
from sayna_sip.forwarder.tuning import Tuning

log = logging.getLogger("sayna_sip.forwarder")

DUE_SLACK = 0.005  # a message due within this is treated as due now
MIN_BATCH = 8  # smallest pull after busy hosts bounced messages
OVERFLOW_DELAY = 0.05  # a message beyond the free slots (forgotten requests came back)


class Worker:
    def __init__(
        self,
        config: ServerConfig,
        tuning: Tuning,
        new_puller: Callable[[OnMessage, Callable[[], None]], Puller],
        deliverer: Deliverer,
        gate: HostGate,
        settlement: Settlement,
        metrics: ForwarderMetrics,
        rng: random.Random,
        peers: Callable[[], int] = lambda: 1,
        lanes: CallLanes | None = None,
    ) -> None:
        self._tracer = tracing.Tracer("sayna_sip.forwarder")
        self.puller = new_puller(self._on_message, self._wake_up)
        self._deliverer = deliverer
        self._metrics = metrics
        self._tuning = tuning
        self._rng = rng
        self._gate = gate
        self._pacer = Pacer()
        self._peers = peers  # live forwarders: each takes this share of a rate limit
        self._settlement = settlement
        self._schedule = retry_schedule(config)
        self._concurrency = config.forwarder.concurrency
        grace = tuning.shutdown_grace
        self.grace = min(config.forwarder.timeout, 5.0) if grace is None else grace
        self._tasks: dict[asyncio.Task[None], Msg] = {}
        self._lanes = lanes
        self._ordering = config.sip.ordering if config.sip else "call"
        self._waiting: dict[asyncio.Task[None], Msg] = {}  # copies waiting for their turn
        self._held = HoldQueues()
        # Ask for messages in steps of this many (fewer open requests on the server), and
        # while messages are held only once this many could start, so a one-host backlog
        # comes in batches, not one by one.
        self._refill = max(1, min(MIN_BATCH, self._concurrency // 10))
        self._wake = asyncio.Event()
        # Messages asked for at most (the credits' cap): from MIN_BATCH, one more per
        # message started, halved when busy hosts bounce one, up to fetch_batch.
        self._window = MIN_BATCH
        self._stopping = False

    @property
    def delivered(self) -> int:
        """Acked as delivered by this worker (tests, bench)."""
        return self._settlement.delivered

    async def run(self) -> None:
        """Keep messages asked for as slots free up, until `stop()`."""
        while not self._stopping:
            self._wake.clear()
            await self._expire_held()
            self.puller.check_alive(time.monotonic())
            free = self._concurrency - self._busy()
            want = min(free, self._window) - self.puller.credits
            enough = want >= self._refill or (not self._held and not self.puller.credits)
            if want > 0 and enough and await self._ask(want):
                continue
            await self._sleep(self._held.next_expiry())

    async def _ask(self, batch: int) -> bool:
        try:
            return await self.puller.request(batch)
        except nats.errors.Error as exc:  # closed or draining: nothing to ask now
            log.warning("event=fetch_failed error=%s", quote(repr(exc)))
            await asyncio.sleep(ERROR_PAUSE)
            return False

    def _wake_up(self) -> None:
        self._wake.set()

    async def _sleep(self, until: float | None) -> None:
        """Until something changes (a delivery ended, a message came, credits were
        forgotten, `stop()`), a held message expires, or the next liveness check."""
        check = time.monotonic() + self._tuning.pull_heartbeat
        until = check if until is None else min(until, check)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, until - time.monotonic())):
                await self._wake.wait()

    async def _on_message(self, msg: Msg) -> None:
        """One message from the open pull requests: start it, hold it or put it back."""
        if not self._stopping and self._busy() >= self._concurrency:
            # More came than the free slots (requests forgotten as lost still answered).
            await nak(msg, OVERFLOW_DELAY)
            hook = (msg.headers or {}).get(Header.HOOK, "")
            self._metrics.deferred.labels(hook, DeferReason.BUSY).inc()
        else:
            self._adapt(await self._dispatch(msg))
        self._wake.set()

    def _busy(self) -> int:
        """Slots taken: deliveries running, held for a fast host, waiting for their turn."""
        return len(self._tasks) + len(self._held) + len(self._waiting)

    def _adapt(self, verdict: str) -> None:
        """Ask for about as many as can start: fewer while busy hosts bounce messages,
        more again while they start (no nak churn on a one-host backlog)."""
        if verdict in ("busy", "breaker"):
            self._window = max(MIN_BATCH, self._window // 2)
        elif verdict in ("started", "held"):
            self._window = min(self._tuning.fetch_batch, self._window + 1)

    async def _expire_held(self) -> None:
        """Messages held past HOLD_MAX go back to JetStream: their host slowed down."""
        for item in self._held.expired(time.monotonic()):
            defer = self._gate.busy(item.delivery.lane, time.monotonic())
            await nak(item.msg, defer.delay)
            self._metrics.deferred.labels(item.delivery.hook, defer.reason).inc()

    async def _dispatch(self, msg: Msg) -> str:
        """Start the delivery of `msg` or put it back to wait; returns the verdict."""
        if self._stopping:
            await nak(msg, None)
            return "stopping"
        try:
            d = Delivery.from_headers(msg.headers)
        except BadEnvelope as exc:
            log.error("event=delivery_malformed subject=%s error=%s", msg.subject, quote(exc))
            await msg.term()  # cannot be delivered or dead-lettered without its hook
            return "bad"
        not_before = d.not_before
        if not d.attempt and not not_before and self._schedule[0] and d.received_at:
            not_before = d.received_at + self._schedule[0]  # the first try's own delay
        due_in = not_before - time.time()
        if due_in > DUE_SLACK:
            await nak(msg, due_in + self._rng.uniform(0, 0.05))
            self._metrics.deferred.labels(d.hook, DeferReason.SCHEDULED).inc()
            return "scheduled"
        if d.call_seq > 0 and self._lanes is not None and await self._in_lane(d):
            if d.generation:  # redriven: its lane ended it before; it goes now, after
                return await self._admit(msg, d, Order(d.call_seq, late=True))
            task = asyncio.create_task(self._in_order(msg, d), name=f"order-{d.event_id}")
            self._waiting[task] = msg
            task.add_done_callback(self._on_waited)
            return "started"
        return await self._admit(msg, d, None)

    async def _in_lane(self, d: Delivery) -> bool:
        """Whether `d` keeps its call's order: its endpoint's `ordering` (a removed one
        follows SIP_ORDERING: its dead letter still moves the lane on)."""
        hook = await self._deliverer.resolve(d.hook)
        endpoint = hook.endpoint(d.endpoint) if hook is not None else None
        if endpoint is None:
            return self._ordering == "call"
        return endpoint.orders_by_call(self._ordering)

    async def _in_order(self, msg: Msg, d: Delivery) -> None:
        """Wait for the copy's turn in its lane, then admit it as any other."""
        assert self._lanes is not None
        try:
            turn = await self._lanes.turn(d, _delivered_times(msg))
        except asyncio.CancelledError:  # shutdown
            await nak(msg, None)
            raise
        except nats.errors.Error as exc:  # KV unreachable: soon again, nothing spent
            log.warning("event=lane_read_failed event_id=%s error=%s", d.event_id, quote(repr(exc)))
            await nak(msg, ERROR_PAUSE)
            return
        if isinstance(turn, Later):
            await nak(msg, turn.delay)
            self._metrics.deferred.labels(d.hook, DeferReason.ORDER).inc()
            return
        self._adapt(await self._admit(msg, d, turn))

    def _on_waited(self, task: asyncio.Task[None]) -> None:
        self._waiting.pop(task, None)
        self._wake.set()

    async def _admit(self, msg: Msg, d: Delivery, order: Order | None) -> str:
        """Past its due time and its call's order: its rate-limit slot, then its host's."""
        if self._stopping:
            await nak(msg, None)
            return "stopping"
        if d.paced is None and await self._paced(msg, d):
            return "paced"
        started = time.monotonic()
        defer = self._gate.admit(d.lane, started)
        if defer is None:
            self._start(msg, d, started, order)
            return "started"
        if defer.reason == "busy" and self._held.held(d.lane) < self._gate.hold_limit(
            d.lane, started
        ):
            self._held.push(d.lane, Held(msg, d, started, order))
            return "held"
        await nak(msg, defer.delay)
        self._metrics.deferred.labels(d.hook, defer.reason).inc()
        return defer.reason

    async def _paced(self, msg: Msg, d: Delivery) -> bool:
        """Take a slot of the endpoint's rate limit; True when `msg` was put back due at
        a later one (pace.py). A copy that already holds its slot (`d.paced`) goes on."""
        hook = await self._deliverer.resolve(d.hook)
        endpoint = hook.endpoint(d.endpoint) if hook is not None else None
        if endpoint is None or endpoint.rate_limit is None:
            return False  # no limit; or removed: the attempt dead-letters it
        slot = self._pacer.reserve(d.lane, endpoint.rate_limit, self._peers(), time.monotonic())
        if slot.wait <= DUE_SLACK:
            return False
        await self._settlement.pace(msg, d, slot.wait)
        return True

    def _start(self, msg: Msg, d: Delivery, started: float, order: Order | None) -> None:
        task = asyncio.create_task(self._run(msg, d, started, order), name=f"deliver-{d.event_id}")
        self._tasks[task] = msg
        task.add_done_callback(self._on_done)

    async def _promote(self, lane: str) -> None:
        """A slot of `lane` (a hook's endpoint) was freed: start its oldest held message
        in it. When the breaker has just opened instead, its held messages go back to
        JetStream."""
        while not self._stopping and (item := self._held.pop(lane)) is not None:
            now = time.monotonic()
            defer = self._gate.admit(lane, now)
            if defer is None:
                self._start(item.msg, item.delivery, now, item.order)
                return
            await nak(item.msg, defer.delay)
            self._metrics.deferred.labels(item.delivery.hook, defer.reason).inc()

    def _on_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._wake.set()

    async def _run(self, msg: Msg, d: Delivery, started: float, order: Order | None) -> None:
        ok: bool | None = None
        freed = False
        self._metrics.in_flight.inc()
        try:
            attrs: dict[str, str | int | float] = {
                "sayna.event_id": d.event_id,
                "sayna.hook": d.hook,
                "sayna.endpoint": d.endpoint,
                "sayna.attempt": d.attempt + 1,
            }
            with self._tracer.span("sip.attempt", d.headers, SpanKind.CLIENT, attrs) as span:
                began, clock = time.time(), time.perf_counter()
                result = await self._deliverer.attempt(d, msg.data)
                elapsed_ms = (time.perf_counter() - clock) * 1000
                if result.was_attempt:
                    ok = result.kind is Kind.DELIVERED
                    status = str(result.status) if result.status else result.kind.value
                    self._metrics.attempts.labels(d.hook, result.kind.value, status).inc()
                # The request is over: its host slot goes to the next copy now, not after
                # the settlement's NATS round trips (a call lane's CAS among them).
                freed = True
                await self._free(d, started, ok)
                await self._settlement.settle(msg, d, result, began, elapsed_ms, span, order)
        except asyncio.CancelledError:  # shutdown: hand it back (a nak after an ack is void)
            await nak(msg, None)
            raise
        except nats.errors.Error as exc:  # KV read/publish/ack failed: not an attempt, soon again
            log.warning("event=settle_failed event_id=%s error=%s", d.event_id, quote(repr(exc)))
            await nak(msg, ERROR_PAUSE)
        except Exception as exc:  # a bug: a redelivery would hit it again, forever
            await self._settlement.crashed(msg, d, exc, order)
        finally:
            self._metrics.in_flight.dec()
            if not freed:
                await self._free(d, started, ok)

    async def _free(self, d: Delivery, started: float, ok: bool | None) -> None:
        """Give back the host slot taken at `started` (`ok`: the answer, for the breaker)
        and start a held copy in it."""
        if self._gate.release(d.lane, started, ok, time.monotonic()):
            self._metrics.breaker_opened.labels(d.hook).inc()
            log.warning("event=breaker_opened hook=%s endpoint=%s", d.hook, d.endpoint)
        await self._promote(d.lane)

    async def stop(self, loop_task: asyncio.Task[None]) -> None:
        """Stop pulling, give in-flight deliveries the grace period, nak the rest."""
        self._stopping = True
        self._wake.set()
        await asyncio.gather(loop_task, return_exceptions=True)
        for item in self._held.take_all():  # never started: back to JetStream at once
            await nak(item.msg, None)
        waiting = list(self._waiting)
        for task in waiting:  # waiting for their turn: each naks its message
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.grace)
            for task in pending:
                task.cancel()  # its handler naks the message
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.info("event=shutdown_nak count=%d", len(pending))


def _delivered_times(msg: Msg) -> int:
    """How many times JetStream handed `msg` over (1 the first time)."""
    try:
        return int(msg.metadata.num_delivered or 1)
    except Exception:  # a message without JetStream metadata (tests): first time
        return 1
