"""What the operator API answers about hooks, records and dead letters, on a real
nats-server (records and letters written as the router and forwarder write them): each
test guards one bug a reviewer planted and the suite let through."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from sayna_sip.common import contracts, deadletters, topology
from sayna_sip.common.contracts import Header
from sayna_sip.common.deliveries import rfc3339
from sayna_sip.common.delivery import Delivery
from sayna_sip.common.hook import Hook, parse_stamp, utc_stamp
from sayna_sip.common.recorder import Recorder, RecorderMetrics
from sayna_sip.common.records import AttemptRecord, RouteRecord
from sayna_sip.common.streamscan import StoredMsg, StreamReader
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import Client, ingress_config, serve, wait_until
from tests.ingress.tenants import EV, SECRETS_KEY, A, B, seed_dead_letter

OWN = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="


@pytest.fixture
async def api(nats_server: NatsServer, jetstream: JetStreamContext) -> AsyncIterator[Client]:
    """The ingress (SIP on, SIP_SECRETS_KEY set, the default SIP_SECRET_OVERLAP) with the
    runtime hooks A and B."""
    async with serve(ingress_config(nats_server.url, SIP_SECRETS_KEY=SECRETS_KEY)) as client:
        hooks = [{"host": A, "url": f"https://{A}/hook", "secret": OWN},
                 {"host": B, "url": f"https://{B}/hook"}]  # fmt: skip
        r = await client.post("/sip/hooks", json={"hooks": hooks})
        assert r.status_code == 200, r.text
        yield client


async def test_a_rotated_out_secret_keeps_signing_for_24_hours_by_default(api: Client) -> None:
    # Receivers that have not switched yet keep verifying for a day (design: 24h).
    r = await api.post(f"/sip/hooks/{A}/rotate-secret", json={})
    assert r.status_code == 200, r.text
    current, previous = r.json()["hook"]["secrets"]
    assert current["expires_at"] is None
    assert abs(parse_stamp(previous["expires_at"]) - (time.time() + 86400)) < 120


async def test_dead_letters_of_one_host_are_listed_and_redriven_alone(
    api: Client, jetstream: JetStreamContext
) -> None:
    for host in (A, B):
        await seed_dead_letter(jetstream, host)
    assert len((await api.get("/sip/dead-letters")).json()["dead_letters"]) == 2
    listed = (await api.get("/sip/dead-letters", params={"host": A})).json()["dead_letters"]
    assert [(x["host"], x["event_id"]) for x in listed] == [(A, EV[A])]

    r = await api.post("/sip/dead-letters/redrive", json={"host": A})
    assert r.json()["redriven"] == 1
    left = (await api.get("/sip/dead-letters")).json()["dead_letters"]
    assert [x["host"] for x in left] == [B]
    info = await jetstream.stream_info(topology.SIP_DELIVERIES)
    assert info.state.messages == 1  # A's letter only, back in delivery


async def test_stats_count_only_the_attempts_inside_the_window(
    api: Client, nats_client: Nats
) -> None:
    now = time.time()
    ages = {"1h": [600.0], "24h": [600.0, 2 * 3600.0], "7d": [600.0, 2 * 3600.0, 3 * 86400.0]}
    rec = Recorder(nats_client, RecorderMetrics(CollectorRegistry()))
    await rec.start()
    for n, age in enumerate(ages["7d"]):
        outcome, status = ("delivered", 200) if n == 0 else ("failed", 500)
        rec.record(AttemptRecord(event_id=f"EV_{n}", host=A, attempt=1, outcome=outcome,
                                 status=status, started_at=now - age, duration_ms=5.0))  # fmt: skip
    rec.record(AttemptRecord(event_id="EV_b", host=B, attempt=1, outcome="failed", status=500,
                             started_at=now - 60, duration_ms=5.0))  # fmt: skip
    await rec.flush()
    await rec.stop()
    for window, inside in ages.items():
        stats = (await api.get(f"/sip/hooks/{A}/stats", params={"window": window})).json()
        assert stats["attempts"] == len(inside), (window, stats)
        assert (stats["delivered"], stats["failed"]) == (1, len(inside) - 1), window
    assert (await api.get(f"/sip/hooks/{A}/stats")).json()["window"] == "24h"


async def test_enable_clears_failing_since_and_tells_the_operators(
    api: Client, jetstream: JetStreamContext, nats_client: Nats
) -> None:
    # The state the forwarder leaves when it disables a failing hook.
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    entry = await kv.get(Hook.new(A, "https://x", "runtime").key)
    assert entry.value is not None
    failing = Hook.decode(entry.value).changed(
        enabled=False, failing_since=utc_stamp(time.time() - 7200), disabled_reason="failing"
    )
    await kv.put(failing.key, failing.encode())
    notices = await nats_client.subscribe(contracts.OPS_HOOK_ENABLED)
    await nats_client.flush()

    r = await api.post(f"/sip/hooks/{A}/enable", json={})

    assert r.status_code == 200, r.text
    shown = r.json()
    assert (shown["enabled"], shown["failing_since"], shown["disabled_reason"]) == (
        True, None, None,
    )  # fmt: skip
    # Kept, the next failure would disable it again at once (failing for 2 h already).
    stored = await kv.get(failing.key)
    assert stored.value is not None and Hook.decode(stored.value).failing_since is None
    notice = json.loads((await notices.next_msg(timeout=5)).data)
    assert (notice["event"], notice["host"]) == ("hook_enabled", A)
    # Enabling a hook that is enabled already changes nothing and tells no one.
    assert (await api.post(f"/sip/hooks/{A}/enable", json={})).status_code == 200
    with pytest.raises(TimeoutError):
        await notices.next_msg(timeout=0.3)


async def _letter(js: JetStreamContext, host: str, event_id: str, dead_at: float) -> None:
    first = Delivery.first(event_id=event_id, event="participant_left", room="sip-r",
                           hook=host, sip_host=host, received_at=None)  # fmt: skip
    headers = first.dead_headers(reason="gone", attempts=3, last_status=None, last_error="",
                                 hook_url=f"https://{host}/hook", dead_at=dead_at)  # fmt: skip
    await js.publish(contracts.dead_subject(host), b"{}", stream=topology.SIP_DEAD,
                     headers=headers)  # fmt: skip


async def test_dead_letters_page_by_time_and_cursor_and_redrive_by_id_and_window(
    api: Client, jetstream: JetStreamContext
) -> None:
    now = time.time()
    await _letter(jetstream, A, "EV_old", now - 7200)
    await asyncio.sleep(0.01)  # stored a moment apart: the window's bound falls between
    middle = rfc3339(time.time())
    await asyncio.sleep(0.01)
    for n in (1, 2):
        await _letter(jetstream, A, f"EV_new{n}", now - 60)

    async def ids(**params: str) -> list[str]:
        page = (await api.get("/sip/dead-letters", params=params)).json()
        return [x["event_id"] for x in page["dead_letters"]]

    assert await ids() == ["EV_new2", "EV_new1", "EV_old"]  # newest first
    assert await ids(since=middle or "") == ["EV_new2", "EV_new1"]
    assert await ids(until=middle or "") == ["EV_old"]
    first = (await api.get("/sip/dead-letters", params={"limit": "2"})).json()
    assert [x["event_id"] for x in first["dead_letters"]] == ["EV_new2", "EV_new1"]
    assert await ids(cursor=first["next_cursor"]) == ["EV_old"]
    shown = (await api.get("/sip/dead-letters", params={"limit": "1"})).json()["dead_letters"][0]
    assert (shown["last_status"], shown["last_error"], shown["attempts"]) == (None, "", 3)

    r = await api.post("/sip/dead-letters/redrive", json={"event_ids": ["EV_new1"]})
    assert r.json() == {"redriven": 1, "skipped": 0, "truncated": False}
    r = await api.post("/sip/dead-letters/redrive", json={"host": A, "until": "1h"})
    assert r.json() == {"redriven": 1, "skipped": 0, "truncated": False}  # EV_old: died 2 h ago
    assert await ids() == ["EV_new2"]
    r = await api.post("/sip/dead-letters/redrive", json={"since": "7d"})
    assert r.json() == {"redriven": 1, "skipped": 0, "truncated": False}
    assert await ids() == []


async def test_a_dead_letter_missing_headers_is_listed_with_empty_fields(
    api: Client, jetstream: JetStreamContext
) -> None:
    # As an older writer may have left one: only the host and the event id.
    headers = {Header.HOOK: A, Header.EVENT_ID: "EV_bare"}
    await jetstream.publish(contracts.dead_subject(A), b"{}", stream=topology.SIP_DEAD,
                            headers=headers)  # fmt: skip
    r = await api.get("/sip/dead-letters")
    assert r.status_code == 200, r.text
    (shown,) = r.json()["dead_letters"]
    assert (shown["host"], shown["event_id"], shown["attempts"]) == (A, "EV_bare", 0)
    assert shown["last_status"] is None and shown["dead_at"] is None
    assert shown["endpoint"] == "default"  # the one endpoint there was before endpoints
    assert {shown[k] for k in ("event", "room", "reason", "last_error", "url")} == {""}


async def test_a_redrive_counts_each_letter_stops_at_its_limit_and_skips_the_gone(
    nats_client: Nats, jetstream: JetStreamContext
) -> None:
    for n in range(3):
        await _letter(jetstream, A, f"EV_{n}", time.time())
    reader = StreamReader(nats_client, topology.SIP_DEAD)
    await reader.start()
    try:
        done = await deadletters.redrive(jetstream, reader, host=A, limit=2)
        assert done == deadletters.Redriven(redriven=2, skipped=0, truncated=True)
        (left,) = await deadletters.oldest_first(reader, 10**6, host=A)
        assert left.event_id == "EV_2"
        assert await deadletters.redrive_one(jetstream, left)
        assert not await deadletters.redrive_one(jetstream, left)  # gone: redriven already
        assert await deadletters.redrive(jetstream, reader, host=A) == deadletters.Redriven()
    finally:
        await reader.close()


async def test_a_redrive_since_a_time_leaves_the_older_letters(
    api: Client, jetstream: JetStreamContext
) -> None:
    await _letter(jetstream, A, "EV_before", time.time() - 60)
    await asyncio.sleep(0.01)  # stored a moment apart: `since` falls between
    since = rfc3339(time.time())
    await asyncio.sleep(0.01)
    await _letter(jetstream, A, "EV_after", time.time())
    r = await api.post("/sip/dead-letters/redrive", json={"host": A, "since": since})
    assert r.json() == {"redriven": 1, "skipped": 0, "truncated": False}
    left = (await api.get("/sip/dead-letters")).json()["dead_letters"]
    assert [x["event_id"] for x in left] == ["EV_before"]


async def test_a_redrive_until_a_time_takes_letters_dead_by_then_in_any_stored_order(
    nats_client: Nats, jetstream: JetStreamContext
) -> None:
    # Stored out of their death order (letters of two forwarders with skewed clocks):
    # one past `until` ends nothing; one dead exactly at `until` is inside.
    until = float(int(time.time()) - 600)  # a whole second: the header keeps it exact
    for event_id, dead_at in (("EV_late", until + 60), ("EV_at", until), ("EV_early", until - 1)):
        await _letter(jetstream, A, event_id, dead_at)
    async with _reader(nats_client) as reader:
        done = await deadletters.redrive(jetstream, reader, host=A, until=until)
        assert done == deadletters.Redriven(redriven=2)
        (left,) = await deadletters.oldest_first(reader, 10**6, host=A)
        assert left.event_id == "EV_late"


async def test_a_redrive_counts_every_letter_redriven_meanwhile_as_skipped(
    nats_client: Nats, jetstream: JetStreamContext
) -> None:
    for n in range(3):
        await _letter(jetstream, A, f"EV_{n}", time.time())

    class Raced(StreamReader):
        """Another operator's redrive of the first two lands between our read and ours."""

        async def range(
            self, filter_subject: str, lo: int, hi: int, cap: int
        ) -> tuple[list[StoredMsg], bool]:
            got = await super().range(filter_subject, lo, hi, cap)
            for msg in got[0][:2]:
                await jetstream.delete_msg(topology.SIP_DEAD, msg.seq)
            return got

    raced = Raced(nats_client, topology.SIP_DEAD)
    await raced.start()
    try:
        done = await deadletters.redrive(jetstream, raced, host=A)
    finally:
        await raced.close()
    assert done == deadletters.Redriven(redriven=1, skipped=2)


