"""Headers of the copies the forwarder and the dlq publish: what they carry and their
dedupe ids."""

from __future__ import annotations

import pytest

from sayna_sip.common.contracts import Header
from sayna_sip.forwarder.envelope import (
    BadEnvelope,
    dead_headers,
    parse,
    redrive_headers,
    retry_headers,
)

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


def test_dead_letter_then_redrive_resets_attempts_and_gets_fresh_ids() -> None:
    d = parse({**ORIGINAL, Header.ATTEMPT: "3", Header.NOT_BEFORE: "5"})
    dead = dead_headers(
        d,
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
