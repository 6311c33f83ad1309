"""Routing an event of a partitioned LK_EVENTS subject: in its room's order, numbered.

The partition durables hand out one event at a time, so when an event of a room is
routed every earlier one of that room was routed (or held) before. Per event: read the
room's record (cached), and
- its last routing was this very event (redelivered after a crash): store the same
  copies with the same numbers again (their `Nats-Msg-Id`s dedupe them);
- no host in the event nor in the record: hold it in the record (`held`), ack;
- else: number the held events (read back from LK_EVENTS) and this one per lane, write
  the record (compare-and-set: a conflict with another writer reloads and decides
  again), then store every copy, held events first, before the ack.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from sayna_sip.common import tracing
from sayna_sip.common.contracts import delivery_subject
from sayna_sip.common.hook import Hook
from sayna_sip.common.logs import quote
from sayna_sip.common.records import RouteOutcome, RouteRecord
from sayna_sip.router.callseq import hold, is_held, number, redelivered
from sayna_sip.router.copies import Note, Publish, Stored, copy_headers
from sayna_sip.router.events import LkEvent
from sayna_sip.router.outcomes import Outcome
from sayna_sip.router.rooms import Held, Numbered, RoomRecord, RoomState, lane

log = logging.getLogger("sayna_sip.router")

ReadEvent = Callable[[int], Awaitable[Stored | None]]  # LK_EVENTS by sequence; None: gone
CheckSize = Callable[[bytes, dict[str, str]], None]  # raises Oversized
RecordRoute = Callable[[RouteRecord], None]
CAS_TRIES = 5  # writers racing on one room (a partition moving between routers)
HELD_DETAIL = "held until the room's host is known; routed before the event that brings it"
HELD_FULL = "no host: the room already holds its maximum of events waiting for one"


class RoomConflict(Exception):
    """The room's record kept changing under us: the event is retried."""


class HookMatcher(Protocol):
    async def lookup(self, host: str) -> Hook | None: ...


class Rooms(Protocol):
    async def load(self, room: str, fresh: bool = False) -> RoomState: ...

    async def save(self, room: str, base: RoomState, record: RoomRecord) -> RoomState | None: ...


