"""decode_event: only what routing needs; odd shapes are Malformed, never a crash."""

from __future__ import annotations

import json

import pytest

from sayna_sip.router.events import Malformed, decode_event
from tests.fixtures.livekit import sip_event


def _body(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode()


def test_reads_type_id_room_and_host() -> None:
    event = decode_event(_body(sip_event(room="sip-1", to="sip:a@example.com", event_id="EV_1")))
    assert (event.event, event.id, event.room_name) == ("participant_joined", "EV_1", "sip-1")
    assert event.sip_host() == "example.com"


@pytest.mark.parametrize(
    ("to", "x_to_ip", "host"),
    [
        ("sip:a@example.com", None, "example.com"),
        ("sip:a@example.com", "10.0.0.9", "10.0.0.9"),  # X-To-IP first
        ("sip:a@example.com", "garbage", None),  # the first present attribute decides
        (None, None, None),
        ("tel:+15551234567", None, None),
    ],
)
def test_host_attribute_order(to: str | None, x_to_ip: str | None, host: str | None) -> None:
    assert decode_event(_body(sip_event(to=to, x_to_ip=x_to_ip))).sip_host() == host


def test_room_level_event_has_no_participant() -> None:
    event = decode_event(_body(sip_event("room_finished")))
    assert event.participant is None and event.sip_host() is None


def test_unknown_fields_are_ignored() -> None:
    event = sip_event()
    event["brandNew"] = {"deep": [1, 2, {"x": None}]}
    event["room"]["futureField"] = 3
    assert decode_event(_body(event)).event == "participant_joined"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"event"',
        b"{}",  # no event type
        b'{"event": 5}',
        b'{"event": "room_started", "room": "sip-1"}',
        b'{"event": "participant_joined", "participant": {"attributes": {"sip.h.to": 1}}}',
        b'{"event": "participant_joined", "participant": {"attributes": []}}',
        b"\xff\xfe",
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(Malformed):
        decode_event(body)
