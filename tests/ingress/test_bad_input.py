"""Hostile or sloppy input gets a 4xx with a fixed code, never a 500: deep nesting,
credentials in hook URLs, numeric loopback spellings, URL limits, content types, 405."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nats.js import JetStreamContext

from tests.fixtures.livekit import API_KEY, API_SECRET, sign_webhook
from tests.ingress.conftest import Client

PATH = "/sip/hooks"


def upsert(url: str, host: str = "a.example.com") -> dict[str, Any]:
    return {"hooks": [{"host": host, "url": url}]}


async def test_deeply_nested_webhook_is_400(ingress: Client) -> None:
    body = b'{"a":' * 1000 + b"1" + b"}" * 1000
    headers = {"Authorization": sign_webhook(body, API_KEY, API_SECRET)}

    r = await ingress.post("/livekit/webhook", content=body, headers=headers)

    assert (r.status_code, r.json()["error"]) == (400, "invalid_json")


@pytest.mark.parametrize("depth", [3000, 20000])
async def test_deeply_nested_hooks_bodies_are_400(ingress: Client, depth: int) -> None:
    body = b'{"hooks":' + b"[" * depth + b"]" * depth + b"}"
    for method in ("POST", "DELETE"):
        r = await ingress.request(
            method, PATH, content=body, headers={"Content-Type": "application/json"}
        )
        assert (r.status_code, r.json()["error"]) == (400, "invalid_body"), method


async def test_credentials_in_a_hook_url_are_refused_and_never_echoed(ingress: Client) -> None:
    r = await ingress.post(PATH, json=upsert("https://admin:S3cretPW@x.example.com/a"))

    assert (r.status_code, r.json()["error"]) == (400, "url_credentials")
    assert "S3cretPW" not in r.text
    assert (await ingress.get(PATH)).json() == {"hooks": []}


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",
        "0x7f000001",
        "127.1",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "017700000001",
        "127.0.1",
        "0",
        "0xa9fea9fe",  # 169.254.169.254, the cloud metadata address
        "[::ffff:7f00:1]",
        "10.1",
    ],
)
async def test_numeric_spellings_of_blocked_addresses_are_refused(
    ingress: Client, host: str
) -> None:
    r = await ingress.post(PATH, json=upsert(f"https://{host}/h"))

    assert (r.status_code, r.json()["error"]) == (400, "blocked_target"), r.text


@pytest.mark.parametrize(
    "url",
    ["https://1.2.3.999/h", "https://1.2.3.4.5/h", "https://08.1.1.1/h", "https://4294967296/h"],
)
async def test_numeric_hosts_that_cannot_be_normalised_are_refused(
    ingress: Client, url: str
) -> None:
    r = await ingress.post(PATH, json=upsert(url))

    assert (r.status_code, r.json()["error"]) == (400, "invalid_url"), r.text


async def test_a_public_address_in_numeric_spelling_is_accepted(ingress: Client) -> None:
    r = await ingress.post(PATH, json=upsert("https://134744072/h"))  # 8.8.8.8
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://x.example.com:0/h", "invalid_url"),
        ("https://" + "a" * 63 + "." + ("b" * 63 + ".") * 3 + "com/h", "invalid_url"),  # 260
        ("https://*.example.com/h", "invalid_url"),
        ("https://x.example.com/" + "p" * 2100, "invalid_body"),  # the schema's maxLength
        ("", "invalid_body"),
    ],
)
async def test_url_limits(ingress: Client, url: str, code: str) -> None:
    r = await ingress.post(PATH, json=upsert(url))
    assert (r.status_code, r.json()["error"]) == (400, code), r.text


async def test_empty_host_is_400(ingress: Client) -> None:
    r = await ingress.post(PATH, json=upsert("https://x.example.com/", host=""))
    assert (r.status_code, r.json()["error"]) == (400, "invalid_body")


async def test_hooks_body_declared_as_text_is_415(ingress: Client) -> None:
    body = json.dumps(upsert("https://x.example.com/h"))
    for media in ("text/plain", "application/x-www-form-urlencoded"):
        r = await ingress.post(PATH, content=body, headers={"Content-Type": media})
        assert (r.status_code, r.json()["error"]) == (415, "unsupported_media_type")
    assert (await ingress.get(PATH)).json() == {"hooks": []}
    r = await ingress.post(PATH, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200


async def test_webhook_accepts_livekits_content_type_and_none(
    ingress: Client, jetstream: JetStreamContext
) -> None:
    for n, headers in enumerate(({"Content-Type": "application/webhook+json"}, {})):
        body = json.dumps({"id": f"EV_ct{n}", "event": "room_started"}).encode()
        headers = {**headers, "Authorization": sign_webhook(body, API_KEY, API_SECRET)}
        r = await ingress.post("/livekit/webhook", content=body, headers=headers)
        assert r.status_code == 200, r.text


async def test_malformed_json_has_a_fixed_code(ingress: Client) -> None:
    for content in (b"\x00", b"{", b"[1,"):
        r = await ingress.post(PATH, content=content, headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()["error"]) == (400, "invalid_body"), r.text


async def test_405_names_the_allowed_methods(ingress: Client) -> None:
    r = await ingress.put(PATH, json={})
    assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
    assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST", "DELETE"}
    r = await ingress.get("/livekit/webhook")
    assert r.status_code == 405 and "POST" in r.headers["allow"]
