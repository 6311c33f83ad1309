"""Every value an operator reads in a metric label or an error body, defined once.

The services emit only these members, and the docs tests (tests/docs) hold README.md and
docs/*.md to exactly these lists, so an alert written from the docs matches what the
program counts.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """The `error` of every `{"error","message"}` body (API answers, /readyz)."""

    # POST /livekit/webhook
    LIVEKIT_NOT_CONFIGURED = "livekit_not_configured"
    MISSING_TOKEN = "missing_token"
    INVALID_TOKEN = "invalid_token"
    HASH_MISMATCH = "hash_mismatch"
    BODY_TOO_LARGE = "body_too_large"
    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"  # event name, id or room longer than its bound
    # hooks API
    INVALID_BODY = "invalid_body"
    EMPTY_REQUEST = "empty_request"
    TOO_MANY = "too_many"
    INVALID_HOST = "invalid_host"
    DUPLICATE_HOST = "duplicate_host"
    INSECURE_URL = "insecure_url"
    INVALID_URL = "invalid_url"
    URL_CREDENTIALS = "url_credentials"
    BLOCKED_TARGET = "blocked_target"
    INVALID_SECRET = "invalid_secret"
    INVALID_EVENTS = "invalid_events"
    INVALID_RATE_LIMIT = "invalid_rate_limit"
    INVALID_ORDERING = "invalid_ordering"
    SECRETS_KEY_MISSING = "secrets_key_missing"
    RECORD_TOO_LARGE = "record_too_large"  # a KV record over the server's max_payload
    INVALID_HEADERS = "invalid_headers"  # a custom header's name or value (named)
    INVALID_ENDPOINT = "invalid_endpoint"  # an endpoint id outside [a-z0-9-]{1,32}
    DUPLICATE_ENDPOINT = "duplicate_endpoint"
    TOO_MANY_ENDPOINTS = "too_many_endpoints"  # more than SIP_MAX_ENDPOINTS per host
    DEFAULT_ENDPOINT = "default_endpoint"  # `default` goes with its host, never alone
    HOOK_NOT_FOUND = "hook_not_found"
    ENDPOINT_NOT_FOUND = "endpoint_not_found"
    CONFIG_HOOK = "config_hook"
    SIP_DISABLED = "sip_disabled"
    UNAUTHORIZED = "unauthorized"
    TOKEN_EXPIRED = "token_expired"  # a tenant token past its expiry
    TOKEN_REVOKED = "token_revoked"  # a tenant token minted before its host's last revoke
    AUTH_DISABLED = "auth_disabled"  # tenant tokens asked for with AUTH_REQUIRED off
    INVALID_TTL = "invalid_ttl"
    BUSY = "busy"
    NO_FORWARDER = "no_forwarder"  # a test send no forwarder answered
    BAD_REPLY = "bad_reply"  # a test send a forwarder answered with something unreadable
    # records API
    INVALID_QUERY = "invalid_query"
    RECORDS_UNAVAILABLE = "records_unavailable"
    NOT_ROUTED = "not_routed"  # a resend of an event the router sent to no hook
    EVENT_EXPIRED = "event_expired"  # a resend of an event past LK_EVENTS_MAX_AGE
    # any route, readiness and liveness included
    NATS_UNAVAILABLE = "nats_unavailable"
    NATS_CLOSED = "nats_closed"  # /healthz: the NATS connection was closed for good
    TOPOLOGY_MISSING = "topology_missing"
    NOT_READY = "not_ready"  # starting, stopping, or the forwarder's fetch loop is down
    EGRESS_PROXY_UNREACHABLE = "egress_proxy_unreachable"  # forwarder /readyz
    SECRETS_UNREADABLE = "secrets_unreadable"  # forwarder: hook secrets no key of ours opens
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    FORBIDDEN = "forbidden"
    CROSS_SITE = "cross_site"  # a state-changing request a browser sent for another site
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    INTERNAL_ERROR = "internal_error"


class IngressOutcome(StrEnum):
    """`outcome` of sayna_sip_ingress_webhooks_total besides the error codes below."""

    STORED = "stored"
    DUPLICATE = "duplicate"  # JetStream already had this event id
    IGNORED = "ignored"  # SIP disabled: verified, answered, not stored


# The error codes a webhook can end with; each is also an `outcome` value.
WEBHOOK_ERRORS: tuple[ErrorCode, ...] = (
    ErrorCode.LIVEKIT_NOT_CONFIGURED,
    ErrorCode.MISSING_TOKEN,
    ErrorCode.INVALID_TOKEN,
    ErrorCode.HASH_MISMATCH,
    ErrorCode.BODY_TOO_LARGE,
    ErrorCode.INVALID_JSON,
    ErrorCode.INVALID_EVENT,
    ErrorCode.NATS_UNAVAILABLE,
)


class RouterOutcome(StrEnum):
    """What the router did with one LK_EVENTS message (`outcome` of router_events)."""

    ROUTED = "routed"  # published to SIP_DELIVERIES, input acked
    UNMATCHED = "unmatched"  # SIP host found, no hook for it
    FILTERED = "filtered"  # the hook's events filter leaves this event type out
    NO_HOST = "no_host"  # SIP room, no host in the event nor in room memory: gave up
    HELD = "held"  # no host yet: kept in room memory, routed first once the host is known
    DEFERRED = "deferred"  # no host yet: nak'd briefly, the caller's join may be in flight
    NON_SIP = "non_sip"  # room name without the SIP prefix, or no room
    DISABLED = "disabled"  # SIP not configured: everything is acked unread
    MALFORMED = "malformed"  # unreadable body: terminated
    RETRY = "retry"  # NATS failed while routing: nak'd with a delay


class RequestOutcome(StrEnum):
    """`outcome` of forwarder_attempts: a request went out and this came of it."""

    DELIVERED = "delivered"  # 2xx
    STATUS = "status"  # any other HTTP status
    TIMEOUT = "timeout"
    ERROR = "error"  # connection refused/reset, TLS, protocol


class DeferReason(StrEnum):
    """`reason` of forwarder_deferred: why a message was put back to wait."""

    SCHEDULED = "scheduled"  # its retry is not due yet
    BUSY = "busy"  # its host is at FORWARDER_HOST_CONCURRENCY
    BREAKER = "breaker"  # its host's circuit breaker is open
    RATE_LIMIT = "rate_limit"  # put back due at its slot of the hook's rate_limit
    ORDER = "order"  # an earlier event of its call for its endpoint has not ended
    SECRET_UNREADABLE = "secret_unreadable"  # its hook's own secret opens with no key we have


class DeadReason(StrEnum):
    """Values of the Sayna-Dead-Reason header and `reason` of forwarder_dead_letters."""

    GONE = "gone"  # the hook answered 410
    EXHAUSTED = "retries exhausted"
    HOOK_REMOVED = "hook removed"
    BLOCKED = "blocked address"
    INVALID_URL = "invalid url"  # the hook URL cannot be requested at all
    HOOK_DISABLED = "hook disabled"  # the hook was disabled (by an operator or automatically)
    INTERNAL_ERROR = "internal error"  # a bug; the label is "internal error: <type>"

    @classmethod
    def internal(cls, exc: BaseException) -> str:
        return f"{cls.INTERNAL_ERROR}: {type(exc).__name__}"


# `reason` of records_failed: a delivery record could not be stored.
RECORD_FAIL_REASONS = ("queue_full", "nats", "timeout", "rejected")

# Metric -> label -> the values it takes (the docs tests read this; `host`, `event`,
# `status` and `method` are open-ended and not listed).
METRIC_LABELS: dict[str, dict[str, tuple[str, ...]]] = {
    "sayna_sip_ingress_webhooks_total": {
        "outcome": (*IngressOutcome, *WEBHOOK_ERRORS),
    },
    "sayna_sip_ingress_audit_records_total": {"outcome": ("stored", "failed")},
    "sayna_sip_router_events_total": {"outcome": tuple(RouterOutcome)},
    "sayna_sip_records_failed_total": {"reason": RECORD_FAIL_REASONS},
    "sayna_sip_forwarder_attempts_total": {"outcome": tuple(RequestOutcome)},
    "sayna_sip_forwarder_deferred_total": {"reason": tuple(DeferReason)},
    "sayna_sip_forwarder_dead_letters_total": {"reason": tuple(DeadReason)},
}
