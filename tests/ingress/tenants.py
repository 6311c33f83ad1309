"""Two tenants on one ingress (auth on, SIP_SECRETS_KEY set), each with records, dead
letters and an audit trail, so a test can ask one tenant's token for the other's data."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from sayna_sip.common import contracts, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.contracts import Header
from sayna_sip.common.delivery import Delivery
from sayna_sip.common.hook import Hook
from sayna_sip.common.recorder import Recorder, RecorderMetrics
from sayna_sip.common.records import AttemptRecord, RouteRecord
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import STATIC_HOST, Client, ingress_config, serve

ADMIN = "admin-token-0123456789abcdef"
SECRETS_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes
A, B = "pbx.tenant-a.example", "pbx.tenant-b.example"
EV = {A: "EV_tenant_a_1", B: "EV_tenant_b_1"}
SECRET_B = "whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="


def tenant_config(nats_url: str, **env: str | None) -> ServerConfig:
    base: dict[str, str | None] = {
        "AUTH_REQUIRED": "true", "AUTH_API_SECRET": ADMIN, "SIP_SECRETS_KEY": SECRETS_KEY,
    }  # fmt: skip
    return ingress_config(nats_url, **{**base, **env})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Tenants:
    client: Client
    tokens: dict[str, str]  # host -> a tenant token of it
    token_ids: dict[str, str]

    async def as_admin(self, method: str, path: str, **kw: object) -> httpx.Response:
        return await self.client.request(method, path, headers=bearer(ADMIN), **kw)  # type: ignore[arg-type]

    async def as_tenant(self, host: str, method: str, path: str, **kw: object) -> httpx.Response:
        headers = bearer(self.tokens[host])
        return await self.client.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]

    async def mint(self, host: str, ttl: str | None = None) -> httpx.Response:
        body = {} if ttl is None else {"ttl": ttl}
        return await self.as_admin("POST", f"/sip/hooks/{host}/access-tokens", json=body)


async def seed_records(nats: Nats, host: str) -> None:
    """Host's event in LK_EVENTS (so it can be resent), its matched route, and a failed
    then delivered attempt."""
    headers = {Header.EVENT_ID: EV[host], Header.EVENT: "participant_joined"}
    stored = await nats.jetstream().publish(
        contracts.lk_event_subject("participant_joined", f"sip-{host}"),
        b'{"event":"participant_joined"}', stream=topology.LK_EVENTS, headers=headers,
    )  # fmt: skip
    rec = Recorder(nats, RecorderMetrics(CollectorRegistry()))
    await rec.start()
    now = time.time()
    rec.record(RouteRecord(event_id=EV[host], event="participant_joined", room=f"sip-{host}",
                           outcome="matched", at=now, host=host, sip_host=host,
                           lk_seq=stored.seq))  # fmt: skip
    for n, outcome, status in ((1, "failed", 500), (2, "delivered", 200)):
        rec.record(AttemptRecord(event_id=EV[host], host=host, attempt=n, outcome=outcome,
                                 status=status, started_at=now, duration_ms=5.0,
                                 url=f"https://{host}/hook", response=f"from {host}"))  # fmt: skip
    await rec.flush()
    await rec.stop()


async def seed_dead_letter(js: JetStreamContext, host: str) -> None:
    first = Delivery.first(event_id=EV[host], event="participant_left", room=f"sip-{host}",
                           hook=host, sip_host=host, received_at=None)  # fmt: skip
    headers = first.dead_headers(reason="gone", attempts=3, last_status=410,
                                 last_error=f"gone at {host}", hook_url=f"https://{host}/hook",
                                 dead_at=time.time())  # fmt: skip
    await js.publish(contracts.dead_subject(host), b'{"event":"participant_left"}',
                     stream=topology.SIP_DEAD, headers=headers)  # fmt: skip


@asynccontextmanager
async def open_tenants(
    nats_server: NatsServer, jetstream: JetStreamContext, nats_client: Nats
) -> AsyncIterator[Tenants]:
    """Hooks A and B (B with its own secret), records and a dead letter of each, and a
    tenant token of each host (and of the static hook)."""
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    static = Hook.new(STATIC_HOST, f"https://{STATIC_HOST}/hook", "config")
    await kv.put(static.key, static.encode())  # as the provisioner writes it
    async with serve(tenant_config(nats_server.url)) as client:
        t = Tenants(client, {}, {})
        hooks = [{"host": A, "url": f"https://{A}/hook"},
                 {"host": B, "url": f"https://{B}/hook", "secret": SECRET_B}]  # fmt: skip
        r = await t.as_admin("POST", "/sip/hooks", json={"hooks": hooks})
        assert r.status_code == 200, r.text
        for host in (A, B):
            await seed_records(nats_client, host)
            await seed_dead_letter(jetstream, host)
        for host in (A, B, STATIC_HOST):
            minted = await t.mint(host)
            assert minted.status_code == 200, minted.text
            t.tokens[host], t.token_ids[host] = minted.json()["token"], minted.json()["token_id"]
        yield t
