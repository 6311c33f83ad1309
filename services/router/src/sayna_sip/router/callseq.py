"""`Sayna-Call-Seq` numbering and held events: pure functions over a room's record.

Per room and lane (`hook#endpoint`) the copies stored get 1, 2, 3... in the order the
router routes the room's events, which the partitioned LK_EVENTS consumption makes the
LiveKit order. A filtered event takes no number for that lane. The numbers of the last
routing are kept in the record, so a redelivered event (router killed after the write,
before the ack) is numbered the same and its copies dedupe on their `Nats-Msg-Id`.
An event that finds no host (e.g. `room_started` before the caller's join) is held in
the record, at most MAX_HELD per room, and numbered before the event that brings the
host.
"""

from __future__ import annotations

from collections.abc import Sequence

from sayna_sip.router.rooms import Held, Numbered, RoomRecord

MAX_HELD = 64  # host-less events one room keeps waiting; more are recorded no_host


def redelivered(record: RoomRecord | None, seq: int) -> tuple[Numbered, ...] | None:
    """The numbers given when this LK_EVENTS sequence was routed last, if it was the last
    routing of the room (its held events included): a redelivery gets them again."""
    if record is None or not record.last or seq <= 0:
        return None
    return record.last if record.last[-1].seq == seq else None


def is_held(record: RoomRecord | None, seq: int) -> bool:
    return record is not None and any(h.seq == seq for h in record.held)


def hold(record: RoomRecord | None, held: Held) -> RoomRecord | None:
    """`record` with one more host-less event waiting; None when the room holds its max."""
    base = record or RoomRecord()
    if len(base.held) >= MAX_HELD:
        return None
    return RoomRecord(base.sip_host, base.hook, base.call_seq, (*base.held, held), base.last)


def number(
    record: RoomRecord | None,
    sip_host: str,
    hook: str,
    batch: Sequence[tuple[int, Sequence[str]]],
) -> tuple[RoomRecord, tuple[Numbered, ...]]:
    """Number `batch` ((LK_EVENTS seq, lanes wanting a copy) in order): the new record
    (host set, counters moved, nothing held any more) and each event's numbers."""
    base = record or RoomRecord()
    counters = dict(base.call_seq)
    out: list[Numbered] = []
    for seq, lanes in batch:
        numbers: dict[str, int] = {}
        for name in lanes:
            counters[name] = numbers[name] = counters.get(name, 0) + 1
        out.append(Numbered(seq, numbers))
    last = tuple(out)
    return RoomRecord(sip_host, hook, counters, (), last), last
