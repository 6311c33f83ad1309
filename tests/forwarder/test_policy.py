"""Retry rules as a table: outcome x history -> ack, retry after a delay, or dead."""

from __future__ import annotations

import random

import pytest

from sayna_sip.common.contracts import DeadReason
from sayna_sip.forwarder.policy import (
    Ack,
    Dead,
    Kind,
    Result,
    Retry,
    decide,
    parse_retry_after,
    retry_delay,
)

SCHEDULE = (0.0, 5.0, 300.0)


@pytest.mark.parametrize(
    ("result", "failed_before", "expected"),
    [
        (Result(Kind.DELIVERED, 200), 0, Ack()),
        (Result(Kind.DELIVERED, 204), 2, Ack()),
        (Result(Kind.STATUS, 410), 0, Dead(DeadReason.GONE, 1)),
        (Result(Kind.BLOCKED), 0, Dead(DeadReason.BLOCKED, 0)),
        (Result(Kind.REMOVED), 2, Dead(DeadReason.HOOK_REMOVED, 2)),
        (Result(Kind.STATUS, 500), 0, "retry 5s"),
        (Result(Kind.STATUS, 302), 0, "retry 5s"),  # redirects are failures
        (Result(Kind.TIMEOUT), 2, Dead(DeadReason.EXHAUSTED, 3)),  # 3 entries = 3 tries
        (Result(Kind.ERROR), 1, "retry 300s"),
    ],
)
def test_decide(result: Result, failed_before: int, expected: object) -> None:
    got = decide(result, failed_before, SCHEDULE, random.Random(1))
    if expected == "retry 5s":
        assert isinstance(got, Retry) and got.attempt == 1 and 4 <= got.delay <= 6
    elif expected == "retry 300s":
        assert isinstance(got, Retry) and got.attempt == 2 and 240 <= got.delay <= 360
    else:
        assert got == expected


def test_default_schedule_is_eight_tries_over_about_27_6_hours() -> None:
    from sayna_sip.common.config import DEFAULT_RETRY_SCHEDULE

    rng, failed, waited = random.Random(5), 0, 0.0
    while isinstance(
        got := decide(Result(Kind.STATUS, 500), failed, DEFAULT_RETRY_SCHEDULE, rng), Retry
    ):
        failed, waited = got.attempt, waited + got.delay
    assert got == Dead(DeadReason.EXHAUSTED, 8)
    assert 0.8 * 99305 <= waited <= 1.2 * 99305  # 5s+5m+30m+2h+5h+10h+10h


def test_schedule_delays_are_jittered_within_20_percent() -> None:
    rng = random.Random(3)
    delays = [retry_delay(10.0, None, rng) for _ in range(500)]
    assert 8.0 <= min(delays) < 8.5 and 11.5 < max(delays) <= 12.0


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(1.0, 10.0), (15.0, 15.0), (100.0, 20.0), (0.0, 10.0)]
)
def test_retry_after_is_clamped_to_1x_2x_of_schedule(retry_after: float, expected: float) -> None:
    assert retry_delay(10.0, retry_after, random.Random(1)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 40.0),  # now = 60
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),
        ("Thu, 01 Jan 1970 01:01:40 +0100", 40.0),  # the sender's zone counts
        ("Thu, 01 Jan 1970 00:01:40 -0000", 40.0),  # UTC, zone unstated (RFC 5322)
        ("Wed, 31 Dec 1969 23:59:00 GMT", 0.0),  # any past date: retry on the schedule
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=60.0) == expected


@pytest.mark.parametrize(
    ("kind", "sent"),
    [
        (Kind.DELIVERED, True),
        (Kind.STATUS, True),
        (Kind.TIMEOUT, True),
        (Kind.ERROR, True),
        (Kind.BLOCKED, False),
        (Kind.REMOVED, False),
        (Kind.INVALID_URL, False),
        (Kind.DISABLED, False),
    ],
)
def test_only_requests_that_went_out_count_for_the_breaker_and_schedule(
    kind: Kind, sent: bool
) -> None:
    assert Result(kind).was_attempt is sent


def test_sent_attempts_are_counted_under_the_documented_outcome_labels() -> None:
    # `sayna_sip_forwarder_attempts_total{outcome}` (docs/operations.md): dashboards and
    # alerts select on these strings, so they are part of the contract.
    assert {k.value for k in Kind if Result(k).was_attempt} == {
        "delivered",
        "status",
        "timeout",
        "error",
    }


def test_an_attempt_without_a_response_records_no_status_response_or_error() -> None:
    # What an attempt record shows for a timeout before the client adds its error text:
    # `status: null`, no response excerpt, no URL, no Retry-After, an empty error.
    got = Result(Kind.TIMEOUT)
    assert (got.status, got.error, got.retry_after, got.url, got.excerpt) == (
        None,
        "",
        None,
        "",
        "",
    )
