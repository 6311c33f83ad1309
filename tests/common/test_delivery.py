"""The Delivery envelope: the copies the forwarder and the dlq publish (what they carry,
their dedupe ids), and messages exactly as the release before `Sayna-Version` wrote them."""

from __future__ import annotations

import pytest

from sayna_sip.common.contracts import Header
from sayna_sip.common.delivery import BadEnvelope, Delivery

parse = Delivery.from_headers


def retry_headers(d: Delivery, attempt: int, not_before: float) -> dict[str, str]:
    return d.retry_headers(attempt, not_before)


def redrive_headers(dead: dict[str, str]) -> dict[str, str]:
    return parse(dead).redrive_headers()


ORIGINAL = {
    Header.MSG_ID: "EV_1",
    Header.EVENT_ID: "EV_1",
    Header.EVENT: "participant_joined",
    Header.ROOM: "sip-room",
    Header.RECEIVED_AT: "1700000000.5",
    Header.HOOK: "*.Example.com",
    Header.SIP_HOST: "a.example.com",
}


def test_parse_first_delivery() -> None:
    d = parse(ORIGINAL)
    assert (d.event_id, d.hook, d.attempt, d.not_before, d.generation) == (
        "EV_1",
        "*.example.com",
        0,
        0.0,
        0,
    )
    assert d.received_at == 1700000000.5 and d.event == "participant_joined"


@pytest.mark.parametrize(
    "headers",
    [{}, {Header.EVENT_ID: "EV"}, {**ORIGINAL, Header.ATTEMPT: "x"}],
)
def test_parse_rejects_what_cannot_be_delivered(headers: dict[str, str]) -> None:
    with pytest.raises(BadEnvelope):
        parse(headers)


def test_retry_copy_counts_the_attempt_and_has_a_stable_dedupe_id() -> None:
    out = retry_headers(parse(ORIGINAL), 2, 1700000010.0)
    assert parse(out).attempt == 2 and parse(out).not_before == 1700000010.0
    assert out[Header.EVENT_ID] == "EV_1" and out[Header.SIP_HOST] == "a.example.com"
    # The same retry published twice (a forwarder dying before its ack) is stored once;
    # every other copy gets its own id, so no retry is dropped as a duplicate.
    assert retry_headers(parse(ORIGINAL), 2, 1.0)[Header.MSG_ID] == out[Header.MSG_ID]
    other_hook = parse({**ORIGINAL, Header.HOOK: "b.example.com"})
    ids = {
        out[Header.MSG_ID],
        ORIGINAL[Header.MSG_ID],
        retry_headers(parse(ORIGINAL), 3, 1.0)[Header.MSG_ID],
        retry_headers(other_hook, 2, 1.0)[Header.MSG_ID],
        retry_headers(parse({**ORIGINAL, Header.MSG_ID: "EV_2", Header.EVENT_ID: "EV_2"}), 2, 1)[
            Header.MSG_ID
        ],
    }
    assert len(ids) == 5


def test_wait_copies_keep_the_attempt_and_each_get_their_own_dedupe_id() -> None:
    # A copy put back without spending an attempt (the egress proxy was down) must not
    # reuse the id of the previous copy of the same attempt: the stream would drop it as
    # a duplicate and the event would be lost once the original is acked.
    d = parse({**ORIGINAL, Header.ATTEMPT: "2"})
    first = d.wait_headers(10.0)
    second = parse(first).wait_headers(20.0)
    assert parse(first).attempt == parse(second).attempt == 2
    assert (parse(first).waits, parse(second).waits) == (1, 2)
    ids = {ORIGINAL[Header.MSG_ID], first[Header.MSG_ID], second[Header.MSG_ID]}
    ids |= {d.retry_headers(2, 0)[Header.MSG_ID]}
    assert len(ids) == 4
    assert first[Header.MSG_ID] == d.wait_headers(99.0)[Header.MSG_ID]  # one copy, once
    # The next real attempt starts counting waits again, with an id of its own.
    after = parse(second).retry_headers(3, 30.0)
    assert Header.WAITS not in after and parse(after).waits == 0
    assert after[Header.MSG_ID] not in ids


