"""Bad input to the records routes (dead letters, redrive, replay, delivery pages) gets a
4xx with a clear code and a short message, never a 500, and never means "everything":
blank filters are absent, query parameters are `invalid_query`, body fields
`invalid_body`; a redrive holds its request for a bounded time and says `truncated`."""

from __future__ import annotations

import time

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from sayna_sip.common import contracts, deadletters, topology
from sayna_sip.common.contracts import Header
from sayna_sip.common.delivery import Delivery
from sayna_sip.common.streamscan import StreamReader
from tests.ingress.conftest import Client

HOSTS = ("a.example.com", "b.example.com")


async def bury(js: JetStreamContext, host: str, n: int) -> None:
    """`n` dead letters of `host`, as a forwarder writes them."""
    for i in range(n):
        event_id = f"EV_{host[0]}{i}"
        headers = {Header.MSG_ID: event_id, Header.EVENT_ID: event_id, Header.HOOK: host,
                   Header.EVENT: "participant_joined", Header.ROOM: "sip-room-1",
                   Header.RECEIVED_AT: f"{time.time():.6f}", Header.SIP_HOST: host}  # fmt: skip
        dead = Delivery.from_headers(headers).dead_headers(
            reason="retries exhausted", attempts=3, last_status=500, last_error="HTTP 500",
            hook_url=f"https://{host}/h", dead_at=time.time(),
        )  # fmt: skip
        await js.publish(contracts.dead_subject(host), b"{}", stream=topology.SIP_DEAD,
                         headers=dead)  # fmt: skip


async def dead_count(js: JetStreamContext) -> int:
    return int((await js.stream_info(topology.SIP_DEAD)).state.messages)


@pytest.mark.parametrize(
    "body",
    [{}, {"host": ""}, {"host": " "}, {"since": ""}, {"since": " ", "host": ""},
     {"event_ids": []}, {"event_ids": [""]}, {"until": "1h"}],
    ids=["empty", "host", "host-blank", "since", "both-blank", "ids", "id-blank", "until-only"],
)  # fmt: skip
async def test_blank_redrive_filters_are_absent(
    ingress: Client, jetstream: JetStreamContext, body: dict[str, object]
) -> None:
    for host in HOSTS:
        await bury(jetstream, host, 2)

    r = await ingress.post("/sip/dead-letters/redrive", json=body)

    assert (r.status_code, r.json()["error"]) == (400, "invalid_body"), r.text
    assert await dead_count(jetstream) == 4


@pytest.mark.parametrize(
    ("body", "needle"),
    [({"since": ""}, "since"), ({"since": "  "}, "since"), ({"since": "yesterday"}, "since"),
     ({"since": "1h", "until": "soon"}, "until"), ({"since": "9" * 400 + "d"}, "since")],
)  # fmt: skip
async def test_replay_windows_that_cannot_be_used_are_400(
    ingress: Client, body: dict[str, str], needle: str
) -> None:
    r = await ingress.post("/sip/hooks/a.example.com/replay", json=body)

    assert (r.status_code, r.json()["error"]) == (400, "invalid_body"), r.text
    assert needle in r.json()["message"]


@pytest.mark.parametrize("path", ["/sip/deliveries", "/sip/dead-letters"])
@pytest.mark.parametrize(
    "query",
    ["cursor=²", "cursor=" + "1" * 5000, "cursor=0", "cursor=-1", "limit=abc", "limit=0",
     "limit=100000", "since=yesterday", "until=" + "9" * 400 + "d", "host=-bad-",
     "cursor=G%C2%A9&since=0667-01-31T16:48:05Z"],  # no record read: still refused
)  # fmt: skip
async def test_bad_query_parameters_are_invalid_query(
    ingress: Client, path: str, query: str
) -> None:
    r = await ingress.get(f"{path}?{query}")

    assert (r.status_code, r.json()["error"]) == (400, "invalid_query"), r.text
    assert len(r.text) < 600  # the value is not echoed back whole


async def test_huge_invalid_values_are_not_echoed_back(ingress: Client) -> None:
    huge = "x" * 500_000
    answers = [
        await ingress.post("/sip/hooks/a.example.com/replay", json={"since": huge}),
        await ingress.post("/sip/dead-letters/redrive", json={"since": huge}),
        await ingress.post("/sip/dead-letters/redrive", json={"host": huge}),
        await ingress.get(f"/sip/deliveries?since={huge[:60_000]}"),
        await ingress.get(f"/sip/deliveries?outcome={'-' * 60_000}"),
        await ingress.post(f"/sip/hooks/{huge[:60_000]}/disable", json={}),
    ]
    for r in answers:
        assert r.status_code == 400 and len(r.text) < 600, (r.status_code, r.text[:200])


