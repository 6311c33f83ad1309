"""Room memory in the `sip_rooms` KV bucket: which SIP host a room's call came from.

Room-level events (`room_finished`, `egress_ended`, ...) and events of non-SIP
participants in a SIP room (the agent) carry no SIP header; the router finds their hook
through the host remembered when the call's SIP participant was routed. The bucket's TTL
forgets rooms; entries are not deleted on `room_finished` because egress events may
still follow it.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from sayna_sip.common.puback import AckedPublisher
from sayna_sip.common.topology import ROOMS_BUCKET, ROOMS_TTL

_KEY_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_LOCAL_ROOMS = 10_000  # rooms this process remembers writing, to skip repeated puts
_REFRESH_AFTER = ROOMS_TTL / 2  # rewrite long calls' entries before the TTL drops them
ROOMS_STREAM = f"KV_{ROOMS_BUCKET}"  # the stream behind the bucket
_PUT_PREFIX = f"$KV.{ROOMS_BUCKET}."  # what `KeyValue.put` publishes to
PUT_TIMEOUT = 5.0  # seconds to wait for the bucket's PubAck (then the event is retried)


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


class RoomRecord(msgspec.Struct, frozen=True):
    sip_host: str  # host parsed from the call's header
    hook: str  # host of the hook it matched then (for operators; routing re-matches)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RoomRecord)


class RoomMemory:
    """`sip_rooms` access with a bounded local record of what this process wrote."""

    def __init__(self, kv: KeyValue, puts: AckedPublisher) -> None:
        self._kv = kv
        # Writes are `KeyValue.put`'s publish, waited for with our PubAck subscription
        # (~15 µs of CPU less than nats-py's request per new room); reads stay the KV's.
        self._puts = puts
        self._written: OrderedDict[str, tuple[RoomRecord, float]] = OrderedDict()

    async def remember(self, room: str, record: RoomRecord) -> None:
        """Store room -> record unless this process wrote the same recently."""
        now = time.monotonic()
        seen = self._written.get(room)
        if seen is not None and seen[0] == record and now - seen[1] < _REFRESH_AFTER:
            return
        await self._puts.publish(
            _PUT_PREFIX + room_key(room), _encoder.encode(record), {}, PUT_TIMEOUT
        )
        self._written[room] = (record, now)
        self._written.move_to_end(room)
        if len(self._written) > _LOCAL_ROOMS:
            self._written.popitem(last=False)

    async def recall(self, room: str) -> RoomRecord | None:
        """The record for `room`, or None when unknown, expired or unreadable."""
        try:
            entry = await self._kv.get(room_key(room))
        except KeyNotFoundError:  # also raised for deleted/purged keys
            return None
        if not entry.value:
            return None
        try:
            return _decoder.decode(entry.value)
        except msgspec.DecodeError:
            return None
