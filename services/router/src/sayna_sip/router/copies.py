"""What routing stores: the copies of one event (one per endpoint) and what it learned
for the event's route record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from sayna_sip.common import tracing
from sayna_sip.common.contracts import Header
from sayna_sip.common.delivery import Delivery

# publish(body, subject, headers) -> stored in SIP_DELIVERIES (True: as a duplicate)
Publish = Callable[[bytes, str, dict[str, str]], Awaitable[bool]]


class Oversized(Exception):
    """The delivery would exceed the server's max_payload (which would close the
    connection for good): the event is terminated instead."""


@dataclass
class Note:
    """What routing learned about one event, for its route record."""

    event_id: str
    event: str = ""
    room: str = ""
    sip_host: str = ""
    hook: str = ""
    endpoints: tuple[str, ...] = ()  # the endpoints a copy was stored for
    call_seqs: dict[str, int] = field(default_factory=dict)  # endpoint -> Sayna-Call-Seq
    detail: str = ""
    duplicate: bool = False  # every copy was in SIP_DELIVERIES already (a redelivery)


@dataclass(frozen=True)
class Stored:
    """One LK_EVENTS message as routing reads it: this event, or a held one read back."""

    seq: int
    event_id: str
    event: str
    room: str
    body: bytes
    headers: Mapping[str, str]

    @property
    def received_at(self) -> str | None:
        return self.headers.get(Header.RECEIVED_AT)


def copy_headers(
    tracer: tracing.Tracer,
    stored: Stored,
    hook: str,
    sip_host: str,
    endpoint: str,
    call_seq: int = 0,
) -> dict[str, str]:
    """The headers of the copy of `stored` for one endpoint, with the routing span's
    traceparent (carried by every copy)."""
    delivery = Delivery.first(
        event_id=stored.event_id,
        event=stored.event,
        room=stored.room,
        hook=hook,
        sip_host=sip_host,
        received_at=stored.received_at,
        endpoint=endpoint,
        call_seq=call_seq,
    )
    out = delivery.to_headers()
    tracer.inject(out)
    return out