async def test_a_redrive_whose_dead_letter_stream_is_gone_counts_it_skipped(
    nats_client: Nats, jetstream: JetStreamContext
) -> None:
    await _letter(jetstream, A, "EV_1", time.time())
    async with _reader(nats_client) as reader:
        (letter,) = await deadletters.oldest_first(reader, 10**6, host=A)
    await jetstream.delete_stream(topology.SIP_DEAD)  # deleted by hand: the letter with it
    assert not await deadletters.redrive_one(jetstream, letter)


async def test_one_redrive_takes_at_most_1000_letters_by_default(
    api: Client, nats_client: Nats, jetstream: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The count limit, not the time budget (its own tests): a loaded 2-core machine
    # redrove 913 letters in the 2 s a call has.
    monkeypatch.setattr(deadletters, "REDRIVE_BUDGET_S", 60.0)
    # Core publishes (no PubAck each) store the 1,001 letters in a fraction of a second.
    first = Delivery.first(event_id="EV_n", event="participant_left", room="sip-r",
                           hook=A, sip_host=A, received_at=None)  # fmt: skip
    headers = first.dead_headers(reason="gone", attempts=3, last_status=None, last_error="",
                                 hook_url=f"https://{A}/hook", dead_at=time.time())  # fmt: skip
    for n in range(1001):
        own = {Header.EVENT_ID: f"EV_{n}", Header.MSG_ID: f"EV_{n}:dead"}
        await nats_client.publish(contracts.dead_subject(A), b"{}", headers={**headers, **own})

    async def stored() -> bool:  # a moment after the server has them
        return (await jetstream.stream_info(topology.SIP_DEAD)).state.messages == 1001

    await wait_until(stored)
    r = await api.post("/sip/dead-letters/redrive", json={"host": A})
    assert r.json() == {"redriven": 1000, "skipped": 0, "truncated": True}
    left = (await api.get("/sip/dead-letters")).json()["dead_letters"]
    assert [x["event_id"] for x in left] == ["EV_1000"]


@contextlib.asynccontextmanager
async def _reader(nc: Nats) -> AsyncIterator[StreamReader]:
    reader = StreamReader(nc, topology.SIP_DEAD)
    await reader.start()
    try:
        yield reader
    finally:
        await reader.close()


async def test_deliveries_filter_by_an_outcome_name_with_underscores_and_page_by_cursor(
    api: Client, nats_client: Nats
) -> None:
    rec = Recorder(nats_client, RecorderMetrics(CollectorRegistry()))
    await rec.start()
    now = time.time()
    for n, outcome in enumerate(("matched", "not_sip", "not_sip", "not_sip")):
        rec.record(RouteRecord(event_id=f"EV_{n}", event="participant_joined", room="sip-r",
                               outcome=outcome, at=now))  # fmt: skip
    await rec.flush()
    await rec.stop()

    async def page(**params: str | int) -> tuple[list[str], str | None]:
        r = await api.get("/sip/deliveries", params={"outcome": "not_sip", "limit": 2, **params})
        assert r.status_code == 200, r.text
        return [x["event_id"] for x in r.json()["deliveries"]], r.json()["next_cursor"]

    first, cursor = await page()
    assert first == ["EV_3", "EV_2"] and cursor is not None
    assert await page(cursor=cursor) == (["EV_1"], None)  # the next page, not the first again


async def test_a_dead_letter_is_listed_with_every_field_its_writer_stored(
    api: Client, jetstream: JetStreamContext
) -> None:
    first = Delivery.first(event_id="EV_full", event="participant_left", room="sip-r",
                           hook=A, sip_host=A, received_at=None, endpoint="backup")  # fmt: skip
    headers = first.dead_headers(reason="retries exhausted", attempts=4, last_status=503,
                                 last_error="HTTP 503", hook_url=f"https://{A}/b",
                                 dead_at=1_700_000_000.25)  # fmt: skip
    ack = await jetstream.publish(contracts.dead_subject(A), b"{}", stream=topology.SIP_DEAD,
                                  headers=headers)  # fmt: skip
    r = await api.get("/sip/dead-letters")
    assert r.status_code == 200, r.text
    assert r.json() == {"dead_letters": [{
        "seq": ack.seq, "host": A, "event_id": "EV_full", "event": "participant_left",
        "room": "sip-r", "reason": "retries exhausted", "attempts": 4, "last_status": 503,
        "last_error": "HTTP 503", "url": f"https://{A}/b", "dead_at": "2023-11-14T22:13:20.250Z",
        "endpoint": "backup",
    }], "next_cursor": None}  # fmt: skip