def test_dead_letter_then_redrive_resets_attempts_and_gets_fresh_ids() -> None:
    d = parse({**ORIGINAL, Header.ATTEMPT: "3", Header.NOT_BEFORE: "5"})
    dead = d.dead_headers(
        reason="retries exhausted",
        attempts=4,
        last_status=503,
        last_error="HTTP 503\r\nInjected: yes",
        hook_url="https://h.example.com/x",
        dead_at=1.0,
    )
    assert dead[Header.LAST_ERROR] == "HTTP 503 Injected: yes"
    assert dead[Header.DEAD_REASON] == "retries exhausted" and dead[Header.ATTEMPT] == "4"
    assert Header.NOT_BEFORE not in dead
    again = redrive_headers(dead)
    assert Header.ATTEMPT not in again and Header.DEAD_REASON not in again
    assert again[Header.REDRIVE] == "1" and again[Header.EVENT_ID] == "EV_1"
    assert redrive_headers(dead)[Header.MSG_ID] == again[Header.MSG_ID]  # one redrive, once
    first_life = {d.event_id, retry_headers(d, 2, 0)[Header.MSG_ID], dead[Header.MSG_ID]}
    assert again[Header.MSG_ID] not in first_life
    # retries after a redrive never collide with the first life's ids
    assert retry_headers(parse(again), 2, 0)[Header.MSG_ID] not in first_life


# Exactly what the router of the release before `Sayna-Version` published, and what its
# forwarder wrote on a retry copy: both must still deliver, as version 1.
PREVIOUS_FIRST_COPY = {
    "Nats-Msg-Id": "EV_old",
    "Sayna-Event-Id": "EV_old",
    "Sayna-Event": "participant_joined",
    "Sayna-Room": "sip-old",
    "Sayna-Hook": "*.example.com",
    "Sayna-Sip-Host": "a.example.com",
    "Sayna-Received-At": "1764630000.123456",
}
PREVIOUS_RETRY_COPY = {
    **PREVIOUS_FIRST_COPY,
    "Nats-Msg-Id": "EV_old:=2a_example_com:g0:a2",
    "Sayna-Attempt": "2",
    "Sayna-Not-Before": "1764630300.000",
}


def test_a_message_of_the_previous_release_reads_as_version_1() -> None:
    first = Delivery.from_headers(PREVIOUS_FIRST_COPY)
    assert (first.version, first.event_id, first.hook, first.attempt) == (
        1,
        "EV_old",
        "*.example.com",
        0,
    )
    assert first.received_at == 1764630000.123456 and first.room == "sip-old"
    retry = Delivery.from_headers(PREVIOUS_RETRY_COPY)
    assert (retry.version, retry.attempt, retry.not_before) == (1, 2, 1764630300.0)
    assert retry.retry_headers(3, 0)[Header.MSG_ID] == "EV_old:=2a_example_com:g0:a3"


def test_the_first_copy_writes_the_previous_headers_plus_the_version() -> None:
    d = Delivery.first(
        event_id="EV_old",
        event="participant_joined",
        room="sip-old",
        hook="*.example.com",
        sip_host="a.example.com",
        received_at="1764630000.123456",
    )
    assert d.to_headers() == {**PREVIOUS_FIRST_COPY, Header.VERSION: "1"}
    assert Delivery.from_headers(d.to_headers()) == d


def test_header_values_never_carry_line_breaks() -> None:
    d = Delivery.first(
        event_id="EV\r\n1", event="e", room="sip-a\nX: 1", hook="h.com", sip_host="h.com",
        received_at=None,
    )  # fmt: skip
    assert all("\r" not in v and "\n" not in v for v in d.to_headers().values())
    assert Header.RECEIVED_AT not in d.to_headers()


# SIP_DELIVERIES and SIP_DEAD messages exactly as the release before endpoints wrote them:
# no Sayna-Endpoint header. They are the `default` endpoint's, with the same dedupe ids.
PREVIOUS_DELIVERY = {
    "Nats-Msg-Id": "EV_9", "Sayna-Event-Id": "EV_9", "Sayna-Event": "participant_joined",
    "Sayna-Room": "sip-room", "Sayna-Hook": "a.example.com", "Sayna-Sip-Host": "a.example.com",
    "Sayna-Version": "1",
}  # fmt: skip
PREVIOUS_DEAD = {
    **PREVIOUS_DELIVERY, "Nats-Msg-Id": "EV_9:a_example_com:g0:dead",
    "Sayna-Dead-Reason": "hook disabled", "Sayna-Dead-At": "1700000000.000",
    "Sayna-Attempt": "1", "Sayna-Last-Status": "", "Sayna-Last-Error": "",
}  # fmt: skip


