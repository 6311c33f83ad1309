"""Delivery records: the versioned codec and the subjects NATS filters on."""

from __future__ import annotations

import msgspec.structs
import pytest

from sayna_sip.common import records
from sayna_sip.common.deliveries import QueryError, next_retry, parse_when, rfc3339, view
from sayna_sip.common.records import AttemptRecord, RouteRecord


def _attempt(**over: object) -> AttemptRecord:
    base = AttemptRecord(
        event_id="EV_1", host="*.example.com", attempt=1, outcome="failed", started_at=1.0
    )
    return msgspec.structs.replace(base, **over)


def test_round_trip_keeps_every_field() -> None:
    rec = _attempt(status=503, error="HTTP 503", response="busy", duration_ms=12.5)
    assert records.decode(records.encode(rec)) == rec


def test_a_record_without_version_reads_as_version_1_and_new_fields_are_ignored() -> None:
    old = b'{"kind":"route","event_id":"EV_2","outcome":"no_host","at":5.0,"later":"x"}'
    rec = records.decode(old)
    assert isinstance(rec, RouteRecord)
    assert rec.v == 1 and rec.outcome == "no_host"


def test_an_attempt_of_the_previous_release_reads_without_headers_or_retry_time() -> None:
    # Written before attempts kept their request headers and retry time.
    old = (b'{"kind":"attempt","event_id":"EV_3","host":"a.example","attempt":1,'
           b'"outcome":"failed","started_at":5.0,"status":500,"v":1}')  # fmt: skip
    rec = records.decode(old)
    assert isinstance(rec, AttemptRecord)
    assert rec.request_headers == {} and rec.retry_at == 0.0
    assert view(rec)["retry_at"] is None
    assert next_retry([rec]) is None  # no claim of a retry time it never recorded


def test_new_fields_are_left_out_when_empty_and_kept_when_set() -> None:
    assert b"request_headers" not in records.encode(_attempt())
    rec = _attempt(request_headers={"webhook-id": "EV_1"}, retry_at=7.5)
    assert records.decode(records.encode(rec)) == rec
    assert view(rec)["retry_at"] == rfc3339(7.5)


def test_next_retry_is_the_earliest_pending_copy_of_each_endpoint_and_generation() -> None:
    done = [_attempt(retry_at=10.0), _attempt(attempt=2, outcome="delivered")]
    assert next_retry(done) is None  # retried and delivered: nothing pending
    pending = [
        *done,
        _attempt(endpoint="crm", retry_at=30.0),  # another endpoint's copy, waiting
        _attempt(redrive=1, retry_at=20.0),  # a redrive's copy, waiting sooner
        _attempt(redrive=1, endpoint="ops", attempt=2, outcome="dead"),  # ended
    ]
    assert next_retry(pending) == 20.0


def test_unreadable_record_is_a_bad_record() -> None:
    with pytest.raises(records.BadRecord):
        records.decode(b'{"kind":"other"}')
    with pytest.raises(records.BadRecord):
        records.decode(b"nope")


@pytest.mark.parametrize(
    ("rec", "subject"),
    [
        (_attempt(), "sip.attempt.=2a_example_com.EV_1.failed"),
        (
            RouteRecord(event_id="EV_1", outcome="unknown_host", at=1, sip_host="a.b"),
            "sip.route.a_b.EV_1.unknown_host",
        ),
        (RouteRecord(event_id="EV 1.x", outcome="not_sip", at=1), "sip.route.-.EV=201=2ex.not_sip"),
    ],
)
def test_subject_names_kind_host_event_and_outcome(rec: records.Record, subject: str) -> None:
    assert records.subject(rec) == subject


def test_event_tokens_are_injective() -> None:
    ids = ["EV_a", "EV=5fa", "EV.a", "EV a", "ev_a", "É"]
    assert len({records.event_token(i) for i in ids}) == len(ids)


def test_filter_subject_wildcards_what_is_not_given() -> None:
    assert records.filter_subject(event_id="EV_1") == "sip.*.*.EV_1.*"
    assert records.filter_subject(kind="attempt", host="x.io") == "sip.attempt.x_io.*.*"


def test_times_in_both_forms() -> None:
    assert parse_when("1h", now=7200.0) == 3600.0
    assert parse_when("1970-01-01T01:00:00Z") == 3600.0
    assert rfc3339(3600.5) == "1970-01-01T01:00:00.500Z"
    with pytest.raises(QueryError):
        parse_when("yesterday")
    with pytest.raises(QueryError):
        parse_when("2026-01-01T00:00:00")


def test_view_shows_every_field_with_rfc3339_times() -> None:
    out = view(_attempt())
    assert out["started_at"] == "1970-01-01T00:00:01.000Z"
    assert out["status"] is None and out["kind"] == "attempt" and "v" not in out
