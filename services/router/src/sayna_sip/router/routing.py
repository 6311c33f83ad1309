"""Routing one LK_EVENTS message: SIP room? which host? which hook? then one delivery.

Transport-free: the handler passes the body and headers in and turns the returned
`Action` into ack / term / nak. Retry rules live here, as data (`ACTIONS`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum

import msgspec
import nats.errors
from opentelemetry.trace import SpanKind

from sayna_sip.common import tracing
from sayna_sip.common.config import SipConfig
from sayna_sip.common.contracts import MAX_ROOM_BYTES, Header, delivery_subject
from sayna_sip.common.hook import Hook
from sayna_sip.common.logs import quote
from sayna_sip.common.records import RouteOutcome, RouteRecord
from sayna_sip.router.copies import Note, Oversized, Publish, Stored, copy_headers
from sayna_sip.router.events import LkEvent, Malformed, decode_event
from sayna_sip.router.metrics import RouterMetrics
from sayna_sip.router.ordered import (
    CAS_TRIES,
    CheckSize,
    HookMatcher,
    OrderedRouting,
    ReadEvent,
    RoomConflict,
    Rooms,
)
from sayna_sip.router.outcomes import Outcome
from sayna_sip.router.rooms import RoomRecord

log = logging.getLogger("sayna_sip.router")

__all__ = ["Action", "EventRouter", "Oversized", "Publish"]

RecordRoute = Callable[[RouteRecord], None]  # never blocks, never raises (Recorder.record)


class Action(Enum):
    ACK = "ack"
    TERM = "term"  # never redeliver: it cannot get better
    RETRY = "retry"  # nak with RETRY_DELAY: NATS trouble, it will
    WAIT = "wait"  # nak with NO_HOST_DELAY: the room's host may be remembered any moment


ACTIONS: dict[Outcome, Action] = {
    Outcome.ROUTED: Action.ACK,
    Outcome.UNMATCHED: Action.ACK,
    Outcome.FILTERED: Action.ACK,
    Outcome.NO_HOST: Action.ACK,
    Outcome.HELD: Action.ACK,
    Outcome.DEFERRED: Action.WAIT,
    Outcome.NON_SIP: Action.ACK,
    Outcome.DISABLED: Action.ACK,
    Outcome.MALFORMED: Action.TERM,
    Outcome.RETRY: Action.RETRY,
}
# The routing record of each final outcome (design: "Delivery records"). DEFERRED and
# RETRY come back later; DISABLED (SIP off) records nothing, as it logs nothing.
ROUTE_OUTCOMES: dict[Outcome, str] = {
    Outcome.ROUTED: RouteOutcome.MATCHED,
    Outcome.UNMATCHED: RouteOutcome.UNKNOWN_HOST,
    Outcome.FILTERED: RouteOutcome.FILTERED,
    Outcome.NO_HOST: RouteOutcome.NO_HOST,
    Outcome.HELD: RouteOutcome.NO_HOST,  # so far; a `matched` record follows with the host
    Outcome.NON_SIP: RouteOutcome.NOT_SIP,
    Outcome.MALFORMED: RouteOutcome.MALFORMED,
}
RETRY_DELAY = 2.0  # seconds before a nak'd event comes back
# Previous-release messages (unpartitioned, routed concurrently): a host-less event of an
# unknown SIP room may have raced the caller's join: handled in the same pulled batch (or
# by another replica) before the join's room memory was written. It is nak'd for
# NO_HOST_DELAY until its NO_HOST_DELIVERIES-th delivery, and only then acked as no_host.
# (Partitioned events are routed one at a time per room: theirs is held, not nak'd.)
NO_HOST_DELAY = 1.0
NO_HOST_DELIVERIES = 3


@dataclass(frozen=True)
class _Target:
    hook: Hook
    sip_host: str
    from_participant: bool  # the host came from this event, not from room memory


class EventRouter:
    """Decides and performs the routing of one event; counts every outcome."""

    def __init__(
        self,
        sip: SipConfig | None,
        hooks: HookMatcher | None,  # None when SIP is disabled
        rooms: Rooms,
        publish: Publish,
        metrics: RouterMetrics,
        record: RecordRoute | None = None,
        tracer: tracing.Tracer | None = None,
        read_event: ReadEvent | None = None,
        check_size: CheckSize | None = None,
    ) -> None:
        self._sip = sip
        self._hooks = hooks
        self._rooms = rooms
        self._publish = publish
        self._metrics = metrics
        self._record = record
        self._tracer = tracer or tracing.Tracer("sayna_sip.router")
        self._ordered = (
            None
            if hooks is None
            else OrderedRouting(
                hooks, rooms, publish, read_event or _nothing, check_size or _any_size,
                record, self._tracer,
            )
        )  # fmt: skip

    async def handle(
        self,
        body: bytes,
        headers: Mapping[str, str],
        delivered: int = 1,
        seq: int = 0,
        ordered: bool = False,
    ) -> Action:
        """Route one event; `delivered` = JetStream's delivery count of this message,
        `seq` its LK_EVENTS sequence (kept in the route record, for replays), `ordered`
        when it came from a partition (numbered, held without a host; else the previous
        release's message: routed as that release did)."""
        started = time.perf_counter()
        note = Note(headers.get(Header.EVENT_ID, ""))
        with self._tracer.span("sip.route", headers, SpanKind.CONSUMER) as span:
            try:
                outcome = await self._route(body, headers, delivered, note, seq, ordered)
            except (TimeoutError, nats.errors.Error, RoomConflict) as exc:
                log.warning(
                    "event=router_retry event_id=%s error=%s",
                    quote(note.event_id),
                    quote(repr(exc)),
                )
                outcome = Outcome.RETRY
            except Oversized as exc:
                note.detail = str(exc)
                outcome = _malformed(note.event_id, str(exc))
            if span is not None:
                span.set_attribute("sayna.event_id", note.event_id)
                span.set_attribute("sayna.route", outcome.value)
            self._write_record(outcome, note, headers, seq, tracing.trace_id(span))
        self._metrics.count(outcome)
        if note.duplicate:
            self._metrics.duplicates.inc()
        if outcome is Outcome.ROUTED:
            self._metrics.routing_seconds.observe(time.perf_counter() - started)
            self._observe_age(headers)
        return ACTIONS[outcome]

    def _write_record(
        self, outcome: Outcome, note: Note, headers: Mapping[str, str], seq: int, trace_id: str
    ) -> None:
        kind = ROUTE_OUTCOMES.get(outcome)
        if kind is None or self._record is None or not note.event_id:
            return
        try:
            received_at = float(headers.get(Header.RECEIVED_AT) or 0)
        except ValueError:
            received_at = 0.0
        self._record(
            RouteRecord(
                event_id=note.event_id, event=note.event, room=note.room, outcome=kind,
                at=time.time(), sip_host=note.sip_host, host=note.hook, lk_seq=seq,
                endpoints=note.endpoints, call_seqs=note.call_seqs,
                received_at=received_at, trace_id=trace_id, detail=note.detail,
            )
        )  # fmt: skip

    async def _route(
        self,
        body: bytes,
        headers: Mapping[str, str],
        delivered: int,
        note: Note,
        seq: int,
        ordered: bool,
    ) -> Outcome:
        if self._sip is None or self._hooks is None:
            return Outcome.DISABLED
        try:
            event = decode_event(body)
        except Malformed as exc:
            note.detail = str(exc)
            return _malformed(note.event_id, str(exc))
        note.event, note.room = event.event, event.room_name
        room = event.room_name
        if not room.startswith(self._sip.room_prefix):
            return Outcome.NON_SIP
        if len(room.encode("utf-8", "surrogatepass")) > MAX_ROOM_BYTES:  # its KV key
            note.detail = "room name too long"  # in its record too, as any malformed event's
            return _malformed(headers.get(Header.EVENT_ID, ""), note.detail)
        event_id = event.id or headers.get(Header.EVENT_ID, "")
        if not event_id:
            return _malformed("", "no event id")
        note.event_id = event_id
        this = Stored(seq, event_id, event.event, room, body, headers)
        if ordered and self._ordered is not None:
            return await self._ordered.route(event, this, note)
        target = await self._target(self._hooks, event, event_id, delivered, note)
        if isinstance(target, Outcome):
            return target
        note.sip_host, note.hook = target.sip_host, target.hook.host
        remember = None
        if target.from_participant:
            remember = self._remember(room, target.sip_host, target.hook.host)
        wanted = [e.id for e in target.hook.endpoint_list() if e.wants(event.event)]
        if not wanted:  # remembered all the same: room events route
            if remember is not None:
                await remember
            log.debug("event=sip_filtered hook=%s event=%s", target.hook.host, quote(event.event))
            return Outcome.FILTERED
        note.endpoints = tuple(wanted)
        subject = delivery_subject(target.hook.host)
        writes: list[Awaitable[object]] = [] if remember is None else [remember]
        for endpoint in wanted:  # one copy per endpoint, each with its own dedupe id
            out = copy_headers(self._tracer, this, target.hook.host, target.sip_host, endpoint)
            writes.append(self._publish(body, subject, out))
        if len(writes) == 1:
            duplicate = await writes[0] is True
        else:  # all stored before the ack; one socket write and one round trip, not several
            done = await asyncio.gather(*writes, return_exceptions=True)
            for outcome in done:  # all finish either way, so no write is left unobserved
                if isinstance(outcome, BaseException):
                    raise outcome
            duplicate = all(x is True for x in done[len(writes) - len(wanted) :])
        note.duplicate = duplicate
        return Outcome.ROUTED

    async def _remember(self, room: str, sip_host: str, hook: str) -> None:
        """The room's host, set in its record with the rest kept (compare-and-set)."""
        fresh = False
        for _ in range(CAS_TRIES):
            state = await self._rooms.load(room, fresh)
            known = state.record
            if known is not None and (known.sip_host, known.hook) == (sip_host, hook):
                return
            new = msgspec.structs.replace(known or RoomRecord(), sip_host=sip_host, hook=hook)
            if await self._rooms.save(room, state, new) is not None:
                return
            fresh = True
        raise RoomConflict(f"room record of {room!r} kept changing")

    async def _target(
        self, hooks: HookMatcher, event: LkEvent, event_id: str, delivered: int, note: Note
    ) -> _Target | Outcome:
        sip_host = event.sip_host()
        from_participant = sip_host is not None
        if sip_host is None:
            record = (await self._rooms.load(event.room_name, fresh=True)).record
            if record is None or not record.sip_host:
                return _no_host(event, event_id, delivered)
            sip_host = record.sip_host
        note.sip_host = sip_host
        hook = await hooks.lookup(sip_host)
        if hook is None:
            log.info("event=sip_no_hook host=%s event_id=%s", quote(sip_host), quote(event_id))
            return Outcome.UNMATCHED
        return _Target(hook, sip_host, from_participant)

    def _observe_age(self, headers: Mapping[str, str]) -> None:
        try:
            received = float(headers.get(Header.RECEIVED_AT, ""))
        except ValueError:
            return
        self._metrics.event_age_seconds.observe(max(0.0, time.time() - received))


def _no_host(event: LkEvent, event_id: str, delivered: int) -> Outcome:
    final = delivered >= NO_HOST_DELIVERIES
    log.debug(
        "event=%s room=%s event_id=%s type=%s delivered=%d",
        "sip_no_host" if final else "sip_no_host_yet",
        quote(event.room_name),
        quote(event_id),
        event.event,
        delivered,
    )
    return Outcome.NO_HOST if final else Outcome.DEFERRED


async def _nothing(seq: int) -> Stored | None:
    return None


def _any_size(body: bytes, headers: dict[str, str]) -> None:
    return None


def _malformed(event_id: str, reason: str) -> Outcome:
    log.warning("event=router_malformed event_id=%s error=%s", quote(event_id), quote(reason))
    return Outcome.MALFORMED