def test_a_delivery_of_the_previous_release_is_the_default_endpoints() -> None:
    for headers in (PREVIOUS_DELIVERY, PREVIOUS_DEAD):
        d = parse(headers)
        assert (d.endpoint, d.lane) == ("default", "a.example.com")
    assert parse(PREVIOUS_DELIVERY).retry_headers(1, 5.0)[Header.MSG_ID] == (
        "EV_9:a_example_com:g0:a1"
    )
    redriven = parse(PREVIOUS_DEAD).redrive_headers()
    assert Header.ENDPOINT not in redriven
    assert redriven[Header.MSG_ID] == "EV_9:a_example_com:g1:redrive"


def test_each_endpoint_has_its_own_copy_and_dedupe_ids() -> None:
    def first(endpoint: str = "default") -> Delivery:
        return Delivery.first(
            event_id="EV_9", event="participant_joined", room="sip-room",
            hook="a.example.com", sip_host="a.example.com", received_at=None, endpoint=endpoint,
        )  # fmt: skip

    default, crm = first(), first(endpoint="crm")
    assert default.to_headers()[Header.MSG_ID] == "EV_9"  # as the previous release wrote it
    assert Header.ENDPOINT not in default.to_headers()
    headers = crm.to_headers()
    assert (headers[Header.MSG_ID], headers[Header.ENDPOINT]) == ("EV_9:crm", "crm")
    copy = parse(headers)
    assert (copy.endpoint, copy.lane) == ("crm", "a.example.com#crm")
    assert copy.retry_headers(1, 5.0)[Header.MSG_ID] == "EV_9:a_example_com:crm:g0:a1"
    dead = copy.dead_headers(
        reason="x", attempts=1, last_status=None, last_error="", hook_url="", dead_at=1.0
    )
    assert dead[Header.ENDPOINT] == "crm"  # a dead letter and its redrive stay the CRM's
    assert parse(dead).redrive_headers()[Header.ENDPOINT] == "crm"


def test_a_dead_letter_made_without_a_request_keeps_the_last_real_answer() -> None:
    # 500, a retry scheduled, then the hook disabled: "Last status" was empty.
    retry = parse(retry_headers_with(parse(ORIGINAL), 1, 500))
    dead = retry.dead_headers(reason="hook disabled", attempts=1, last_status=None,
                              last_error="hook disabled", hook_url="", dead_at=1.0)  # fmt: skip
    assert dead[Header.LAST_STATUS] == "500"
    assert parse(retry_headers_with(retry, 2, None)).headers.get(Header.LAST_STATUS) is None
    answered = retry.dead_headers(reason="gone", attempts=2, last_status=410,
                                  last_error="HTTP 410", hook_url="", dead_at=1.0)  # fmt: skip
    assert answered[Header.LAST_STATUS] == "410"


def retry_headers_with(d: Delivery, attempt: int, status: int | None) -> dict[str, str]:
    return d.retry_headers(attempt, 0.0, status)


def test_the_call_seq_is_written_once_and_carried_by_every_later_copy() -> None:
    copy = parse(
        Delivery.first(
            event_id="EV_9", event="participant_joined", room="sip-room",
            hook="a.example.com", sip_host="a.example.com", received_at=None, call_seq=3,
        ).to_headers()
    )  # fmt: skip
    assert (copy.call_seq, copy.headers[Header.CALL_SEQ]) == (3, "3")
    retry = parse(copy.retry_headers(1, 5.0))
    waited = parse(retry.wait_headers(6.0))
    dead = parse(
        waited.dead_headers(
            reason="x", attempts=2, last_status=500, last_error="", hook_url="", dead_at=1.0
        )
    )
    assert [c.call_seq for c in (retry, waited, dead, parse(dead.redrive_headers()))] == [3] * 4
    assert parse(PREVIOUS_DELIVERY).call_seq == 0  # the previous release's: not ordered