class OrderedRouting:
    def __init__(
        self,
        hooks: HookMatcher,
        rooms: Rooms,
        publish: Publish,
        read_event: ReadEvent,
        check_size: CheckSize,
        record: RecordRoute | None,
        tracer: tracing.Tracer,
    ) -> None:
        self._hooks = hooks
        self._rooms = rooms
        self._publish = publish
        self._read = read_event
        self._check = check_size
        self._record = record
        self._tracer = tracer

    async def route(self, event: LkEvent, this: Stored, note: Note) -> Outcome:
        fresh = False
        for _ in range(CAS_TRIES):
            state = await self._rooms.load(this.room, fresh)
            outcome = await self._decide(event, this, state, note)
            if outcome is not None:
                return outcome
            fresh = True  # another writer came first: decide again on what it wrote
        raise RoomConflict(f"room record of {this.room!r} kept changing")

    async def _decide(
        self, event: LkEvent, this: Stored, state: RoomState, note: Note
    ) -> Outcome | None:
        record = state.record
        again = redelivered(record, this.seq)
        if again is not None and record is not None:
            return await self._store_again(again, record, this, note)
        if is_held(record, this.seq):  # held already, then redelivered before the ack
            note.detail = HELD_DETAIL
            return Outcome.HELD
        sip_host = event.sip_host()
        from_participant = sip_host is not None
        if sip_host is None:
            if record is None or not record.sip_host:
                return await self._hold(record, this, state, note)
            sip_host = record.sip_host
        note.sip_host = sip_host
        hook = await self._hooks.lookup(sip_host)
        if hook is None:
            log.info("event=sip_no_hook host=%s event_id=%s", quote(sip_host), quote(this.event_id))
            return Outcome.UNMATCHED
        note.hook = hook.host
        wanted = [e.id for e in hook.endpoint_list() if e.wants(event.event)]
        waiting = record.held if record is not None else ()
        moved = from_participant and (
            record is None or (record.sip_host, record.hook) != (sip_host, hook.host)
        )
        if not wanted and not waiting and not moved:
            return _filtered(hook, event)
        earlier = await self._read_held(waiting)
        batch = [(s.seq, _lanes(hook, s.event)) for s in earlier]
        batch.append((this.seq, [lane(hook.host, e) for e in wanted]))
        new, numbers = number(record, sip_host, hook.host, batch)
        copies = self._copies([*earlier, this], numbers, sip_host)
        for body, _, headers in copies[len(copies) - len(wanted) :]:  # this event's
            self._check(body, headers)  # before its numbers are taken: no gap
        if await self._rooms.save(this.room, state, new) is None:
            return None
        note.duplicate = await self._store(copies)
        self._note_held(earlier, numbers, new, this)
        if not wanted:
            return _filtered(hook, event)
        _note_numbers(note, numbers[-1])
        return Outcome.ROUTED

    async def _hold(
        self, record: RoomRecord | None, this: Stored, state: RoomState, note: Note
    ) -> Outcome | None:
        held = hold(record, Held(this.seq, this.event_id, this.event))
        if held is None:
            note.detail = HELD_FULL
            log.debug("event=sip_no_host room=%s event_id=%s", quote(this.room), this.event_id)
            return Outcome.NO_HOST
        if await self._rooms.save(this.room, state, held) is None:
            return None
        note.detail = HELD_DETAIL
        log.debug("event=sip_no_host_yet room=%s event_id=%s", quote(this.room), this.event_id)
        return Outcome.HELD

    async def _store_again(
        self, again: tuple[Numbered, ...], record: RoomRecord, this: Stored, note: Note
    ) -> Outcome:
        """The last routing of the room once more, numbers and all."""
        read = await asyncio.gather(*(self._read(n.seq) for n in again[:-1]))
        pairs = [(s, n) for s, n in zip(read, again, strict=False) if s is not None]
        found = [s for s, _ in pairs]
        numbers = (*(n for _, n in pairs), again[-1])
        note.duplicate = await self._store(self._copies([*found, this], numbers, record.sip_host))
        self._note_held(found, numbers, record, this)
        note.sip_host, note.hook = record.sip_host, record.hook
        if not again[-1].numbers:
            return Outcome.FILTERED
        _note_numbers(note, again[-1])
        return Outcome.ROUTED

    def _copies(
        self, events: Sequence[Stored], numbers: Sequence[Numbered], sip_host: str
    ) -> list[tuple[bytes, str, dict[str, str]]]:
        out: list[tuple[bytes, str, dict[str, str]]] = []
        for stored, numbered in zip(events, numbers, strict=True):
            for name, n in numbered.numbers.items():
                hook, endpoint = name.split("#", 1)
                headers = copy_headers(self._tracer, stored, hook, sip_host, endpoint, n)
                out.append((stored.body, delivery_subject(hook), headers))
        return out

    async def _store(self, copies: list[tuple[bytes, str, dict[str, str]]]) -> bool:
        """All stored before the ack; one socket write and one round trip, not several.
        True when every copy was there already."""
        done = await asyncio.gather(
            *(self._publish(body, subject, headers) for body, subject, headers in copies),
            return_exceptions=True,
        )
        for result in done:  # all finish either way, so no write is left unobserved
            if isinstance(result, BaseException):
                raise result
        return bool(done) and all(x is True for x in done)

    async def _read_held(self, held: Sequence[Held]) -> list[Stored]:
        found = await asyncio.gather(*(self._read(h.seq) for h in held))
        out = []
        for h, stored in zip(held, found, strict=True):
            if stored is None or stored.event_id != h.event_id:  # gone: past LK_EVENTS_MAX_AGE
                log.info("event=sip_held_gone event_id=%s seq=%d", quote(h.event_id), h.seq)
                continue
            out.append(stored)
        return out

    def _note_held(
        self,
        earlier: Sequence[Stored],
        numbers: Sequence[Numbered],
        record: RoomRecord,
        this: Stored,
    ) -> None:
        """The `matched` route records of the held events now routed (their `no_host`
        record said they were held)."""
        if self._record is None:
            return
        for stored, numbered in zip(earlier, numbers, strict=False):
            endpoints = tuple(name.split("#", 1)[1] for name in numbered.numbers)
            try:
                received = float(stored.received_at or 0)
            except ValueError:
                received = 0.0
            self._record(
                RouteRecord(
                    event_id=stored.event_id, event=stored.event, room=stored.room,
                    outcome=RouteOutcome.MATCHED if endpoints else RouteOutcome.FILTERED,
                    at=time.time(), sip_host=record.sip_host, host=record.hook,
                    endpoints=endpoints, lk_seq=stored.seq, received_at=received,
                    call_seqs=_by_endpoint(numbered), detail=f"held, routed with {this.event_id}",
                )
            )  # fmt: skip


def _lanes(hook: Hook, event: str) -> list[str]:
    return [lane(hook.host, e.id) for e in hook.endpoint_list() if e.wants(event)]


def _by_endpoint(numbered: Numbered) -> dict[str, int]:
    return {name.split("#", 1)[1]: n for name, n in numbered.numbers.items()}


def _note_numbers(note: Note, numbered: Numbered) -> None:
    note.call_seqs = _by_endpoint(numbered)
    note.endpoints = tuple(note.call_seqs)


def _filtered(hook: Hook, event: LkEvent) -> Outcome:
    log.debug("event=sip_filtered hook=%s event=%s", hook.host, quote(event.event))
    return Outcome.FILTERED
