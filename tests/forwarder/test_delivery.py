"""Delivery against a real nats-server and a real HTTPS sink: exact bytes, signatures,
retries on the schedule, Retry-After, and each dead-letter reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from nats.js import JetStreamContext
from standardwebhooks import Webhook

from sayna_sip.common.contracts import DeadReason, Header
from sayna_sip.common.version import USER_AGENT
from tests.fixtures.https_sink import HttpsSink, Reply
from tests.forwarder.conftest import (
    SECRET,
    StartForwarder,
    delete_hook,
    drained,
    publish,
    put_hook,
    wait_dead,
)

WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()


async def test_exact_bytes_signed_with_static_whsec_and_global_plain_secrets(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    static = [{"host": "static.example.com", "url": https_sink.url("/s"), "secret": WHSEC}]
    await put_hook(jetstream, "static.example.com", https_sink.url("/s"))
    await put_hook(jetstream, "runtime.example.com", https_sink.url("/r"))
    await start_forwarder(SIP_HOOKS_JSON=json.dumps(static), SIP_HOOK_SECRET=SECRET)

    id_s, body_s = await publish(jetstream, "static.example.com")
    id_r, body_r = await publish(jetstream, "runtime.example.com")

    (got_s,) = await https_sink.wait_for(1, "/s")
    (got_r,) = await https_sink.wait_for(1, "/r")
    assert got_s.body == body_s and got_r.body == body_r  # byte for byte
    assert Webhook(WHSEC).verify(got_s.body, got_s.headers) is not None
    assert Webhook(SECRET.encode()).verify(got_r.body, got_r.headers) is not None
    assert got_s.headers["webhook-id"] == id_s and got_r.headers["webhook-id"] == id_r
    for got in (got_s, got_r):
        assert got.method == "POST"
        assert got.headers["user-agent"] == USER_AGENT
        assert got.headers["content-type"] == "application/json"
    signed = f"v1:{got_r.headers['x-sayna-timestamp']}:{id_r}:".encode() + body_r
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert got_r.headers["x-sayna-signature"] == f"v1={expected}"
    assert got_r.headers["x-sayna-event-id"] == id_r


async def test_500_500_200_arrives_on_the_third_attempt_with_one_webhook_id(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    https_sink.program("/flaky", Reply(500), Reply(500))
    await put_hook(jetstream, "flaky.example.com", https_sink.url("/flaky"))
    await start_forwarder(SIP_HOOK_SECRET=SECRET, SIP_RETRY_SCHEDULE="0s,100ms,200ms")

    event_id, body = await publish(jetstream, "flaky.example.com")

    got = await https_sink.wait_for(3, "/flaky")
    assert [r.headers["webhook-id"] for r in got] == [event_id] * 3
    assert all(r.body == body for r in got)
    for r in got:  # each attempt is signed afresh and verifies
        Webhook(SECRET.encode()).verify(r.body, r.headers)
    assert 0.08 <= got[1].at - got[0].at < 0.3  # first retry: 100 ms +-20%
    assert 0.16 <= got[2].at - got[1].at < 0.4  # then 200 ms +-20%
    await drained(jetstream)
    assert len(https_sink.received("/flaky")) == 3


@pytest.mark.serial  # timed against the wall clock: alone, after the parallel pass
async def test_retry_after_is_honoured_within_twice_the_scheduled_delay(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    https_sink.program("/ra", Reply(503, headers={"Retry-After": "5"}))
    https_sink.program("/plain", Reply(503))
    await put_hook(jetstream, "ra.example.com", https_sink.url("/ra"))
    await put_hook(jetstream, "plain.example.com", https_sink.url("/plain"))
    await start_forwarder(SIP_RETRY_SCHEDULE="0s,300ms")

    await publish(jetstream, "ra.example.com")
    await publish(jetstream, "plain.example.com")

    ra = await https_sink.wait_for(2, "/ra")
    plain = await https_sink.wait_for(2, "/plain")
    assert 0.58 <= ra[1].at - ra[0].at < 0.9  # Retry-After 5 s clamped to 2 x 300 ms
    assert 0.22 <= plain[1].at - plain[0].at < 0.5  # 300 ms +-20%


async def test_410_is_dead_lettered_at_once_with_its_details(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    https_sink.program("/gone", Reply(410))
    await put_hook(jetstream, "gone.example.com", https_sink.url("/gone"))
    await start_forwarder()

    event_id, body = await publish(jetstream, "gone.example.com")

    (dead,) = await wait_dead(jetstream, 1)
    h = dead.headers or {}
    assert dead.subject == "sip.dead.gone_example_com"
    assert dead.data == body
    assert h[Header.DEAD_REASON] == DeadReason.GONE
    assert (h[Header.ATTEMPT], h[Header.LAST_STATUS]) == ("1", "410")
    assert h[Header.HOOK] == "gone.example.com" and h[Header.HOOK_URL] == https_sink.url("/gone")
    assert h[Header.EVENT_ID] == event_id and h[Header.EVENT] == "participant_joined"
    assert h[Header.ROOM] == "sip-room-1" and float(h[Header.DEAD_AT]) > 0
    assert len(https_sink.received("/gone")) == 1
    await drained(jetstream)


async def test_exhausted_schedule_lands_in_sip_dead(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    https_sink.program("/down", then=Reply(500))
    await put_hook(jetstream, "down.example.com", https_sink.url("/down"))
    await start_forwarder(SIP_RETRY_SCHEDULE="0s,100ms,100ms")

    await publish(jetstream, "down.example.com")

    (dead,) = await wait_dead(jetstream, 1)
    h = dead.headers or {}
    assert h[Header.DEAD_REASON] == DeadReason.EXHAUSTED
    assert (h[Header.ATTEMPT], h[Header.LAST_STATUS], h[Header.LAST_ERROR]) == (
        "3",
        "500",
        "HTTP 500",
    )
    assert len(https_sink.received("/down")) == 3  # first try + two retries
    await drained(jetstream)


async def test_hook_url_is_resolved_at_each_attempt_and_removal_dead_letters(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    https_sink.program("/old", Reply(500))
    await put_hook(jetstream, "moving.example.com", https_sink.url("/old"))
    await start_forwarder(SIP_RETRY_SCHEDULE="0s,300ms")

    event_id, _ = await publish(jetstream, "moving.example.com")
    await https_sink.wait_for(1, "/old")
    await put_hook(jetstream, "moving.example.com", https_sink.url("/new"))
    (moved,) = await https_sink.wait_for(1, "/new")
    assert moved.headers["webhook-id"] == event_id

    https_sink.program("/new", Reply(500))
    await publish(jetstream, "moving.example.com")
    await https_sink.wait_for(2, "/new")
    await delete_hook(jetstream, "moving.example.com")
    (dead,) = await wait_dead(jetstream, 1)
    assert (dead.headers or {})[Header.DEAD_REASON] == DeadReason.HOOK_REMOVED


BLOCKED_TARGETS = [
    "https://127.0.0.1:{port}/b",  # loopback, not listed in this test
    "https://169.254.169.254/b",  # cloud metadata
    "https://10.0.0.1/b",
    "https://[::1]:{port}/b",
]


async def test_blocked_targets_are_dead_lettered_without_a_request(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    hosts = [f"evil{i}.example.com" for i in range(len(BLOCKED_TARGETS))]
    for host, target in zip(hosts, BLOCKED_TARGETS, strict=True):
        await put_hook(jetstream, host, target.format(port=https_sink.port))
    await start_forwarder(SIP_HOOK_ALLOW_NETWORKS="")  # nothing allowed here

    for host in hosts:
        await publish(jetstream, host)

    dead = await wait_dead(jetstream, len(hosts), timeout=3)
    assert sorted((d.headers or {})[Header.HOOK] for d in dead) == hosts
    for letter in dead:
        h = letter.headers or {}
        assert h[Header.DEAD_REASON] == DeadReason.BLOCKED and h[Header.ATTEMPT] == "0"
        assert "blocked address" in h[Header.LAST_ERROR]
    assert https_sink.received() == []  # the loopback sink never saw a connection's request
