"""`POST /sip/deliveries/{event_id}/resend` on the whole pipeline (real NATS, real HTTPS
sinks, auth on): the event arrives again, signed, with the same webhook-id, at the
endpoint asked for or at each it went to; a tenant token reaches only its own host's
events; every resend is in the audit log; and the refusals say why."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import nats
import pytest

from sayna_sip.common import topology
from tests.fixtures.https_sink import HttpsSink
from tests.fixtures.livekit import LiveKitTwirp, sip_event
from tests.fixtures.nats import NatsServer
from tests.integration.test_endpoints import GLOBAL, HOST, Pipeline, call, start_pipeline, verifies

pytestmark = pytest.mark.timeout(60)
ADMIN = "admin-token-resend-0123456789"
OTHER = "pbx.tenant-b.example"


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _ok(r: Any) -> dict[str, Any]:
    response = await r
    assert response.status_code < 300, response.text
    got: dict[str, Any] = response.json()
    return got


async def _routed(api: httpx.AsyncClient, event_id: str) -> dict[str, Any]:
    """The delivery once its route is recorded (records land a moment after)."""
    async with asyncio.timeout(10):
        while True:
            r = await api.get(f"/sip/deliveries/{event_id}", headers=_as(ADMIN))
            if r.status_code == 200 and r.json()["route"] is not None:
                got: dict[str, Any] = r.json()
                return got
            await asyncio.sleep(0.05)


def _resend(p: Pipeline, event_id: str, token: str, body: Any = None) -> Any:
    headers = {**_as(token), "Content-Type": "application/json"}
    content = b"" if body is None else None  # bodyless, as the console's "Resend to all"
    return p.api.post(
        f"/sip/deliveries/{event_id}/resend", json=body, content=content, headers=headers
    )


async def test_resend_delivers_the_event_again_to_its_tenant_only_and_is_audited(
    nats_server: NatsServer, livekit_server: LiveKitTwirp, https_sink: HttpsSink
) -> None:
    async for p in start_pipeline(
        nats_server, livekit_server, https_sink, AUTH_REQUIRED="true", AUTH_API_SECRET=ADMIN
    ):
        admin = _as(ADMIN)
        hooks = [{"host": HOST, "url": https_sink.url("/a")},
                 {"host": OTHER, "url": https_sink.url("/b")}]  # fmt: skip
        await _ok(p.api.post("/sip/hooks", json={"hooks": hooks}, headers=admin))
        crm = {"id": "crm", "url": https_sink.url("/crm")}
        await _ok(p.api.post(f"/sip/hooks/{HOST}/endpoints", json=crm, headers=admin))
        tokens = {}
        for host in (HOST, OTHER):
            minted = await _ok(p.api.post(f"/sip/hooks/{host}/access-tokens", json={},
                                          headers=admin))  # fmt: skip
            tokens[host] = minted
        event = call()
        await p.post_event(event)
        (first,) = await https_sink.wait_for(1, "/a")
        await https_sink.wait_for(1, "/crm")
        route = (await _routed(p.api, event["id"]))["route"]
        assert route["endpoints"] == ["default", "crm"]

        # Another host's token: the same 404 as an unknown id, and nothing sent.
        refused = await _resend(p, event["id"], tokens[OTHER]["token"], {})
        assert refused.status_code == 404, refused.text
        gone = {"error": "not_found", "message": f"no delivery record of event {event['id']}"}
        assert refused.json() == gone

        # The tenant's own token, one endpoint: that endpoint gets it again, same id.
        mine = await _resend(p, event["id"], tokens[HOST]["token"], {"endpoint": "crm"})
        assert mine.status_code == 200, mine.text
        assert mine.json() == {"event_id": event["id"], "host": HOST, "endpoints": ["crm"],
                               "status": "ok"}  # fmt: skip
        again = (await https_sink.wait_for(2, "/crm"))[1]
        assert again.headers["webhook-id"] == first.headers["webhook-id"] == event["id"]
        assert again.body == first.body and verifies(GLOBAL, again)

        # The admin, no body: every endpoint it went to.
        every = await _resend(p, event["id"], ADMIN)
        assert every.status_code == 200 and every.json()["endpoints"] == ["default", "crm"]
        resent = (await https_sink.wait_for(2, "/a"))[1]
        assert resent.headers["webhook-id"] == event["id"] and verifies(GLOBAL, resent)
        await https_sink.wait_for(3, "/crm")

        # Refusals, each with its code; none is a change, none is audited.
        unknown = await _resend(p, "EV_never_seen", ADMIN)
        assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
        typo = await _resend(p, event["id"], ADMIN, {"endpoint": "crn"})
        assert (typo.status_code, typo.json()["error"]) == (404, "endpoint_not_found")
        assert "went to default, crm" in typo.json()["message"]
        stray = sip_event(room="sip-call-9", to="sip:+1555@nobody.example")
        await p.post_event(stray)
        assert (await _routed(p.api, stray["id"]))["route"]["outcome"] == "unknown_host"
        nowhere = await _resend(p, stray["id"], ADMIN)
        assert (nowhere.status_code, nowhere.json()["error"]) == (409, "not_routed")
        await _expire(nats_server.url, route["lk_seq"])  # as LK_EVENTS_MAX_AGE would
        late = await _resend(p, event["id"], ADMIN)
        assert (late.status_code, late.json()["error"]) == (410, "event_expired")

        # Who resent what, to which endpoint, and when: one record per resend made.
        audit = await _ok(p.api.get("/sip/audit", params={"host": HOST}, headers=admin))
        resends = [r for r in audit["records"] if r["action"] == "resend_delivery"]
        assert [(r["actor"], r["endpoint"], r["values"]) for r in reversed(resends)] == [
            (tokens[HOST]["token_id"], "crm", {"event_ids": [event["id"]]}),
            ("admin", None, {"event_ids": [event["id"]]}),
        ]
        assert all(r["request_id"] and r["host"] == HOST for r in resends)
        assert len(https_sink.received("/a")) == 2 and not https_sink.received("/b")

        schema = await _ok(p.api.get("/schema/openapi.json"))
        answers = schema["paths"]["/sip/deliveries/{event_id}/resend"]["post"]["responses"]
        assert {"200", "401", "403", "404", "409", "410", "415"} <= set(answers)


async def _expire(url: str, seq: int) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_msg(topology.LK_EVENTS, seq)
    finally:
        await nc.close()
