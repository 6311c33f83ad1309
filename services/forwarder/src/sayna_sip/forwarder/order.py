"""Ordered delivery per call: the state of one lane and its verbs, pure (clock passed in).

A lane is (hook, endpoint, room). The router numbers each copy of a lane
(`Sayna-Call-Seq` 1, 2, 3... without gaps); a copy is attempted only when every earlier
one of its lane has ended: delivered, dead-lettered, or released. `done` is the highest
seq such that all seqs up to it ended, so copy `done + 1` is the head: the only one that
may go. A failing head keeps its retry schedule and stays the head (its retry copy has
the same seq); when it has held later copies back for SIP_ORDER_HOLD_MAX, the lane is
released past it (`done` moves on, the head is remembered in `released` with how many
waited) and the head, whenever it comes, goes at once as a late one.

The value lives in KV `sip_lanes` (order_lanes.py), versioned by `v`, shared by every
forwarder; these functions say what a lane becomes, never how it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import msgspec

VERSION = 1
RELEASED_KEPT = 32  # released heads remembered per lane (each until it ends)


class LaneState(msgspec.Struct, kw_only=True):
    """A lane as stored (every field written, `v` first). Absent fields read as their
    defaults, a missing key as a new lane; fields a later version adds are ignored."""

    v: int = VERSION
    done: int = 0  # every copy with seq <= done has ended (or was released)
    since: float = 0.0  # unix s: the head began holding later copies back (0 = nothing held)
    due: float = 0.0  # unix s: the failing head's next attempt (0 = in flight or unknown)
    tail: int = 0  # highest seq known to have waited behind the head
    released: dict[str, int] = msgspec.field(default_factory=dict)  # seq -> how many waited

    @property
    def head(self) -> int:
        return self.done + 1

    def encode(self) -> bytes:
        return _encoder.encode(self)

    @classmethod
    def decode(cls, data: bytes | None) -> LaneState:
        return _decoder.decode(data) if data else cls()


class Turn(Enum):
    GO = "go"  # its turn: every earlier copy ended
    LATE = "late"  # its lane moved past it (released head, redriven, a duplicate): go now
    WAIT = "wait"  # an earlier copy has not ended


@dataclass(frozen=True)
class Order:
    """What the lane said of one copy, carried to its attempt record."""

    seq: int
    late: bool = False
    released: int = 0  # it was a released head: how many copies it had held back


def turn(state: LaneState, seq: int) -> Turn:
    if seq == state.head:
        return Turn.GO
    return Turn.LATE if seq < state.head else Turn.WAIT


def hold_over(state: LaneState, now: float, hold_max: float) -> bool:
    """The head has held later copies back for hold_max: release them."""
    return bool(state.since) and now - state.since >= hold_max


def hold_deadline(state: LaneState, now: float, hold_max: float) -> float:
    """When the current head's hold ends (from now, if nothing waited yet)."""
    return (state.since or now) + hold_max


def advance(state: LaneState, seq: int) -> LaneState | None:
    """Copy `seq` ended; None when that changes nothing (a late one that was not released)."""
    released = dict(state.released)
    count = released.pop(str(seq), None)
    if seq == state.head:
        return msgspec.structs.replace(state, done=seq, since=0.0, due=0.0, released=released)
    if count is not None:
        return msgspec.structs.replace(state, released=released)
    return None


def failed(state: LaneState, seq: int, due: float) -> LaneState | None:
    """The head failed and is due again at `due`: waiters go back to JetStream until then."""
    if seq != state.head or state.due == due:
        return None
    return msgspec.structs.replace(state, due=due)


def waiting(state: LaneState, seq: int, now: float) -> LaneState | None:
    """Copy `seq` waits behind the head: start the hold clock, remember how far it reaches."""
    if state.since and state.tail >= seq:
        return None
    return msgspec.structs.replace(state, since=state.since or now, tail=max(state.tail, seq))


def release(state: LaneState) -> LaneState:
    """Move past the head that held the rest too long; it keeps its schedule, and the
    count of copies behind it is kept until it ends (its record shows it)."""
    head = state.head
    released = {**state.released, str(head): max(state.tail - head, 1)}
    if len(released) > RELEASED_KEPT:  # the oldest that never came back are forgotten
        released = dict(sorted(released.items(), key=lambda kv: int(kv[0]))[-RELEASED_KEPT:])
    return msgspec.structs.replace(state, done=head, since=0.0, due=0.0, released=released)


def released_count(state: LaneState, seq: int) -> int:
    return state.released.get(str(seq), 0)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(LaneState)
