"""What the records API and the CLI read from their users and show them (deliveries.py,
pure): cursors, times and durations back, the RFC 3339 times of a record, a record as
shown, and when an event's next retry is due."""

from __future__ import annotations

import time

import pytest

from sayna_sip.common import deliveries
from sayna_sip.common.deliveries import QueryError, next_retry, parse_cursor, parse_when, rfc3339
from sayna_sip.common.records import AttemptRecord, RouteRecord

NOW = 1_796_119_200.0  # 2026-12-01T10:00:00Z


@pytest.mark.parametrize(
    ("cursor", "seq"), [("1", 1), ("0007", 7), ("42", 42), ("9" * 19, 10**19 - 1)]
)
def test_a_cursor_is_the_sequence_it_names(cursor: str, seq: int) -> None:
    assert parse_cursor(cursor) == seq


@pytest.mark.parametrize(
    "cursor", ["", "0", "000", "-1", "+1", "1.5", " 1", "abc", "²", "١٢", "1" * 20, "1e3"]
)
def test_a_cursor_this_api_never_returned_is_a_query_error(cursor: str) -> None:
    with pytest.raises(QueryError) as bad:
        parse_cursor(cursor)
    assert str(bad.value) == f"cursor '{cursor}' is not one this API returned"


def test_a_huge_cursor_is_not_echoed_whole() -> None:
    with pytest.raises(QueryError) as bad:
        parse_cursor("x" * 500)
    assert str(bad.value) == f"cursor '{'x' * 80}… (500 characters)' is not one this API returned"


@pytest.mark.parametrize(
    ("text", "back"),
    [("1h", 3600.0), (" 90s ", 90.0), ("1d", 86400.0), ("250ms", 0.25), ("0", 0.0), ("5", 5.0)],
)
def test_a_duration_is_that_long_before_now(text: str, back: float) -> None:
    assert parse_when(text, now=NOW) == NOW - back


def test_a_duration_counts_back_from_the_clock_by_default() -> None:
    before = time.time()
    when = parse_when("1h")
    assert before - 3600 <= when <= time.time() - 3600


@pytest.mark.parametrize(
    ("text", "stamp"),
    [
        ("2026-12-01T10:00:00Z", NOW),
        ("2026-12-01t10:00:00z", NOW),  # RFC 3339 allows either case
        (" 2026-12-01T10:00:00Z ", NOW),
        ("2026-12-01T12:00:00+02:00", NOW),
        ("2026-12-01T10:00:00.250+00:00", NOW + 0.25),
    ],
)
def test_an_rfc3339_time_is_that_moment(text: str, stamp: float) -> None:
    assert parse_when(text, now=0.0) == stamp


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-12-01T10:00:00", "'2026-12-01T10:00:00' has no time zone: add Z or an offset"),
        ("yesterday", "'yesterday' is neither an RFC 3339 time nor a duration like 1h"),
        ("", "'' is neither an RFC 3339 time nor a duration like 1h"),
        ("1" + "0" * 400 + "d", f"'{'1' + '0' * 79}… (402 characters)' is too long ago"),
    ],
)
def test_a_time_that_cannot_be_used_says_why(text: str, message: str) -> None:
    with pytest.raises(QueryError) as bad:
        parse_when(text, now=NOW)
    assert str(bad.value) == message


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (None, None),
        (0.0, None),  # a time never set
        (-1.0, None),
        (NOW, "2026-12-01T10:00:00.000Z"),
        (NOW + 0.1234, "2026-12-01T10:00:00.123Z"),
        (0.001, "1970-01-01T00:00:00.001Z"),
    ],
)
def test_times_are_shown_in_rfc3339_utc_to_the_millisecond(
    when: float | None, text: str | None
) -> None:
    assert rfc3339(when) == text


