"""The audit log: one SIP_AUDIT record per accepted change of every kind, by whom, with
the request id; never a secret, a token or a header value; read back by GET /sip/audit."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext

from sayna_sip.common import audit, contracts, topology
from sayna_sip.common.hosts import host_token
from sayna_sip.common.secretbox import fingerprint
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import ingress_config, serve
from tests.ingress.tenants import (
    EV,
    SECRET_B,
    A,
    B,
    Tenants,
    seed_records,
)

NEW_SECRET = "whsec_Q0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0M="
OTHER_SECRET = "a-plain-secret-of-more-than-16-chars"
UPSERT_A = {"host": A, "url": f"https://{A}/v2?key=q", "secret": NEW_SECRET}


async def _stored(js: JetStreamContext) -> list[tuple[str, bytes]]:
    """Every message of SIP_AUDIT, raw: subject and bytes."""
    info = await js.stream_info(topology.SIP_AUDIT)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(topology.SIP_AUDIT, seq)
        out.append((msg.subject or "", msg.data or b""))
    return out


async def _records(js: JetStreamContext) -> list[dict[str, Any]]:
    return [json.loads(data) for _, data in await _stored(js)]


async def test_every_change_kind_is_recorded_once_with_who_and_the_request_id(
    tenants: Tenants, jetstream: JetStreamContext
) -> None:
    t = tenants
    start = len(await _records(jetstream))
    changes: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/sip/hooks", {"hooks": [UPSERT_A]}, "upsert_hooks"),
        ("POST", f"/sip/hooks/{A}/rotate-secret", {"secret": OTHER_SECRET}, "rotate_secret"),
        ("POST", f"/sip/hooks/{A}/disable", {}, "disable_hook"),
        ("POST", f"/sip/hooks/{A}/enable", {}, "enable_hook"),
        ("POST", f"/sip/hooks/{A}/replay", {"since": "1h"}, "replay"),
        ("POST", "/sip/dead-letters/redrive", {"host": A}, "redrive"),
        ("POST", f"/sip/hooks/{A}/access-tokens", {"ttl": "2h"}, "mint_access_token"),
        ("POST", f"/sip/hooks/{A}/access-tokens/revoke", {}, "revoke_access_tokens"),
        ("DELETE", "/sip/hooks", {"hosts": [A]}, "delete_hooks"),
    ]
    answers = []
    for i, (method, path, body, _) in enumerate(changes):
        r = await t.client.request(method, path, json=body,
                                   headers={**_admin(), "X-Request-Id": f"req-{i}"})  # fmt: skip
        assert r.status_code == 200, (path, r.text)
        assert r.headers["x-request-id"] == f"req-{i}"
        answers.append(r.json())
    records = (await _records(jetstream))[start:]
    assert [r["action"] for r in records] == [c[3] for c in changes]
    for i, rec in enumerate(records):
        assert rec["v"] == audit.AUDIT_VERSION and rec["at"].endswith("Z")
        assert rec["actor"] == "admin" and rec["host"] == A and rec["via"] == "api"
        assert rec["request_id"] == f"req-{i}"
    by = {r["action"]: r for r in records}
    assert by["upsert_hooks"]["fields"] == [
        "events",
        "headers",
        "ordering",
        "rate_limit",
        "secret",
        "url",
    ]
    assert by["upsert_hooks"]["values"]["url"] == f"https://{A}/v2"  # no query kept
    assert by["rotate_secret"]["values"] == {"fingerprint": fingerprint(OTHER_SECRET)}
    assert by["disable_hook"]["values"] == {"enabled": False}
    assert by["redrive"]["values"]["redriven"] == 1
    minted = answers[6]
    assert by["mint_access_token"]["fields"] == ["access_token"]
    assert by["mint_access_token"]["values"] == {
        "token_id": minted["token_id"],
        "expires_at": minted["expires_at"],
        "ttl": 7200.0,
    }
    assert by["revoke_access_tokens"]["fields"] == ["access_tokens"]
    assert by["revoke_access_tokens"]["values"] == {"generation": 1}


async def test_a_tenants_change_is_recorded_under_its_token_id(
    tenants: Tenants, jetstream: JetStreamContext
) -> None:
    t = tenants
    r = await t.as_tenant(A, "POST", f"/sip/hooks/{A}/disable", json={})
    assert r.status_code == 200
    rec = (await _records(jetstream))[-1]
    assert rec["actor"] == t.token_ids[A] and rec["host"] == A
    assert rec["request_id"] == r.headers["x-request-id"] and rec["request_id"].startswith("req_")


async def test_refused_and_read_only_requests_are_not_recorded(
    tenants: Tenants, jetstream: JetStreamContext
) -> None:
    t = tenants
    before = await _records(jetstream)
    assert (await t.as_admin("POST", "/sip/hooks", json={"hooks": []})).status_code == 400
    assert (await t.as_tenant(A, "POST", f"/sip/hooks/{B}/disable", json={})).status_code == 404
    assert (await t.as_tenant(A, "POST", f"/sip/hooks/{A}/test", json={})).status_code == 503
    assert (await t.as_admin("GET", "/sip/hooks")).status_code == 200
    assert await _records(jetstream) == before


async def test_no_record_holds_a_secret_or_a_token(
    tenants: Tenants, jetstream: JetStreamContext
) -> None:
    t = tenants
    rotated = (await t.as_admin("POST", f"/sip/hooks/{B}/rotate-secret", json={})).json()
    await t.as_admin("POST", "/sip/hooks", json={"hooks": [{"host": B, "url": f"https://{B}/h",
                                                            "secret": NEW_SECRET}]})  # fmt: skip
    await t.as_admin("POST", f"/sip/hooks/{B}/rotate-secret", json={"secret": OTHER_SECRET})
    raw = b"".join(data for _, data in await _stored(jetstream))
    for secret in (SECRET_B, rotated["secret"], NEW_SECRET, OTHER_SECRET, *t.tokens.values()):
        assert secret.encode() not in raw
        assert secret.removeprefix("whsec_").encode() not in raw


async def test_records_are_filed_by_host_and_read_back_newest_first(
    tenants: Tenants, jetstream: JetStreamContext
) -> None:
    t = tenants
    for _ in range(3):
        await t.as_admin("POST", f"/sip/hooks/{B}/disable", json={})
    subjects = {s for s, _ in await _stored(jetstream)}
    assert f"sip.audit.{host_token(B)}" in subjects
    first = (await t.as_admin("GET", "/sip/audit", params={"host": B, "limit": 2})).json()
    assert [r["host"] for r in first["records"]] == [B, B]
    assert first["records"][0]["seq"] > first["records"][1]["seq"]
    rest = await t.as_admin(
        "GET", "/sip/audit", params={"host": B, "limit": 100, "cursor": first["next_cursor"]}
    )
    seqs = [r["seq"] for r in rest.json()["records"]]
    assert seqs and max(seqs) < first["records"][1]["seq"]
    assert (await t.as_admin("GET", "/sip/audit", params={"since": "1s"})).status_code == 200
    everyone = (await t.as_admin("GET", "/sip/audit")).json()["records"]
    assert {r["host"] for r in everyone} >= {A, B}
    assert (await t.as_admin("GET", "/sip/audit", params={"cursor": "x"})).status_code == 400


def _admin() -> dict[str, str]:
    from tests.ingress.tenants import ADMIN, bearer

    return bearer(ADMIN)


def test_a_record_without_a_version_reads_as_version_1() -> None:
    old = b'{"at":"2026-01-01T00:00:00Z","actor":"admin","action":"x","later":"ignored"}'
    assert audit.decode(old).v == 1


def test_values_pass_an_allow_list_and_urls_lose_their_query() -> None:
    rec = audit.record(actor="admin", action="x", fields=["secret", "headers"],
                       values={"secret": "s3cr3t", "headers": {"X-Key": "v"},
                               "url": "https://h/p?token=t#f", "enabled": True})  # fmt: skip
    assert rec.values == {"url": "https://h/p", "enabled": True}
    assert rec.fields == ["headers", "secret"]


def test_a_record_too_large_for_the_server_drops_its_values() -> None:
    rec = audit.record(actor="admin", action="x", values={"url": "https://h/" + "p" * 400})
    small = audit.encode(rec, max_payload=300)
    assert len(small) <= 300 and audit.decode(small).truncated is True
    assert audit.decode(small).values == {}
    assert audit.decode(audit.encode(rec, 1 << 20)).values == rec.values


@pytest.mark.parametrize("host", [A, None])
def test_subjects(host: str | None) -> None:
    subject = contracts.audit_subject(host)
    assert subject == (f"sip.audit.{host_token(A)}" if host else "sip.audit._all")


HEADER_VALUE = "hv-secret-api-key-of-tenant-a"
# Bodies of the write routes that need one ({} otherwise), by (method, path in the schema).
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/sip/hooks"): {"hooks": [{"host": A, "url": f"https://{A}/hook"}]},
    ("delete", "/sip/hooks"): {"hosts": [A]},
    ("post", "/sip/hooks/{host}/endpoints"): {
        "id": "second", "url": f"https://{A}/second", "headers": {"X-Api-Key": HEADER_VALUE}},
    ("patch", "/sip/hooks/{host}/endpoints/{id}"): {"events": ["room_started"]},
    ("post", "/sip/hooks/{host}/replay"): {"since": "1h"},
    ("post", "/sip/hooks/{host}/endpoints/{id}/replay"): {"since": "1h"},
    ("post", "/sip/dead-letters/redrive"): {"host": A},
}  # fmt: skip


def _order(route: tuple[str, str]) -> tuple[int, str]:
    """Deletes last (the endpoint's before the host's), everything else as listed."""
    method, path = route
    return (0 if method != "delete" else 2 if path == "/sip/hooks" else 1, path)


async def test_every_write_route_accepted_leaves_one_record_and_refused_none(
    tenants: Tenants, jetstream: JetStreamContext
) -> None:
    """Generated from the OpenAPI schema, so a write route added later is checked too."""
    t = tenants
    spec = (await t.client.get("/schema/openapi.json")).json()
    routes = sorted(
        ((m, p) for p, item in spec["paths"].items() if p.startswith("/sip/")
         for m in item if m in ("post", "put", "patch", "delete")),
        key=_order,
    )  # fmt: skip
    accepted = []
    for method, path in routes:
        url = path.replace("{host}", A).replace("{id}", "second").replace("{event_id}", EV[A])
        before = len(await _records(jetstream))
        r = await t.client.request(method.upper(), url, json=BODIES.get((method, path), {}),
                                   headers=_admin())  # fmt: skip
        new = (await _records(jetstream))[before:]
        if r.status_code >= 300:
            assert new == [], (method, path, r.status_code)
            assert path.endswith("/test"), (method, path, r.status_code, r.text)  # no forwarder
            continue
        accepted.append(path)
        assert len(new) == 1, (method, path, new)
        assert new[0]["action"] and new[0]["actor"] == "admin", new[0]
        assert new[0]["host"] == A, (method, path, new[0])
        if "{id}" in path:
            assert new[0]["endpoint"] == "second", (method, path, new[0])
    assert len(accepted) >= 15, accepted
    raw = b"".join(data for _, data in await _stored(jetstream))
    assert HEADER_VALUE.encode() not in raw


async def test_with_auth_off_changes_are_recorded_as_anonymous_and_records_read(
    nats_server: NatsServer, jetstream: JetStreamContext, nats_client: Nats
) -> None:
    async with serve(ingress_config(nats_server.url)) as client:
        r = await client.post("/sip/hooks", json={"hooks": [{"host": A, "url": f"https://{A}/h"}]})
        assert r.status_code == 200, r.text
        rec = (await _records(jetstream))[-1]
        assert (rec["actor"], rec["action"], rec["host"]) == ("anonymous", "upsert_hooks", A)
        await seed_records(nats_client, A)
        got = await client.get(f"/sip/deliveries/{EV[A]}")
        assert got.status_code == 200 and [a["host"] for a in got.json()["attempts"]] == [A, A]


async def test_every_api_answer_carries_a_request_id_and_keeps_only_a_sane_one(
    tenants: Tenants,
) -> None:
    t = tenants
    for sent in ("abc.DEF_1:2-3", "x" * 64):
        r = await t.client.get("/sip/hooks", headers={**_admin(), "X-Request-Id": sent})
        assert r.headers["x-request-id"] == sent
    made = set()
    for bad in ("has space", "x" * 65, "", "a/b", None):
        headers = _admin() if bad is None else {**_admin(), "X-Request-Id": bad}
        r = await t.client.get("/sip/hooks", headers=headers)
        assert re.fullmatch(r"req_[0-9a-f]{16}", r.headers["x-request-id"]), (bad, r.headers)
        made.add(r.headers["x-request-id"])
    assert len(made) == 5  # one of its own each
    refused = await t.client.get("/sip/hooks")  # an error answer too
    assert refused.status_code == 401 and refused.headers["x-request-id"].startswith("req_")
    assert "x-request-id" not in (await t.client.get("/healthz")).headers


async def test_stored_and_failed_records_are_counted_and_the_change_still_answers(
    tenants: Tenants, jetstream: JetStreamContext
) -> None:
    t = tenants
    before = await _audit_counts(t)
    assert (await t.as_admin("POST", f"/sip/hooks/{A}/disable", json={})).status_code == 200
    assert await _audit_counts(t) == (before[0] + 1, before[1])
    await jetstream.delete_stream(topology.SIP_AUDIT)
    r = await t.as_admin("POST", f"/sip/hooks/{A}/enable", json={})
    assert r.status_code == 200 and r.json()["enabled"] is True  # made: said so
    assert await _audit_counts(t) == (before[0] + 1, before[1] + 1)


async def _audit_counts(t: Tenants) -> tuple[float, float]:
    text = (await t.client.get("/metrics")).text
    found = dict(re.findall(r'^sayna_sip_ingress_audit_records_total\{outcome="(\w+)"\} (\S+)$',
                            text, re.M))  # fmt: skip
    return float(found.get("stored", 0)), float(found.get("failed", 0))


async def test_a_resend_to_one_endpoint_is_recorded_with_that_endpoint(
    tenants: Tenants, jetstream: JetStreamContext
) -> None:
    r = await tenants.as_admin("POST", f"/sip/deliveries/{EV[A]}/resend",
                               json={"endpoint": "default"})  # fmt: skip
    assert r.status_code == 200, r.text
    rec = (await _records(jetstream))[-1]
    assert (rec["action"], rec["host"], rec["endpoint"]) == ("resend_delivery", A, "default")
    assert rec["fields"] == ["endpoint", "event_id"]


async def test_a_resend_to_every_endpoint_is_recorded_with_its_event_and_no_endpoint(
    tenants: Tenants, jetstream: JetStreamContext
) -> None:
    r = await tenants.as_admin("POST", f"/sip/deliveries/{EV[A]}/resend", json={"endpoint": " "})
    assert r.status_code == 200, r.text
    rec = (await _records(jetstream))[-1]
    assert (rec["action"], rec["host"], rec.get("endpoint")) == ("resend_delivery", A, None)
    assert (rec["fields"], rec["values"]) == (["event_id"], {"event_ids": [EV[A]]})


async def test_a_redrive_is_recorded_with_its_filters_and_what_it_did(
    tenants: Tenants, jetstream: JetStreamContext
) -> None:
    body = {"since": "7d", "until": "2099-01-01T00:00:00Z", "event_ids": [EV[A], EV[B], " "]}
    r = await tenants.as_admin("POST", "/sip/dead-letters/redrive", json=body)
    assert (r.status_code, r.json()) == (200, {"redriven": 2, "skipped": 0, "truncated": False})
    rec = (await _records(jetstream))[-1]
    assert (rec["action"], rec.get("host")) == ("redrive", None)
    assert rec["fields"] == ["event_ids", "since", "until"]
    assert rec["values"] == {"since": "7d", "until": "2099-01-01T00:00:00Z", "count": 3,
                             "redriven": 2, "skipped": 0, "truncated": False}  # fmt: skip


async def test_a_replay_is_recorded_with_its_window_and_what_it_did(
    tenants: Tenants, jetstream: JetStreamContext
) -> None:
    r = await tenants.as_admin("POST", f"/sip/hooks/{A}/endpoints/default/replay",
                               json={"since": "1h", "until": "2099-01-01T00:00:00Z"})  # fmt: skip
    assert r.status_code == 200, r.text
    rec = (await _records(jetstream))[-1]
    assert (rec["action"], rec["host"], rec["endpoint"]) == ("endpoint_replay", A, "default")
    assert rec["fields"] == ["since", "until"]
    assert rec["values"] == {"since": "1h", "until": "2099-01-01T00:00:00Z",
                             "replayed": 1, "expired": 0, "truncated": False}  # fmt: skip
