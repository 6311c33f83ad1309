"""`Sayna-Call-Seq` numbering and held events as a table (callseq.py): what a room's
record becomes, and which numbers a redelivered event gets again."""

from __future__ import annotations

import pytest

from sayna_sip.router import callseq
from sayna_sip.router.callseq import MAX_HELD
from sayna_sip.router.rooms import Held, Numbered, RoomRecord

A, B = "a.example.com#default", "a.example.com#crm"
LAST = (Numbered(7, {A: 1}), Numbered(9, {A: 2, B: 1}))
FIRST = (Numbered(1, {A: 1}),)
THREE = (Numbered(5, {A: 1}), Numbered(8, {A: 2}), Numbered(9, {A: 3}))


@pytest.mark.parametrize(
    ("record", "seq", "expected"),
    [
        (None, 9, None),  # a room never routed
        (RoomRecord(), 9, None),  # a record of the previous release: no last routing
        (RoomRecord(last=LAST), 9, LAST),  # the last routing was this event: same numbers
        (RoomRecord(last=LAST), 7, None),  # a held event of it: routed with the last one
        (RoomRecord(last=LAST), 10, None),  # a later event
        (RoomRecord(last=(Numbered(0, {A: 1}),)), 0, None),  # no sequence: never the same
        (RoomRecord(last=FIRST), 1, FIRST),  # the stream's very first event
        (RoomRecord(last=THREE), 9, THREE),  # two held events routed with it
        (RoomRecord(last=THREE), 8, None),
    ],
)
def test_a_redelivery_gets_the_numbers_of_the_last_routing_only(
    record: RoomRecord | None, seq: int, expected: tuple[Numbered, ...] | None
) -> None:
    assert callseq.redelivered(record, seq) == expected


def test_held_events_are_kept_in_order_up_to_the_rooms_maximum() -> None:
    assert MAX_HELD == 64
    first = callseq.hold(None, Held(3, "EV_3", "room_started"))
    assert first == RoomRecord(held=(Held(3, "EV_3", "room_started"),))
    known = RoomRecord("a.example.com", "a.example.com", {A: 4}, (), LAST)
    kept = callseq.hold(known, Held(5, "EV_5", "track_published"))
    assert kept == RoomRecord(
        "a.example.com", "a.example.com", {A: 4}, (Held(5, "EV_5", "track_published"),), LAST
    )
    assert callseq.is_held(kept, 5) and not callseq.is_held(kept, 3)
    assert not callseq.is_held(None, 5)
    record: RoomRecord | None = None
    for n in range(MAX_HELD):
        record = callseq.hold(record, Held(n + 1, f"EV_{n}", "x"))
        assert record is not None and len(record.held) == n + 1
    assert callseq.hold(record, Held(99, "EV_99", "x")) is None  # full: recorded no_host


def test_numbering_counts_per_lane_and_skips_lanes_an_event_does_not_go_to() -> None:
    held = RoomRecord(call_seq={A: 4}, held=(Held(5, "EV_5", "room_started"),))
    record, numbers = callseq.number(
        held, "a.example.com", "*.example.com", [(5, [A]), (6, [A, B]), (8, [B])]
    )
    assert numbers == (Numbered(5, {A: 5}), Numbered(6, {A: 6, B: 1}), Numbered(8, {B: 2}))
    # Host known, counters moved on, nothing held any more, this routing kept as the last.
    assert record == RoomRecord("a.example.com", "*.example.com", {A: 6, B: 2}, (), numbers)
    assert held.call_seq == {A: 4}  # the record read is never changed in place
    # A new room starts at 1; a filtered event takes no number.
    fresh, first = callseq.number(None, "b.example.com", "b.example.com", [(1, []), (2, [A])])
    assert first == (Numbered(1, {}), Numbered(2, {A: 1})) and fresh.call_seq == {A: 1}
