"""The part of a LiveKit webhook body the router reads, decoded with msgspec.

Only `event`, `id`, `room.name` and `participant.attributes` are declared; every other
field is skipped unparsed. The body itself is forwarded untouched, never re-encoded.
"""

from __future__ import annotations

import msgspec

from sayna_sip.router.sipuri import parse_sip_host

# Attributes LiveKit sets from the call's SIP headers (the trunk must include headers).
# X-To-IP first: SIP proxies in multi-tenant setups put the tenant's address there.
HOST_ATTRIBUTES = ("sip.h.x-to-ip", "sip.h.to")


class Malformed(ValueError):
    """The body is not a LiveKit event the router can read."""


class _Room(msgspec.Struct):
    name: str = ""


class _Participant(msgspec.Struct):
    attributes: dict[str, str] = {}


class LkEvent(msgspec.Struct):
    event: str = ""
    id: str = ""
    room: _Room | None = None
    participant: _Participant | None = None

    @property
    def room_name(self) -> str:
        return self.room.name if self.room is not None else ""

    def host_attribute(self) -> str | None:
        """The first non-empty SIP host attribute of the participant, if any."""
        if self.participant is None:
            return None
        for name in HOST_ATTRIBUTES:
            value = self.participant.attributes.get(name, "").strip()
            if value:
                return value
        return None

    def sip_host(self) -> str | None:
        """Host of the participant's call, or None (no SIP participant, or no host in it).

        The first attribute present decides: a garbled X-To-IP routes nowhere rather than
        falling back to the To header, whose host may belong to a shared proxy.
        """
        value = self.host_attribute()
        return None if value is None else parse_sip_host(value)


_decoder = msgspec.json.Decoder(LkEvent)


def decode_event(body: bytes) -> LkEvent:
    """Decode `body`, raising Malformed for non-JSON, non-objects and wrong field types."""
    try:
        event = _decoder.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise Malformed(str(exc)) from None
    if not event.event:
        raise Malformed("no event type")
    return event