async def test_a_redrive_stops_at_its_time_budget_and_the_next_call_goes_on(
    nats_client: NatsClient, jetstream: JetStreamContext
) -> None:
    await bury(jetstream, HOSTS[0], 5)
    reader = StreamReader(nats_client, topology.SIP_DEAD)
    await reader.start()
    calls: list[deadletters.Redriven] = []
    while True:
        done = await deadletters.redrive(jetstream, reader, host=HOSTS[0], budget=0.0)
        calls.append(done)
        if not done.truncated:
            break
    assert [c.redriven for c in calls] == [1, 1, 1, 1, 1]  # at least one per call
    assert [c.truncated for c in calls] == [True, True, True, True, False]
    assert await dead_count(jetstream) == 0
    info = await jetstream.stream_info(topology.SIP_DELIVERIES)
    assert info.state.messages == 5


async def test_a_redrive_that_did_not_read_every_letter_says_truncated_and_the_next_goes_on(
    nats_client: NatsClient, jetstream: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SCAN_LIMIT (10,000) letters read per call as 4 here, in requests of 3 (1,001): a call
    # that stops there says so; letters read across requests once each, in order.
    monkeypatch.setattr(deadletters, "SCAN_BATCH", 2)
    await bury(jetstream, HOSTS[0], 7)
    reader = StreamReader(nats_client, topology.SIP_DEAD)
    await reader.start()
    try:
        listed = await deadletters.oldest_first(reader, 10**6)
        assert [x.event_id for x in listed] == [f"EV_a{i}" for i in range(7)]
        calls = [await deadletters.redrive(jetstream, reader, host=HOSTS[0], scan=4)
                 for _ in range(2)]  # fmt: skip
    finally:
        await reader.close()
    assert calls == [deadletters.Redriven(4, truncated=True), deadletters.Redriven(3)]
    delivered = await jetstream.stream_info(topology.SIP_DELIVERIES)
    assert (await dead_count(jetstream), delivered.state.messages) == (0, 7)


async def test_a_redrive_reads_past_its_scan_limit_to_the_first_match_and_goes_on_next_call(
    nats_client: NatsClient, jetstream: JetStreamContext
) -> None:
    # The wanted letters lie behind more than `scan` others, which stay: the call reads on
    # to a match (or it would answer the same nothing forever) and says what it left.
    await bury(jetstream, HOSTS[0], 6)
    wanted = ["EV_a3", "EV_a5"]
    reader = StreamReader(nats_client, topology.SIP_DEAD)
    await reader.start()
    try:
        calls = [await deadletters.redrive(jetstream, reader, event_ids=wanted, scan=2)
                 for _ in range(2)]  # fmt: skip
        left = await deadletters.oldest_first(reader, 10**6)
    finally:
        await reader.close()
    assert calls == [deadletters.Redriven(1, truncated=True), deadletters.Redriven(1)]
    assert [x.event_id for x in left] == ["EV_a0", "EV_a1", "EV_a2", "EV_a4"]


async def test_the_api_redrive_answers_truncated_false_when_done(
    ingress: Client, jetstream: JetStreamContext
) -> None:
    await bury(jetstream, HOSTS[0], 3)
    r = await ingress.post("/sip/dead-letters/redrive", json={"host": HOSTS[0]})
    assert r.json() == {"redriven": 3, "skipped": 0, "truncated": False}


async def test_an_api_redrive_out_of_time_says_truncated_and_the_same_call_goes_on(
    ingress: Client, jetstream: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert deadletters.REDRIVE_BUDGET_S == 2.0  # operations.md: "about 2 s per call"
    monkeypatch.setattr(deadletters, "REDRIVE_BUDGET_S", 0.0)  # every call out of time at once
    await bury(jetstream, HOSTS[0], 3)
    answers = [
        (await ingress.post("/sip/dead-letters/redrive", json={"host": HOSTS[0]})).json()
        for _ in range(3)
    ]
    assert [(a["redriven"], a["truncated"]) for a in answers] == [(1, True), (1, True), (1, False)]
    assert await dead_count(jetstream) == 0
