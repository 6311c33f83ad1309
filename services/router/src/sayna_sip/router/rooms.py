"""Room memory in the `sip_rooms` KV bucket: a SIP call's host, its Call-Seq counters and
the events that came before its host was known.

Room-level events (`room_finished`, `egress_ended`, ...) and events of non-SIP
participants in a SIP room (the agent) carry no SIP header; the router finds their hook
through the host remembered when the call's SIP participant was routed. The record also
holds, per (hook, endpoint), the last `Sayna-Call-Seq` given in the room, the events
held until the host is known, and the numbers of the last event routed (so a redelivered
event gets the same ones). Every change is a compare-and-set on the entry's revision;
the revision this process wrote last is cached, so a room routed by one router costs
no read per event. The bucket's TTL forgets rooms; entries are not deleted on
`room_finished` because egress events may still follow it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import msgspec
import nats.js.errors
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from sayna_sip.common.puback import AckedPublisher
from sayna_sip.common.topology import ROOMS_BUCKET

_KEY_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_LOCAL_ROOMS = 10_000  # rooms whose last revision this process remembers
ROOMS_STREAM = f"KV_{ROOMS_BUCKET}"  # the stream behind the bucket
_PUT_PREFIX = f"$KV.{ROOMS_BUCKET}."  # what `KeyValue.put` publishes to
PUT_TIMEOUT = 5.0  # seconds to wait for the bucket's PubAck (then the event is retried)
_EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"
_WRONG_LAST_SEQUENCE = 10071  # JetStream's error code: someone else wrote the entry


def room_key(room: str) -> str:
    """Injective KV key for a room name: safe ASCII kept, every other UTF-8 byte as `=XX`.

    `=` itself is escaped, so decoding is unambiguous; case is kept (room names are
    case-sensitive in LiveKit, unlike hosts).
    """
    out: list[str] = []
    for ch in room:
        if ch in _KEY_SAFE:
            out.append(ch)
        else:
            out.extend(f"={b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


class Held(msgspec.Struct, frozen=True, array_like=True):
    """An event stored before the room's host was known, routed when it is."""

    seq: int  # its LK_EVENTS sequence (read back from there)
    event_id: str
    event: str


class Numbered(msgspec.Struct, frozen=True, array_like=True):
    """The Call-Seq each lane (`hook#endpoint`) got for one event."""

    seq: int  # the event's LK_EVENTS sequence
    numbers: dict[str, int]


class RoomRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """The previous release wrote `{sip_host, hook}` only: the other fields default."""

    sip_host: str = ""  # host parsed from the call's header; "" = not known yet
    hook: str = ""  # host of the hook it matched then (for operators; routing re-matches)
    call_seq: dict[str, int] = {}  # lane -> the last Call-Seq given in this room
    held: tuple[Held, ...] = ()  # events waiting for the host, in LK_EVENTS order
    last: tuple[Numbered, ...] = ()  # the last routing: held events first, then the event


@dataclass(frozen=True)
class RoomState:
    record: RoomRecord | None  # None: no entry (or unreadable)
    revision: int  # of the entry; 0 = none


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RoomRecord)


def lane(hook: str, endpoint: str) -> str:
    """A Call-Seq counter's name: hook hosts never contain `#`."""
    return f"{hook}#{endpoint}"


class RoomMemory:
    """`sip_rooms` access: reads, compare-and-set writes, the last revision per room."""

    def __init__(self, kv: KeyValue, puts: AckedPublisher) -> None:
        self._kv = kv
        # Writes are `KeyValue.update`'s publish, waited for with our PubAck subscription
        # (~15 µs of CPU less than nats-py's request per write); reads stay the KV's.
        self._puts = puts
        self._known: OrderedDict[str, RoomState] = OrderedDict()

    async def load(self, room: str, fresh: bool = False) -> RoomState:
        """The room's record: the one this process wrote last unless `fresh`."""
        if not fresh:
            known = self._known.get(room)
            if known is not None:
                return known
        try:
            entry = await self._kv.get(room_key(room))
        except KeyNotFoundError as exc:  # also raised for deleted/purged keys
            # A deleted key's last sequence is its marker's: a write expecting 0 would
            # conflict every time and the room's events be retried for ever.
            marker = getattr(exc, "entry", None)
            return RoomState(None, (marker.revision or 0) if marker is not None else 0)
        record = None
        if entry.value:
            try:
                record = _decoder.decode(entry.value)
            except msgspec.DecodeError:
                record = None
        return RoomState(record, entry.revision or 0)

    async def save(self, room: str, base: RoomState, record: RoomRecord) -> RoomState | None:
        """Write `record` if the entry is still at `base`'s revision; None if another
        writer came first (reload with `fresh` and decide again)."""
        headers = {_EXPECTED_LAST: str(base.revision)}
        try:
            revision, _ = await self._puts.store(
                _PUT_PREFIX + room_key(room), _encoder.encode(record), headers, PUT_TIMEOUT
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code != _WRONG_LAST_SEQUENCE:
                raise
            self._known.pop(room, None)
            return None
        state = RoomState(record, revision)
        self._known[room] = state
        self._known.move_to_end(room)
        if len(self._known) > _LOCAL_ROOMS:
            self._known.popitem(last=False)
        return state

    async def recall(self, room: str) -> RoomRecord | None:
        """The record for `room` as stored, or None when unknown, expired or unreadable."""
        return (await self.load(room, fresh=True)).record
