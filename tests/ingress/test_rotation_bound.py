"""Rotations keep the newest secret and at most MAX_OVERLAPPING older ones signing: 200
rotations once made 201 signatures, a 9.8 KB header receivers refused. The answer says
which secrets stopped signing early."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.js import JetStreamContext

from sayna_sip.common.secretbox import generate_key
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import Client, ingress_config, serve

HOST = "a.example.com"
MAX_OVERLAPPING = 3  # as documented: the newest secret and at most three older ones sign


@pytest.fixture
async def keyed(nats_server: NatsServer, jetstream: JetStreamContext) -> AsyncIterator[Client]:
    """An ingress with SIP_SECRETS_KEY set, so hooks may carry their own secrets."""
    async with serve(ingress_config(nats_server.url, SIP_SECRETS_KEY=generate_key())) as client:
        yield client


async def test_rotations_keep_a_bounded_overlap_and_name_what_expired_early(keyed: Client) -> None:
    hook = {"host": HOST, "url": "https://a.example.com/h", "secret": "s" * 32}
    first = (await keyed.post("/sip/hooks", json={"hooks": [hook]})).json()["hooks"][0]
    ids = [first["secrets"][0]["id"]]
    for n in range(1, MAX_OVERLAPPING + 4):
        answer = (await keyed.post(f"/sip/hooks/{HOST}/rotate-secret", json={})).json()
        active = answer["hook"]["secrets"]
        ids.insert(0, active[0]["id"])
        assert [s["id"] for s in active] == ids[: MAX_OVERLAPPING + 1]
        early = [s["id"] for s in answer["expired_early"]]
        assert early == ids[MAX_OVERLAPPING + 1 : MAX_OVERLAPPING + 2], n
        assert all(s["expires_at"] for s in answer["expired_early"])
    listed = (await keyed.get("/sip/hooks")).json()["hooks"]
    assert len(next(h for h in listed if h["host"] == HOST)["secrets"]) == MAX_OVERLAPPING + 1


async def test_an_endpoint_rotation_keeps_the_same_bound(keyed: Client) -> None:
    hook = {"host": HOST, "url": "https://a.example.com/h", "secret": "s" * 32}
    await keyed.post("/sip/hooks", json={"hooks": [hook]})
    path = f"/sip/hooks/{HOST}/endpoints/default/rotate-secret"
    for n in range(MAX_OVERLAPPING + 2):
        answer = (await keyed.post(path, json={})).json()
        assert len(answer["endpoint"]["secrets"]) == min(n + 2, MAX_OVERLAPPING + 1)
        assert len(answer["expired_early"]) == (1 if n + 2 > MAX_OVERLAPPING + 1 else 0)
