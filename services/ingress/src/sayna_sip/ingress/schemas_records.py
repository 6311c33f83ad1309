"""HTTP bodies of the delivery-records API (GET /sip/deliveries…, stats, dead letters,
redrive, replay, resend). Times are RFC 3339 UTC strings; the record fields are those of
`sayna_sip.common.records`, documented in docs/operations.md."""

from __future__ import annotations

from typing import Literal

import msgspec


class RouteOut(msgspec.Struct, frozen=True, tag_field="kind", tag="route"):
    """The router's decision for one event: matched a hook, or why none."""

    event_id: str
    event: str
    room: str
    outcome: str  # matched | not_sip | no_host | unknown_host | filtered | disabled | malformed
    at: str | None
    sip_host: str
    host: str  # the matched hook's host
    lk_seq: int
    received_at: str | None
    trace_id: str
    detail: str
    endpoints: list[str] = msgspec.field(default_factory=list)  # copies stored (none: default)
    # endpoint -> the copy's Sayna-Call-Seq, its place among the room's copies for it
    call_seqs: dict[str, int] = msgspec.field(default_factory=dict)


class AttemptOut(msgspec.Struct, frozen=True, tag_field="kind", tag="attempt"):
    """One delivery attempt."""

    event_id: str
    event: str
    room: str
    host: str
    url: str
    attempt: int
    outcome: str  # delivered | failed | dead | blocked
    started_at: str | None
    duration_ms: float
    status: int | None
    error: str
    reason: str
    response: str
    redrive: int
    trace_id: str
    endpoint: str = "default"  # the hook's endpoint this attempt was to
    # As sent, signatures and custom header values redacted ({}: a record from before)
    request_headers: dict[str, str] = msgspec.field(default_factory=dict)
    retry_at: str | None = None  # outcome failed/proxy_error: when the next try is due
    call_seq: int = 0  # its Sayna-Call-Seq (0 = not numbered)
    late: bool = False  # attempted after its call went on without it (released, redriven)
    released: int = 0  # its call was released past it after SIP_ORDER_HOLD_MAX: how many waited


class DeliveryOut(msgspec.Struct, frozen=True):
    event_id: str
    event: str
    room: str
    route: RouteOut | None
    attempts: list[AttemptOut]
    body: str | None = None  # the request body every attempt sent (None: gone from LK_EVENTS)
    next_retry_at: str | None = None  # the earliest retry due, when one is pending


class DeliveryPage(msgspec.Struct, frozen=True):
    """Records newest first; pass `next_cursor` as `cursor` for the next page."""

    deliveries: list[RouteOut | AttemptOut]
    next_cursor: str | None


class HookStats(msgspec.Struct, frozen=True):
    host: str
    window: str
    attempts: int
    delivered: int
    failed: int
    success_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
    last_success_at: str | None
    last_failure_at: str | None
    state: str  # enabled | disabled | removed
    truncated: bool
    endpoint: str = "default"  # the endpoint counted
    rate_limit: float | None = None  # the hook's deliveries/s limit, all forwarders together
    current_rate: float = 0.0  # attempts per second over the last RECENT_WINDOW seconds


class DeadLetterOut(msgspec.Struct, frozen=True):
    seq: int
    host: str
    event_id: str
    event: str
    room: str
    reason: str
    attempts: int
    last_status: int | None
    last_error: str
    url: str
    dead_at: str | None
    endpoint: str = "default"  # the hook's endpoint the copy was for


class DeadLetterPage(msgspec.Struct, frozen=True):
    dead_letters: list[DeadLetterOut]
    next_cursor: str | None


class RedriveIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which dead letters to deliver again: all filters given must match."""

    host: str | None = None
    since: str | None = None
    until: str | None = None
    event_ids: list[str] | None = None


class RedriveResult(msgspec.Struct, frozen=True):
    redriven: int
    skipped: int  # matched, but not redriven (already redriven by someone else)
    truncated: bool  # more matched than one call redrives: call again


class ReplayIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    since: str
    until: str | None = None


class ReplayResult(msgspec.Struct, frozen=True):
    replayed: int
    expired: int  # routed in the window, but the event is past LK_EVENTS_MAX_AGE
    truncated: bool  # more events than one call replays: call again from `next_since`
    next_since: str | None = None
    status: Literal["ok"] = "ok"


class ResendIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    endpoint: str | None = None  # one of the endpoints the event went to (absent: each)


class ResendResult(msgspec.Struct, frozen=True):
    event_id: str  # also the copies' webhook-id
    host: str
    endpoints: list[str]  # the endpoints a fresh copy was queued for
    status: Literal["ok"] = "ok"


class AuditOut(msgspec.Struct, frozen=True):
    """One audit record (see common.audit) with its position in SIP_AUDIT."""

    seq: int
    v: int
    at: str
    actor: str
    action: str
    host: str | None
    endpoint: str | None
    request_id: str | None
    via: str
    fields: list[str]
    # `number`, not `int | float`: an integer is both, and the schema's oneOf must hold one.
    values: dict[str, str | float | bool | list[str] | None]
    truncated: bool


class AuditPage(msgspec.Struct, frozen=True):
    """Audit records, newest first; pass `next_cursor` as `cursor` for the next page."""

    records: list[AuditOut]
    next_cursor: str | None
