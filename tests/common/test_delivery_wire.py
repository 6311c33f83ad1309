"""Every copy of one event as this release writes it, header by header: the wire format the
next release must read and whose dedupe ids it must spell alike (a copy written by one
release and its retry by the next dedupe, or not, the same way)."""

from __future__ import annotations

import pytest

from sayna_sip.common.contracts import Header
from sayna_sip.common.delivery import BadEnvelope, Delivery, EventMeta, header_value

FIRST = {
    "Nats-Msg-Id": "EV_1:second",
    "Sayna-Event-Id": "EV_1",
    "Sayna-Event": "participant_joined",
    "Sayna-Room": "sip-room",
    "Sayna-Hook": "pbx.example.com",
    "Sayna-Sip-Host": "pbx.example.com",
    "Sayna-Received-At": "1700000000.250000",
    "Sayna-Endpoint": "second",
    "Sayna-Call-Seq": "1",
    "Sayna-Version": "1",
}
# What a copy carries from the one before: the event's own headers.
CARRIED = {k: v for k, v in FIRST.items() if k != "Nats-Msg-Id"}


def _first() -> Delivery:
    return Delivery.first(
        event_id="EV_1", event="participant_joined", room="sip-room", hook="pbx.example.com",
        sip_host="pbx.example.com", received_at="1700000000.250000", endpoint="second",
        call_seq=1,
    )  # fmt: skip


def test_the_first_copy() -> None:
    d = _first()
    assert d.to_headers() == FIRST
    assert (d.hook, d.endpoint, d.call_seq, d.received_at) == ("pbx.example.com", "second", 1,
                                                               1700000000.25)  # fmt: skip
    assert d.lane == "pbx.example.com#second"


def test_a_retry_a_wait_a_paced_wait_a_dead_letter_and_its_redrive() -> None:
    # as JetStream hands it back, with its own headers, then each copy made of it
    d = Delivery.from_headers({**FIRST, "Nats-Expected-Stream": "SIP_DELIVERIES"})
    retry = d.retry_headers(2, 1700000010.0, last_status=503)
    assert retry == {
        **CARRIED, "Sayna-Attempt": "2", "Sayna-Not-Before": "1700000010.000",
        "Sayna-Last-Status": "503", "Nats-Msg-Id": "EV_1:pbx_example_com:second:g0:a2",
    }  # fmt: skip
    again = Delivery.from_headers(retry)
    waited = again.wait_headers(1700000020.0)
    assert waited == {
        **CARRIED, "Sayna-Attempt": "2", "Sayna-Not-Before": "1700000020.000",
        "Sayna-Waits": "1", "Sayna-Last-Status": "503",
        "Nats-Msg-Id": "EV_1:pbx_example_com:second:g0:a2w1",
    }  # fmt: skip
    paced = Delivery.from_headers(waited).wait_headers(1700000021.0, paced=1.25)
    assert paced == {
        **CARRIED, "Sayna-Paced": "1.250", "Sayna-Attempt": "2",
        "Sayna-Not-Before": "1700000021.000", "Sayna-Waits": "2", "Sayna-Last-Status": "503",
        "Nats-Msg-Id": "EV_1:pbx_example_com:second:g0:a2w2",
    }  # fmt: skip
    dead = Delivery.from_headers(paced).dead_headers(
        reason="gone", attempts=3, last_status=None, last_error="x" * 400,
        hook_url="https://pbx.example.com/h", dead_at=1700000030.5,
    )  # fmt: skip
    assert dead == {
        **CARRIED, "Sayna-Dead-Reason": "gone", "Sayna-Dead-At": "1700000030.500",
        "Sayna-Attempt": "3", "Sayna-Last-Status": "503", "Sayna-Last-Error": "x" * 300,
        "Sayna-Hook-Url": "https://pbx.example.com/h",
        "Nats-Msg-Id": "EV_1:pbx_example_com:second:g0:dead",
    }  # fmt: skip
    assert Delivery.from_headers(dead).redrive_headers() == {
        **CARRIED, "Sayna-Redrive": "1", "Nats-Msg-Id": "EV_1:pbx_example_com:second:g1:redrive",
    }  # fmt: skip


def test_a_dead_letter_of_a_copy_never_sent_has_no_status_and_an_unknown_event() -> None:
    bare = Delivery.from_headers({"Sayna-Event-Id": "EV_2", "Sayna-Hook": "h.example"})
    dead = bare.dead_headers(reason="hook removed", attempts=0, last_status=None,
                             last_error="", hook_url="", dead_at=1.0)  # fmt: skip
    assert dead[Header.LAST_STATUS] == "" and dead[Header.EVENT] == "" and dead[Header.ROOM] == ""
    assert dead[Header.MSG_ID] == "EV_2:h_example:g0:dead"  # the default endpoint's spelling


def test_header_values_lose_their_line_breaks_to_single_spaces() -> None:
    assert header_value("a\rb\nc\r\nd") == "a b c  d"
    assert header_value("a\rb") == "a b" and header_value("plain") == "plain"
    assert header_value("  a \n b  ", limit=3) == "a b"


def test_the_ingress_writes_its_receive_time_to_the_microsecond() -> None:
    meta = EventMeta("EV_3", "room_started", "sip-r", 1700000000.1234567)
    assert meta.to_headers()[Header.RECEIVED_AT] == "1700000000.123457"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Sayna-Hook": "h.example"}, "missing Sayna-Event-Id or Sayna-Hook"),
        ({"Sayna-Event-Id": "EV"}, "missing Sayna-Event-Id or Sayna-Hook"),
        ({"Sayna-Event-Id": "EV", "Sayna-Hook": "h", "Sayna-Waits": "x"}, "malformed header: "),
    ],
)
def test_an_envelope_that_cannot_be_delivered_says_why(
    headers: dict[str, str], message: str
) -> None:
    with pytest.raises(BadEnvelope) as bad:
        Delivery.from_headers(headers)
    assert str(bad.value).startswith(message)
