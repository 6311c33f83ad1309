"""Failures no retry can fix end in one dead letter, never in an endless nak loop:
hook URLs the client cannot use, and a delivery that raises unexpectedly (a bug)."""

from __future__ import annotations

import logging

import pytest
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.contracts import DeadReason, Header
from sayna_sip.forwarder import signing
from tests.fixtures.https_sink import HttpsSink
from tests.forwarder.conftest import StartForwarder, drained, publish, put_hook, wait_dead

INVALID_URLS = [
    "https://xn--zz.com/h",  # bad IDNA A-label: idna.IDNAError (a UnicodeError)
    "https://bad\x7fhost.example.com/h",  # control character
    "https://bad\nhost.example.com/h",  # a newline must not break the dead letter's headers
    "https://a..b.example.com/h",  # empty label: UnicodeError while connecting
    "https://127.0.0.1:99999/h",  # port out of range
]


async def test_unusable_hook_urls_are_dead_lettered_at_once(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    hosts = [f"bad{i}.example.com" for i in range(len(INVALID_URLS))]
    for host, url in zip(hosts, INVALID_URLS, strict=True):
        await put_hook(jetstream, host, url)
    await start_forwarder()
    for host in hosts:
        await publish(jetstream, host)

    dead = await wait_dead(jetstream, len(hosts), timeout=3)
    assert sorted((d.headers or {})[Header.HOOK] for d in dead) == hosts
    for letter in dead:
        h = letter.headers or {}
        assert h[Header.DEAD_REASON] == DeadReason.INVALID_URL, h
        assert h[Header.ATTEMPT] == "0"  # nothing was sent
        assert h[Header.LAST_ERROR].startswith("invalid url: ")
    await drained(jetstream)
    assert https_sink.received() == []


async def test_an_unexpected_exception_dead_letters_instead_of_looping(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    def broken(*_: object) -> dict[str, str]:
        nonlocal calls
        calls += 1
        raise KeyError("a bug")

    monkeypatch.setattr(signing, "signature_headers", broken)
    await put_hook(jetstream, "bug.example.com", https_sink.url("/bug"))
    await start_forwarder()
    with caplog.at_level(logging.ERROR, logger="sayna_sip.forwarder"):
        event_id, _ = await publish(jetstream, "bug.example.com")
        (dead,) = await wait_dead(jetstream, 1, timeout=3)
        await drained(jetstream)
    h = dead.headers or {}
    assert h[Header.DEAD_REASON] == "internal error: KeyError"
    assert h[Header.EVENT_ID] == event_id and "a bug" in h[Header.LAST_ERROR]
    crashed = [r.getMessage() for r in caplog.records if "delivery_crashed" in r.getMessage()]
    assert crashed == [f"event=delivery_crashed event_id={event_id} hook=bug.example.com "
                       "error=\"KeyError('a bug')\""]  # fmt: skip
    # Acked for good: nothing left to redeliver, so no nak loop can ever try again.
    info = await jetstream.consumer_info(topology.SIP_DELIVERIES, topology.FORWARDER_CONSUMER)
    assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (0, 0, 0)
    assert calls == 1
    info = await jetstream.stream_info(topology.SIP_DEAD)
    assert info.state.messages == 1
