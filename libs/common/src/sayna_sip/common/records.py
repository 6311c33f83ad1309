"""Delivery records in SIP_ATTEMPTS: the router's decision per event and every attempt.

One JSON message per record, versioned (`v`; a record without one is version 1), on a
subject that lets NATS filter by kind, hook host, event id and outcome without reading
payloads:

    sip.route.<host token>.<event token>.<outcome>     one per routing decision
    sip.attempt.<host token>.<event token>.<outcome>   one per delivery attempt

`<host token>` is `host_token(hook host)`, or `-` when there is no host (not a SIP
room, no host in the event). `<event token>` is the event id with every character
outside `[A-Za-z0-9_-]` written as `=xx` (hex of its UTF-8 bytes): injective, so a
lookup by event id never sees another event's records.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from sayna_sip.common.hook import DEFAULT_ENDPOINT
from sayna_sip.common.hosts import host_token

VERSION = 1
STREAM_SUBJECTS = ("sip.route.>", "sip.attempt.>")
NO_HOST = "-"  # host token of a record without a host (never a valid host's token)


class RouteOutcome:
    """Why the router did what it did with one event (`outcome` of a route record)."""

    MATCHED = "matched"  # matched a hook; a delivery was stored
    NOT_SIP = "not_sip"  # the room is not a SIP room
    NO_HOST = "no_host"  # SIP room, but no host in the event nor in room memory
    UNKNOWN_HOST = "unknown_host"  # a host, but no hook matches it
    FILTERED = "filtered"  # the hook's event filter excludes this event type
    DISABLED = "disabled"  # the hook is disabled: dead-lettered with reason `hook disabled`
    MALFORMED = "malformed"  # the body could not be read


class AttemptOutcome:
    """What one attempt came to (`outcome` of an attempt record)."""

    DELIVERED = "delivered"  # 2xx
    FAILED = "failed"  # failed; a retry is scheduled
    DEAD = "dead"  # failed, and dead-lettered (410, schedule spent, hook removed, ...)
    BLOCKED = "blocked"  # target refused by the SSRF policy; nothing was sent
    PROXY_ERROR = "proxy_error"  # the egress proxy failed; retried, not the endpoint's


class RouteRecord(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="kind", tag="route"):
    kind: ClassVar[str] = "route"
    event_id: str
    event: str = ""
    room: str = ""
    outcome: str
    at: float  # unix seconds of the decision
    sip_host: str = ""  # host parsed from the call's To header (or room memory)
    host: str = ""  # host of the matched hook, when one matched
    endpoints: tuple[str, ...] = ()  # its endpoints a copy was stored for (absent: default)
    call_seqs: dict[str, int] = {}  # endpoint -> the copy's Sayna-Call-Seq (absent: none)
    lk_seq: int = 0  # LK_EVENTS sequence of the event (replay reads the body there)
    received_at: float = 0.0  # when the ingress stored the event
    trace_id: str = ""
    detail: str = ""
    v: int = VERSION


class AttemptRecord(
    msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="kind", tag="attempt"
):
    kind: ClassVar[str] = "attempt"
    event_id: str
    event: str = ""
    room: str = ""
    host: str  # host of the hook delivered to
    endpoint: str = DEFAULT_ENDPOINT  # id of its endpoint
    url: str = ""
    attempt: int  # 1 for the first try
    outcome: str
    started_at: float  # unix seconds
    duration_ms: float = 0.0
    status: int | None = None
    error: str = ""
    reason: str = ""  # the dead-letter reason, when this attempt ended the delivery
    response: str = ""  # the first SIP_ATTEMPT_BODY_BYTES of the response body
    redrive: int = 0  # redrive generation (0 = the original delivery)
    trace_id: str = ""
    rate_limited_ms: float = 0.0  # waited for a slot of the hook's rate_limit before this
    # The request's headers, signatures and custom header values redacted (absent in
    # records of releases before it).
    request_headers: dict[str, str] = msgspec.field(default_factory=dict)
    retry_at: float = 0.0  # outcome `failed`/`proxy_error`: when the next try is due
    call_seq: int = 0  # its Sayna-Call-Seq: place among its call's events (0 = not numbered)
    late: bool = False  # attempted after its call's lane moved past it (released, redriven)
    released: int = 0  # a head its lane released after SIP_ORDER_HOLD_MAX: how many waited
    v: int = VERSION


Record = RouteRecord | AttemptRecord

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RouteRecord | AttemptRecord)


class BadRecord(ValueError):
    """A SIP_ATTEMPTS message that is not a record this release can read."""


def encode(record: Record) -> bytes:
    return _encoder.encode(record)


def decode(data: bytes) -> Record:
    """A record from its JSON; fields added by a later version are ignored."""
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise BadRecord(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BadRecord(f"not JSON: {exc}") from None


_EVENT_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def event_token(event_id: str) -> str:
    """Injective subject token of an event id (see the module docstring)."""
    if event_id and all(ch in _EVENT_SAFE for ch in event_id):
        return event_id
    out: list[str] = []
    for ch in event_id:
        out.append(ch if ch in _EVENT_SAFE else "".join(f"={b:02x}" for b in ch.encode()))
    return "".join(out) or "="


def _host(host: str) -> str:
    return host_token(host) if host else NO_HOST


def subject(record: Record) -> str:
    host = record.host or (record.sip_host if isinstance(record, RouteRecord) else "")
    return f"sip.{record.kind}.{_host(host)}.{event_token(record.event_id)}.{record.outcome}"


def filter_subject(
    kind: str | None = None,
    host: str | None = None,
    event_id: str | None = None,
    outcome: str | None = None,
) -> str:
    """The NATS filter selecting records by any of kind, host, event id and outcome."""
    parts = [
        kind or "*",
        _host(host) if host is not None else "*",
        event_token(event_id) if event_id is not None else "*",
        outcome or "*",
    ]
    return "sip." + ".".join(parts)
