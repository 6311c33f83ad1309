"""A call lane's verbs as a table (order.py): whose turn it is, what ending, failing,
waiting and releasing make of a lane, and the KV value's format."""

from __future__ import annotations

import msgspec
import pytest

from sayna_sip.forwarder import order
from sayna_sip.forwarder.order import LaneState, Turn


@pytest.mark.parametrize(
    ("state", "seq", "expected"),
    [
        (LaneState(), 1, Turn.GO),  # a new lane: its first copy goes
        (LaneState(), 2, Turn.WAIT),  # copy 1 has not ended
        (LaneState(done=3), 4, Turn.GO),
        (LaneState(done=3), 3, Turn.LATE),  # a released head, redriven, or a duplicate
        (LaneState(done=3), 6, Turn.WAIT),
    ],
)
def test_whose_turn(state: LaneState, seq: int, expected: Turn) -> None:
    assert order.turn(state, seq) is expected


def test_the_head_ending_moves_the_lane_on_and_a_late_one_changes_nothing() -> None:
    held = LaneState(done=1, since=10.0, due=15.0, tail=4)
    moved = order.advance(held, 2)
    assert moved is not None and (moved.done, moved.since, moved.due, moved.tail) == (2, 0, 0, 4)
    assert order.advance(LaneState(done=5), 3) is None
    assert order.advance(LaneState(done=5), 7) is None  # not its turn: nothing to move


def test_a_failing_head_tells_its_waiters_when_it_is_due() -> None:
    assert order.failed(LaneState(done=1), 2, 99.0) == LaneState(done=1, due=99.0)
    assert order.failed(LaneState(done=1, due=99.0), 2, 99.0) is None  # no write
    assert order.failed(LaneState(done=4), 2, 99.0) is None  # a released head failing


def test_waiting_starts_the_hold_clock_once_and_remembers_the_tail() -> None:
    first = order.waiting(LaneState(done=1), 3, 100.0)
    assert first == LaneState(done=1, since=100.0, tail=3)
    assert order.waiting(first, 3, 101.0) is None  # nothing new: no write
    assert order.waiting(first, 5, 102.0) == LaneState(done=1, since=100.0, tail=5)


def test_the_hold_ends_after_hold_max_and_release_moves_past_the_head() -> None:
    held = LaneState(done=1, since=100.0, due=130.0, tail=5)
    assert not order.hold_over(held, 100.9, 1.0) and order.hold_over(held, 101.0, 1.0)
    assert not order.hold_over(LaneState(done=1), 1e9, 1.0)  # nothing waited
    assert order.hold_deadline(held, 100.5, 1.0) == 101.0
    released = order.release(held)
    assert (released.done, released.since, released.due) == (2, 0.0, 0.0)
    assert order.released_count(released, 2) == 3  # copies 3, 4, 5 waited
    assert order.turn(released, 2) is Turn.LATE and order.turn(released, 3) is Turn.GO
    # The released head, when it ends, is forgotten; nothing else moves.
    ended = order.advance(released, 2)
    assert ended is not None and ended.done == 2 and order.released_count(ended, 2) == 0


def test_a_lane_remembers_a_bounded_number_of_released_heads() -> None:
    state = LaneState()
    for _ in range(order.RELEASED_KEPT + 5):
        state = order.release(state)
    assert len(state.released) == order.RELEASED_KEPT
    assert min(int(k) for k in state.released) == 6


def test_the_lane_value_is_versioned_and_reads_what_older_writers_left() -> None:
    assert msgspec.json.decode(LaneState(done=2).encode())["v"] == 1
    assert LaneState.decode(b'{"v":1,"done":3}').head == 4  # fields added later: defaults
    assert LaneState.decode(b'{"v":1,"done":3,"later":"x"}').done == 3
    assert LaneState.decode(None).done == 0  # no key: a new lane


def test_the_lane_value_every_forwarder_reads_writes_every_field() -> None:
    # The KV value other forwarders (and a previous release) read: all fields, `v` first.
    assert LaneState(done=2).encode() == (
        b'{"v":1,"done":2,"since":0.0,"due":0.0,"tail":0,"released":{}}'
    )
    old = LaneState.decode(b'{"v":1,"done":3}')  # an older writer's value: defaults
    assert (old.since, old.due, old.tail, old.released) == (0.0, 0.0, 0, {})


def test_a_released_head_with_one_copy_behind_it_held_back_one() -> None:
    released = order.release(LaneState(done=1, since=100.0, tail=3))
    assert order.released_count(released, 2) == 1


def test_a_lane_keeps_its_32_latest_released_heads_whatever_they_held_back() -> None:
    # Heads 1..40 released, each holding back fewer copies than the one before: the
    # oldest heads are forgotten, not those that held back the fewest.
    state = LaneState()
    for head in range(1, 41):
        state = order.release(msgspec.structs.replace(state, tail=82 - head))  # 80, 78...
        assert order.released_count(state, head) == 82 - 2 * head
    assert sorted(int(k) for k in state.released) == list(range(9, 41))
