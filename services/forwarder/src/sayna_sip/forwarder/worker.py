"""The fetch loop: pull deliveries from the shared durable consumer and settle each one
deliberately (ack / nak with delay / term), never holding a message it cannot start.

Per message, in order: not yet due (`Sayna-Not-Before`) -> nak until due; host at its
cap or behind an open breaker -> nak with a short delay (not an attempt); else start
a delivery task. A failed attempt publishes a copy with `Sayna-Attempt` + 1 and its
due time, then acks the original: retries are counted in the header, not by JetStream
redeliveries, so deferrals never consume the schedule, and a waiting retry costs no
worker slot and survives restarts. Outcomes map to actions in `_settle` only.
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
from nats.js import JetStreamContext
from opentelemetry.trace import Span, SpanKind

from sayna_sip.common import contracts, topology, tracing
from sayna_sip.common.config import DEFAULT_RETRY_SCHEDULE, ServerConfig
from sayna_sip.common.delivery import BadEnvelope, Delivery
from sayna_sip.common.logs import quote
from sayna_sip.common.records import AttemptOutcome, AttemptRecord
from sayna_sip.forwarder import policy
from sayna_sip.forwarder.delivery import Deliverer
from sayna_sip.forwarder.gate import HostGate
from sayna_sip.forwarder.metrics import ForwarderMetrics
from sayna_sip.forwarder.policy import Kind, Result
from sayna_sip.forwarder.settings import Tuning

log = logging.getLogger("sayna_sip.forwarder")

DUE_SLACK = 0.005  # a message due within this is treated as due now
ERROR_PAUSE = 0.5  # after a NATS error in the loop, before pulling again
MIN_BATCH = 8  # smallest pull after busy hosts bounced messages


class Worker:
    def __init__(
        self,
        config: ServerConfig,
        tuning: Tuning,
        js: JetStreamContext,
        pull: JetStreamContext.PullSubscription,
        deliverer: Deliverer,
        metrics: ForwarderMetrics,
        record: Callable[[AttemptRecord], None] | None = None,
    ) -> None:
        self._record = record  # Recorder.record: never blocks, never raises
        self._tracer = tracing.Tracer("sayna_sip.forwarder")
        self._body_bytes = config.records.body_bytes
        self._js = js
        self._pull = pull
        self._deliverer = deliverer
        self._metrics = metrics
        self._tuning = tuning
        self._rng = random.Random(tuning.seed)
        self._gate = HostGate(config.forwarder.host_concurrency, tuning.breaker, self._rng)
        self._schedule = config.sip.retry_schedule if config.sip else DEFAULT_RETRY_SCHEDULE
        self._concurrency = config.forwarder.concurrency
        grace = tuning.shutdown_grace
        self._grace = min(config.forwarder.timeout, 5.0) if grace is None else grace
        self._tasks: dict[asyncio.Task[None], Msg] = {}
        self._finished = 0  # deliveries finished so far (wakes a waiting loop)
        self._wake = asyncio.Event()
        self._batch = tuning.fetch_batch
        self._stopping = False
        self.delivered = 0  # acked as delivered by this worker (tests, bench)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def run(self) -> None:
        """Pull and dispatch until `stop()`; the current pull finishes first."""
        while not self._stopping:
            free = self._concurrency - len(self._tasks)
            if free <= 0:
                await self._wait_finish(self._finished)
                continue
            msgs = await self._fetch(min(free, self._batch))
            started = busy = 0
            for msg in msgs:
                verdict = await self._dispatch(msg)
                started += verdict == "started"
                busy += verdict == "busy"
            self._adapt(len(msgs), started, busy)
            # No wait after a batch of busy hosts' messages: they were put back with a
            # delay, so the next pull reaches what queued behind them (another tenant)
            # at once, and blocks in JetStream only when nothing is waiting.

    def _adapt(self, fetched: int, started: int, busy: int) -> None:
        """Pull about as many as can start: shrink when busy hosts bounced messages,
        grow again while whole batches start (no nak churn on a one-host backlog)."""
        if busy:
            self._batch = max(MIN_BATCH, started)
        elif fetched >= self._batch:
            self._batch = min(self._tuning.fetch_batch, self._batch * 2)

    async def _wait_finish(self, mark: int) -> None:
        while self._finished == mark and not self._stopping:
            self._wake.clear()
            await self._wake.wait()

    async def _fetch(self, batch: int) -> list[Msg]:
        try:
            return await self._pull.fetch(batch, timeout=self._tuning.fetch_timeout)
        except TimeoutError:  # nothing to do (nats.errors.TimeoutError included)
            return []
        except nats.errors.Error as exc:  # disconnected, reconnecting, API error
            log.warning("event=fetch_failed error=%s", quote(repr(exc)))
            await asyncio.sleep(ERROR_PAUSE)
            return []

    async def _dispatch(self, msg: Msg) -> str:
        """Start the delivery of `msg` or put it back to wait; returns the verdict."""
        if self._stopping:
            await _nak(msg, None)
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
            await _nak(msg, due_in + self._rng.uniform(0, 0.05))
            self._metrics.deferred.labels(d.hook, "scheduled").inc()
            return "scheduled"
        started = time.monotonic()
        defer = self._gate.admit(d.hook, started)
        if defer is not None:
            await _nak(msg, defer.delay)
            self._metrics.deferred.labels(d.hook, defer.reason).inc()
            return defer.reason
        task = asyncio.create_task(self._run(msg, d, started), name=f"deliver-{d.event_id}")
        self._tasks[task] = msg
        task.add_done_callback(self._on_done)
        return "started"

    def _on_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._finished += 1
        self._wake.set()

    async def _run(self, msg: Msg, d: Delivery, started: float) -> None:
        ok: bool | None = None
        self._metrics.in_flight.inc()
        try:
            attrs: dict[str, str | int | float] = {
                "sayna.event_id": d.event_id,
                "sayna.hook": d.hook,
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
                decision = policy.decide(result, d.attempt, self._schedule, self._rng)
                self._write_record(d, result, decision, began, elapsed_ms, span)
                await self._settle(msg, d, result, decision)
        except asyncio.CancelledError:  # shutdown: hand it back (a nak after an ack is void)
            await _nak(msg, None)
            raise
        except nats.errors.Error as exc:  # KV read/publish/ack failed: not an attempt, soon again
            log.warning("event=settle_failed event_id=%s error=%s", d.event_id, quote(repr(exc)))
            await _nak(msg, ERROR_PAUSE)
        except Exception as exc:  # a bug: a redelivery would hit it again, forever
            await self._crashed(msg, d, exc)
        finally:
            self._metrics.in_flight.dec()
            if self._gate.release(d.hook, started, ok, time.monotonic()):
                self._metrics.breaker_opened.labels(d.hook).inc()
                log.warning("event=breaker_opened hook=%s", d.hook)

    def _write_record(
        self,
        d: Delivery,
        result: Result,
        decision: policy.Decision,
        began: float,
        elapsed_ms: float,
        span: Span | None,
    ) -> None:
        if span is not None and result.status is not None:
            span.set_attribute("http.response.status_code", result.status)
        if not isinstance(decision, policy.Ack):
            tracing.fail(span, result.error)
        if self._record is None:
            return
        self._record(
            AttemptRecord(
                event_id=d.event_id, event=d.event, room=d.room, host=d.hook, url=result.url,
                attempt=d.attempt + 1, outcome=_outcome(result, decision), started_at=began,
                duration_ms=round(elapsed_ms, 1), status=result.status, error=result.error,
                reason=decision.reason if isinstance(decision, policy.Dead) else "",
                response=result.excerpt[: self._body_bytes], redrive=d.generation,
                trace_id=tracing.trace_id(span),
            )
        )  # fmt: skip

    async def _settle(
        self, msg: Msg, d: Delivery, result: Result, decision: policy.Decision
    ) -> None:
        if isinstance(decision, policy.Ack):
            await msg.ack()
            self.delivered += 1
            if d.received_at is not None:
                self._metrics.latency.observe(max(0.0, time.time() - d.received_at))
            return
        if isinstance(decision, policy.Retry):
            due = time.time() + decision.delay
            headers = d.retry_headers(decision.attempt, due)
            await self._js.publish(
                msg.subject, msg.data, stream=topology.SIP_DELIVERIES, headers=headers
            )
            await msg.ack()
            self._metrics.retries.labels(d.hook).inc()
            log.info(
                "event=delivery_retry event_id=%s hook=%s attempt=%d delay=%.3f error=%s",
                d.event_id, d.hook, decision.attempt, decision.delay, quote(result.error),
            )  # fmt: skip
            return
        await self._dead_letter(msg, d, result, decision)

    async def _crashed(self, msg: Msg, d: Delivery, exc: Exception) -> None:
        """Dead-letter a message whose delivery raised unexpectedly (reason names the
        exception type), so a bug costs one dead letter, not an endless nak loop."""
        log.error(
            "event=delivery_crashed event_id=%s hook=%s error=%s",
            d.event_id, d.hook, quote(repr(exc)), exc_info=exc,
        )  # fmt: skip
        dead = policy.Dead(f"internal error: {type(exc).__name__}", d.attempt)
        failed = Result(Kind.ERROR, error=f"{type(exc).__name__}: {exc}")
        try:
            await self._dead_letter(msg, d, failed, dead)
        except nats.errors.Error as nats_exc:  # comes back and is dead-lettered then
            log.warning(
                "event=settle_failed event_id=%s error=%s", d.event_id, quote(repr(nats_exc))
            )
            await _nak(msg, ERROR_PAUSE)
        except Exception:  # cannot even dead-letter it: drop it rather than loop
            log.exception("event=delivery_dropped event_id=%s hook=%s", d.event_id, d.hook)
            with contextlib.suppress(nats.errors.Error):
                await msg.term()

    async def _dead_letter(self, msg: Msg, d: Delivery, result: Result, dead: policy.Dead) -> None:
        headers = d.dead_headers(
            reason=dead.reason,
            attempts=dead.attempts,
            last_status=result.status,
            last_error=result.error,
            hook_url=result.url,
            dead_at=time.time(),
        )
        await self._js.publish(
            contracts.dead_subject(d.hook), msg.data, stream=topology.SIP_DEAD, headers=headers
        )
        await msg.ack()
        self._metrics.dead.labels(d.hook, dead.reason).inc()
        log.warning(
            "event=delivery_dead event_id=%s hook=%s reason=%s attempts=%d error=%s",
            d.event_id, d.hook, quote(dead.reason), dead.attempts, quote(result.error),
        )  # fmt: skip

    async def stop(self, loop_task: asyncio.Task[None]) -> None:
        """Stop pulling, give in-flight deliveries the grace period, nak the rest."""
        self._stopping = True
        self._wake.set()
        await asyncio.gather(loop_task, return_exceptions=True)
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._grace)
            for task in pending:
                task.cancel()  # its handler naks the message
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.info("event=shutdown_nak count=%d", len(pending))


def _outcome(result: Result, decision: policy.Decision) -> str:
    if isinstance(decision, policy.Ack):
        return AttemptOutcome.DELIVERED
    if result.kind is Kind.BLOCKED:
        return AttemptOutcome.BLOCKED
    return AttemptOutcome.FAILED if isinstance(decision, policy.Retry) else AttemptOutcome.DEAD


async def _nak(msg: Msg, delay: float | None) -> None:
    try:
        await msg.nak(delay=delay)
    except nats.errors.Error as exc:  # it comes back after ack_wait anyway
        log.debug("event=nak_failed error=%s", quote(repr(exc)))