def test_an_attempt_is_shown_with_every_field_and_its_times_in_rfc3339() -> None:
    attempt = AttemptRecord(
        event_id="EV_1", host="a.io", attempt=2, outcome="failed", started_at=NOW,
        status=503, retry_at=NOW + 5, request_headers={"webhook-id": "msg_1"},
    )  # fmt: skip
    shown = deliveries.view(attempt)
    assert shown["kind"] == "attempt" and "v" not in shown
    assert shown["started_at"] == "2026-12-01T10:00:00.000Z"
    assert shown["retry_at"] == "2026-12-01T10:00:05.000Z"
    assert shown["status"] == 503 and shown["attempt"] == 2 and shown["endpoint"] == "default"
    assert shown["request_headers"] == {"webhook-id": "msg_1"}
    delivered = AttemptRecord(
        event_id="E", host="a.io", attempt=1, outcome="delivered", started_at=NOW
    )
    assert deliveries.view(delivered)["retry_at"] is None  # never due: shown as none


def test_a_route_is_shown_with_its_decision_and_arrival_in_rfc3339() -> None:
    route = RouteRecord(event_id="EV_1", outcome="matched", at=NOW, received_at=NOW - 0.5)
    shown = deliveries.view(route)
    assert shown["kind"] == "route" and "v" not in shown and "started_at" not in shown
    assert shown["at"] == "2026-12-01T10:00:00.000Z"
    assert shown["received_at"] == "2026-12-01T09:59:59.500Z"


def _try(
    n: int, outcome: str, retry_at: float = 0.0, *, endpoint: str = "default",
    redrive: int = 0, started_at: float = NOW, host: str = "a.io",
) -> AttemptRecord:  # fmt: skip
    return AttemptRecord(
        event_id="EV_1", host=host, endpoint=endpoint, attempt=n, outcome=outcome,
        started_at=started_at + n, retry_at=retry_at, redrive=redrive,
    )  # fmt: skip


def test_the_next_retry_is_the_earliest_due_of_the_copies_still_pending() -> None:
    attempts = [
        _try(1, "failed", NOW + 10),
        _try(1, "failed", NOW + 50, endpoint="backup"),
        _try(1, "proxy_error", NOW + 30, host="b.io"),  # the proxy's retries are pending too
    ]
    assert next_retry(attempts) == NOW + 10
    assert next_retry(attempts[1:]) == NOW + 30


def test_a_copy_delivered_or_dead_since_its_failure_has_no_retry_due() -> None:
    assert next_retry([_try(1, "failed", NOW + 10), _try(2, "delivered")]) is None
    # the order read does not matter: the latest try of the copy decides
    assert next_retry([_try(2, "dead"), _try(1, "failed", NOW + 10)]) is None
    assert next_retry([_try(1, "blocked", NOW + 10)]) is None
    assert next_retry([_try(1, "failed")]) is None  # no retry scheduled
    assert next_retry([]) is None


def test_a_redriven_copy_is_pending_apart_from_its_first_delivery() -> None:
    attempts = [_try(3, "dead"), _try(1, "failed", NOW + 7, redrive=1)]
    assert next_retry(attempts) == NOW + 7


def test_of_two_records_of_the_same_try_the_one_read_last_decides() -> None:
    first = AttemptRecord(event_id="E", host="a.io", attempt=1, outcome="failed",
                          started_at=NOW, retry_at=NOW + 9)  # fmt: skip
    again = AttemptRecord(event_id="E", host="a.io", attempt=1, outcome="delivered", started_at=NOW)
    assert next_retry([first, again]) is None
    assert next_retry([again, first]) == NOW + 9
    # a later try of the same number (a redelivery of the message) decides too
    later = _try(1, "failed", NOW + 20, started_at=NOW + 1)
    assert next_retry([_try(1, "delivered"), later]) == NOW + 20


def test_the_stats_windows_are_one_hour_one_day_and_seven_days() -> None:
    # design: `window=1h|24h|7d`; each is exactly that long (a 1 h window one second
    # longer counts an attempt from 3,600.5 s ago).
    assert deliveries.STATS_WINDOWS == {"1h": 3600.0, "24h": 86400.0, "7d": 604800.0}
