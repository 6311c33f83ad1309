"""Retry rules as data: what one attempt's result means for the message.

`decide()` is pure: 2xx delivered, 410 dead at once, anything else retried on the
schedule with ±20% jitter, `Retry-After` honoured within 1x-2x of the scheduled delay,
and dead once the schedule is spent. The schedule has one entry per try: the delay of
the first try from receipt (normally `0s`, immediately), then of each retry from the
previous failure. `0s,5s,1m` means three tries: at once, 5 s later, 1 min after that;
the default `0s,5s,5m,30m,2h,5h,10h,10h` is Svix's eight tries over about 27.6 h.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import Enum

from sayna_sip.common.labels import DeadReason, RequestOutcome

JITTER = 0.2


class Kind(Enum):
    """What happened on one attempt; the first four are requests that went out, and their
    values are the `outcome` label of forwarder_attempts."""

    DELIVERED = RequestOutcome.DELIVERED.value  # 2xx
    STATUS = RequestOutcome.STATUS.value  # any other HTTP status
    TIMEOUT = RequestOutcome.TIMEOUT.value
    ERROR = RequestOutcome.ERROR.value  # connection refused/reset, TLS, protocol
    BLOCKED = "blocked"  # target address refused by the SSRF policy; nothing was sent
    REMOVED = "removed"  # the hook no longer exists
    INVALID_URL = "invalid_url"  # the hook URL cannot be requested; nothing was sent
    DISABLED = "disabled"  # the hook is disabled; nothing was sent
    PROXY_ERROR = "proxy_error"  # the egress proxy failed (ours, not the endpoint's)
    UNSEALED = "unsealed"  # its own secret opens with no key we have: our fault, nothing sent


@dataclass(frozen=True)
class Result:
    kind: Kind
    status: int | None = None
    error: str = ""
    retry_after: float | None = None  # seconds, from the response
    url: str = ""
    excerpt: str = ""  # the start of the response body, for records and test sends
    request_headers: tuple[tuple[str, str], ...] = ()  # as sent, redacted (signing.shown)

    @property
    def was_attempt(self) -> bool:
        """True when a request reached the endpoint (it counts for the breaker, the
        endpoint's failure state and the schedule)."""
        return self.kind not in _NOT_ATTEMPTS


_NOT_ATTEMPTS = frozenset(
    (Kind.BLOCKED, Kind.REMOVED, Kind.INVALID_URL, Kind.DISABLED, Kind.PROXY_ERROR, Kind.UNSEALED)
)


@dataclass(frozen=True)
class Ack:
    """Delivered: acknowledge."""


@dataclass(frozen=True)
class Retry:
    delay: float  # seconds until the next try
    attempt: int  # failed attempts after this one
    spent: bool = True  # False: the failure was ours (proxy, key), the attempt did not count


@dataclass(frozen=True)
class Dead:
    reason: str
    attempts: int  # attempts made


Decision = Ack | Retry | Dead

UNSEALED_WAIT = 30.0  # seconds between tries while a hook's secret cannot be opened


def decide(
    result: Result,
    failed_before: int,
    schedule: tuple[float, ...],
    rng: random.Random,
    unsealed_wait: float = UNSEALED_WAIT,
) -> Decision:
    """The fate of a message whose `failed_before` earlier attempts failed."""
    if result.kind is Kind.DELIVERED:
        return Ack()
    if result.kind is Kind.UNSEALED:  # ours until the operator sets the key: never dead for it
        return Retry(unsealed_wait, failed_before, spent=False)
    if result.kind is Kind.BLOCKED:
        return Dead(DeadReason.BLOCKED, failed_before)
    if result.kind is Kind.REMOVED:
        return Dead(DeadReason.HOOK_REMOVED, failed_before)
    if result.kind is Kind.DISABLED:  # redrive after enabling recovers it
        return Dead(DeadReason.HOOK_DISABLED, failed_before)
    if result.kind is Kind.INVALID_URL:  # permanent: retrying cannot make it valid
        return Dead(DeadReason.INVALID_URL, failed_before)
    if result.kind is Kind.PROXY_ERROR:  # ours: on the proxy's backoff, no try spent
        return Retry(result.retry_after or 1.0, failed_before, spent=False)
    failed = failed_before + 1
    if result.status == 410:
        return Dead(DeadReason.GONE, failed)
    if failed >= len(schedule):
        return Dead(DeadReason.EXHAUSTED, failed)
    return Retry(retry_delay(schedule[failed], result.retry_after, rng), failed)


def retry_delay(scheduled: float, retry_after: float | None, rng: random.Random) -> float:
    """Jittered scheduled delay, or the server's Retry-After clamped to [1x, 2x] of it."""
    if retry_after is not None:
        return min(max(retry_after, scheduled), 2 * scheduled)
    return scheduled * rng.uniform(1 - JITTER, 1 + JITTER)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # `-0000`: UTC, with no claim about the sender's zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)  # a date in the past: retry on the schedule
