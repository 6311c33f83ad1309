"""Settlement: what the forwarder does with a message once an attempt has a result.

One place maps an outcome to an action (`settle`): delivered -> ack; a secret we cannot
open -> a copy put back due later, no attempt spent (our fault, not the endpoint's); failed
with tries left -> publish a copy with `Sayna-Attempt` + 1 and its due time, then ack the original
(retries are counted in the header, not by JetStream redeliveries); spent, permanent or
crashed -> dead letter, then ack. A copy that keeps its call's order moves its lane on
when it ends (delivered or dead), before the ack (the next copy waiting in this process
goes as that write starts), and marks the lane's head as failing when it is retried
(order_lanes.py). Every attempt is also written as an AttemptRecord
here, the place where attempts are recorded.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from opentelemetry.trace import Span

from sayna_sip.common import contracts, topology, tracing
from sayna_sip.common.config import DEFAULT_RETRY_SCHEDULE, ServerConfig
from sayna_sip.common.delivery import Delivery
from sayna_sip.common.labels import DeadReason, DeferReason
from sayna_sip.common.logs import quote
from sayna_sip.common.records import AttemptOutcome, AttemptRecord
from sayna_sip.forwarder import policy
from sayna_sip.forwarder.metrics import ForwarderMetrics
from sayna_sip.forwarder.order import Order
from sayna_sip.forwarder.order_lanes import CallLanes
from sayna_sip.forwarder.policy import Kind, Result

log = logging.getLogger("sayna_sip.forwarder")

ERROR_PAUSE = 0.5  # after a NATS error, before the message (or the next pull) comes again


def retry_schedule(config: ServerConfig) -> tuple[float, ...]:
    return config.sip.retry_schedule if config.sip else DEFAULT_RETRY_SCHEDULE


class Settlement:
    def __init__(
        self,
        js: JetStreamContext,
        metrics: ForwarderMetrics,
        schedule: tuple[float, ...],
        rng: random.Random,
        record: Callable[[AttemptRecord], None] | None = None,
        body_bytes: int = 0,
        lanes: CallLanes | None = None,
        unsealed_wait: float = policy.UNSEALED_WAIT,
    ) -> None:
        self._js = js
        self._metrics = metrics
        self._schedule = schedule
        self._rng = rng
        self._record = record  # Recorder.record: never blocks, never raises
        self._body_bytes = body_bytes
        self._lanes = lanes
        self._unsealed_wait = unsealed_wait
        self.delivered = 0  # acked as delivered (tests, bench)

    async def settle(
        self, msg: Msg, d: Delivery, result: Result, began: float, elapsed_ms: float,
        span: Span | None, order: Order | None = None,
    ) -> None:  # fmt: skip
        """Decide what `result` means for `msg`, record the attempt, and act on it."""
        decision = policy.decide(result, d.attempt, self._schedule, self._rng, self._unsealed_wait)
        if result.kind is Kind.UNSEALED and isinstance(decision, policy.Retry):
            await self._lane(d, decision, order)  # its call's later events wait in JetStream
            await self._put_back(msg, d, decision.delay)  # nothing was sent: nothing to record
            self._metrics.deferred.labels(d.hook, DeferReason.SECRET_UNREADABLE).inc()
            return
        due = time.time() + decision.delay if isinstance(decision, policy.Retry) else 0.0
        order = await self._lane(d, decision, order)
        self._write_record(d, result, decision, began, elapsed_ms, span, due, order)
        if isinstance(decision, policy.Ack):
            await msg.ack()
            self.delivered += 1
            if d.received_at is not None:
                self._metrics.latency.observe(max(0.0, time.time() - d.received_at))
        elif isinstance(decision, policy.Retry):
            await self._retry(msg, d, result, decision, due)
        else:
            await self._dead_letter(msg, d, result, decision)

    async def _lane(
        self, d: Delivery, decision: policy.Decision, order: Order | None
    ) -> Order | None:
        """Move the copy's call lane on (it ended) or mark its head as failing (retried);
        the order with how many it held back, when its lane released it meanwhile."""
        if order is None or self._lanes is None:
            return order
        if isinstance(decision, policy.Retry):
            released = await self._lanes.failed(d, time.time() + decision.delay)
        else:
            await self._lanes.ending(d, order)  # the next copy waiting goes now
            released = await self._lanes.ended(d)
        if released and not order.released:
            return Order(order.seq, late=True, released=released)
        return order

    def _write_record(
        self,
        d: Delivery,
        result: Result,
        decision: policy.Decision,
        began: float,
        elapsed_ms: float,
        span: Span | None,
        due: float,
        order: Order | None = None,
    ) -> None:
        if span is not None and result.status is not None:
            span.set_attribute("http.response.status_code", result.status)
        if not isinstance(decision, policy.Ack):
            tracing.fail(span, result.error)
        if self._record is None:
            return
        self._record(
            AttemptRecord(
                event_id=d.event_id, event=d.event, room=d.room, host=d.hook, endpoint=d.endpoint,
                url=result.url,
                attempt=d.attempt + 1, outcome=_outcome(result, decision), started_at=began,
                duration_ms=round(elapsed_ms, 1), status=result.status, error=result.error,
                reason=decision.reason if isinstance(decision, policy.Dead) else "",
                response=result.excerpt[: self._body_bytes], redrive=d.generation,
                trace_id=tracing.trace_id(span), rate_limited_ms=round((d.paced or 0) * 1000, 1),
                request_headers=dict(result.request_headers), retry_at=round(due, 3),
                call_seq=d.call_seq, late=order is not None and order.late,
                released=order.released if order is not None else 0,
            )
        )  # fmt: skip

    async def _retry(
        self, msg: Msg, d: Delivery, result: Result, retry: policy.Retry, due: float
    ) -> None:
        if retry.spent:
            headers = d.retry_headers(retry.attempt, due, result.status)
        else:
            headers = d.wait_headers(due)
        await self._js.publish(
            msg.subject, msg.data, stream=topology.SIP_DELIVERIES, headers=headers
        )
        await msg.ack()
        self._metrics.retries.labels(d.hook).inc()
        log.info(
            "event=delivery_retry event_id=%s hook=%s attempt=%d delay=%.3f error=%s",
            d.event_id, d.hook, retry.attempt, retry.delay, quote(result.error),
        )  # fmt: skip

    async def pace(self, msg: Msg, d: Delivery, wait: float) -> None:
        """Put `msg` back due at its rate-limit slot, `wait` seconds away: a paced copy
        (no attempt spent, its own dedupe id) that any forwarder sends when due."""
        await self._put_back(msg, d, wait, paced=wait)
        self._metrics.rate_limited.labels(d.hook, d.endpoint).inc(wait)
        self._metrics.deferred.labels(d.hook, DeferReason.RATE_LIMIT).inc()

    async def _put_back(
        self, msg: Msg, d: Delivery, wait: float, paced: float | None = None
    ) -> None:
        """A copy due `wait` seconds from now, no attempt spent (its own dedupe id)."""
        headers = d.wait_headers(time.time() + wait, paced=paced)
        await self._js.publish(
            msg.subject, msg.data, stream=topology.SIP_DELIVERIES, headers=headers
        )
        await msg.ack()

    async def crashed(
        self, msg: Msg, d: Delivery, exc: Exception, order: Order | None = None
    ) -> None:
        """Dead-letter a message whose delivery raised unexpectedly (reason names the
        exception type), so a bug costs one dead letter, not an endless nak loop."""
        log.error(
            "event=delivery_crashed event_id=%s hook=%s error=%s",
            d.event_id, d.hook, quote(repr(exc)), exc_info=exc,
        )  # fmt: skip
        dead = policy.Dead(DeadReason.internal(exc), d.attempt)
        failed = Result(Kind.ERROR, error=f"{type(exc).__name__}: {exc}")
        try:
            await self._lane(d, dead, order)
            await self._dead_letter(msg, d, failed, dead)
        except nats.errors.Error as nats_exc:  # comes back and is dead-lettered then
            log.warning(
                "event=settle_failed event_id=%s error=%s", d.event_id, quote(repr(nats_exc))
            )
            await nak(msg, ERROR_PAUSE)
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


def _outcome(result: Result, decision: policy.Decision) -> str:
    if isinstance(decision, policy.Ack):
        return AttemptOutcome.DELIVERED
    if result.kind is Kind.BLOCKED:
        return AttemptOutcome.BLOCKED
    if result.kind is Kind.PROXY_ERROR:
        return AttemptOutcome.PROXY_ERROR
    return AttemptOutcome.FAILED if isinstance(decision, policy.Retry) else AttemptOutcome.DEAD


async def nak(msg: Msg, delay: float | None) -> None:
    """Put `msg` back (after `delay`); a failure is only logged: it comes back anyway."""
    try:
        await msg.nak(delay=delay)
    except nats.errors.Error as exc:  # it comes back after ack_wait anyway
        log.debug("event=nak_failed error=%s", quote(repr(exc)))
