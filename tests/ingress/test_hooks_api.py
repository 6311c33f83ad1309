"""GET/POST/DELETE /sip/hooks on the `sip_hooks` KV bucket of a real nats-server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.hook import Hook, HookEntry
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import STATIC_HOST, Client, ingress_config, serve

PATH = "/sip/hooks"
# What GET shows of a hook with no secret of its own, no filter, no headers, and enabled.
PLAIN: dict[str, Any] = {
    "events": None,
    "headers": None,
    "rate_limit": None,
    "ordering": None,
    "secrets": [],
    "enabled": True,
    "disabled_reason": None,
    "failing_since": None,
}


def plain(url: str) -> dict[str, Any]:
    """The fields of such a hook besides host and source: its one endpoint, `default`."""
    return {"url": url, **PLAIN, "endpoints": [{"url": url, "id": "default", **PLAIN}]}


def hook(host: str, url: str | None = None) -> dict[str, str]:
    return {"host": host, "url": url or f"https://hooks.example.net/{host}"}


async def delete(client: Client, hosts: list[str]) -> Any:
    return await client.request("DELETE", PATH, json={"hosts": hosts})


async def test_round_trip_is_visible_from_a_second_instance(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    config = ingress_config(nats_server.url)
    async with serve(config) as a, serve(config) as b:
        assert (await b.get(PATH)).json() == {"hooks": []}
        r = await a.post(PATH, json={"hooks": [hook("B.example.com"), hook("*.a.example.com")]})
        assert r.status_code == 200
        expected = [
            {"host": "*.a.example.com", "url": "https://hooks.example.net/*.a.example.com"},
            {"host": "b.example.com", "url": "https://hooks.example.net/B.example.com"},
        ]
        listed = (await b.get(PATH)).json()["hooks"]
        assert (
            listed
            == r.json()["hooks"]
            == [{**h, "source": "runtime", **plain(h["url"])} for h in expected]
        )

        # Same host in another case replaces; the list stays sorted by host.
        r = await b.post(PATH, json={"hooks": [hook("b.EXAMPLE.com", "https://new.example.net/")]})
        assert [(h["host"], h["url"]) for h in r.json()["hooks"]] == [
            ("*.a.example.com", "https://hooks.example.net/*.a.example.com"),
            ("b.example.com", "https://new.example.net/"),
        ]

        r = await a.request("DELETE", PATH, json={"hosts": ["B.example.com", "nope.example.com"]})
        assert r.status_code == 200
        assert r.json()["not_found"] == ["nope.example.com"]
        assert [h["host"] for h in (await b.get(PATH)).json()["hooks"]] == ["*.a.example.com"]

    entry = await (await jetstream.key_value(topology.HOOKS_BUCKET)).get("=2a_a_example_com")
    assert Hook.decode(entry.value or b"").source == "runtime"


async def test_config_hooks_are_listed_and_read_only(
    ingress: Client, jetstream: JetStreamContext
) -> None:
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    # As the provisioner writes them (and one that is no longer in this replica's config).
    for host in (STATIC_HOST, "legacy.example.com"):
        record = Hook.new(host, f"https://{host}/hook", "config")
        await kv.put(record.key, record.encode())
    listed = (await ingress.get(PATH)).json()["hooks"]
    assert [(h["host"], h["source"]) for h in listed] == [
        ("legacy.example.com", "config"),
        (STATIC_HOST, "config"),
    ]
    for host in (STATIC_HOST, STATIC_HOST.upper(), "legacy.example.com"):
        for r in (
            await ingress.post(PATH, json={"hooks": [hook(host)]}),
            await delete(ingress, [host]),
        ):
            assert r.status_code == 409, host
            assert r.json()["error"] == "config_hook"
            assert host.lower() in r.json()["message"]
    # A KV config record anywhere in the request refuses all of it: nothing half-applied.
    both = {"hooks": [hook("new.example.com"), hook("legacy.example.com")]}
    assert (await ingress.post(PATH, json=both)).status_code == 409
    assert (await ingress.get(PATH)).json()["hooks"] == listed


async def test_concurrent_posts_from_two_instances_lose_nothing(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    config = ingress_config(nats_server.url)
    async with serve(config) as a, serve(config) as b:

        async def writer(client: Client, name: str) -> None:
            for i in range(15):
                own = hook(f"{name}{i}.example.com")
                shared = hook("shared.example.com", f"https://{name}.example.net/{i}")
                r = await client.post(PATH, json={"hooks": [own, shared]})
                assert r.status_code == 200, r.text

        await asyncio.gather(writer(a, "a"), writer(b, "b"), writer(a, "c"), writer(b, "d"))
        hosts = [h["host"] for h in (await a.get(PATH)).json()["hooks"]]
    expected = {f"{n}{i}.example.com" for n in "abcd" for i in range(15)} | {"shared.example.com"}
    assert sorted(hosts) == hosts and set(hosts) == expected and len(hosts) == len(expected)


@pytest.mark.parametrize(
    ("body", "code", "named"),
    [
        (
            {"hooks": [hook("a.example.com", "http://a.example.com/h")]},
            "insecure_url",
            "a.example.com",
        ),
        (
            {"hooks": [hook("a.example.com"), hook("A.example.com")]},
            "duplicate_host",
            "a.example.com",
        ),
        ({"hooks": [hook("bad_host!")]}, "invalid_host", "bad_host!"),
        ({"hooks": [hook("*.com")]}, "invalid_host", "*.com"),
        ({"hooks": [hook("a.example.com", "https://")]}, "invalid_url", "has no host"),
        ({"hooks": [hook("a.example.com", "https://x:99999/")]}, "invalid_url", "a.example.com"),
        (
            {"hooks": [hook("a.example.com", "https://ex ample.com/")]},
            "invalid_url",
            "a.example.com",
        ),
        (
            {"hooks": [hook("a.example.com", "https://127.0.0.1/h")]},
            "blocked_target",
            "a.example.com",
        ),
        (
            {"hooks": [hook("a.example.com", "https://10.1.2.3/h")]},
            "blocked_target",
            "a.example.com",
        ),
        (
            {"hooks": [hook("a.example.com", "https://[::1]:8443/")]},
            "blocked_target",
            "a.example.com",
        ),
        (
            {"hooks": [hook("a.example.com", "https://169.254.169.254/")]},
            "blocked_target",
            "a.example.com",
        ),
        ({"hooks": []}, "empty_request", "hooks"),
        (
            {"hooks": [{"host": "a.example.com", "url": "https://a/", "secret": "x"}]},
            "invalid_secret",
            "secret",
        ),
        ({"hooks": [{"host": "a.example.com"}]}, "invalid_body", "url"),
        ({"hooks": [{**hook("a.example.com"), "rate_limit": 0}]}, "invalid_rate_limit", "a.exa"),
        ({"hooks": [{**hook("a.example.com"), "rate_limit": -2}]}, "invalid_rate_limit", "per"),
        ({"hooks": [{**hook("a.example.com"), "rate_limit": 1e6}]}, "invalid_rate_limit", "most"),
        ({"hooks": [{**hook("a.example.com"), "ordering": "room"}]}, "invalid_ordering", "call"),
        ({"hook": []}, "invalid_body", "`hook`"),
    ],
)
async def test_post_validation_errors_are_400_and_write_nothing(
    ingress: Client, body: dict[str, Any], code: str, named: str
) -> None:
    r = await ingress.post(PATH, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == code
    assert named in r.json()["message"]
    assert (await ingress.get(PATH)).json() == {"hooks": []}


async def test_one_bad_hook_rejects_the_whole_request(ingress: Client) -> None:
    body = {"hooks": [hook("good.example.com"), hook("bad.example.com", "http://x.example/")]}
    assert (await ingress.post(PATH, json=body)).status_code == 400
    body = {"hooks": [hook("good.example.com"), hook(STATIC_HOST)]}
    assert (await ingress.post(PATH, json=body)).status_code == 409
    assert (await ingress.get(PATH)).json() == {"hooks": []}


async def test_allowed_networks_admit_ip_literal_targets(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    config = ingress_config(nats_server.url, SIP_HOOK_ALLOW_NETWORKS="127.0.0.0/8")
    async with serve(config) as client:
        ok = await client.post(
            PATH, json={"hooks": [hook("a.example.com", "https://127.0.0.1:8443/")]}
        )
        blocked = await client.post(
            PATH, json={"hooks": [hook("b.example.com", "https://10.0.0.1/")]}
        )
    assert ok.status_code == 200
    assert blocked.json()["error"] == "blocked_target"


@pytest.mark.parametrize(
    ("hosts", "code"),
    [([], "empty_request"), (["not a host"], "invalid_host"), ([STATIC_HOST], "config_hook")],
)
async def test_delete_errors(ingress: Client, hosts: list[str], code: str) -> None:
    r = await delete(ingress, hosts)
    assert (r.status_code, r.json()["error"]) == ({"config_hook": 409}.get(code, 400), code)


async def test_delete_unknown_hosts_reports_them(ingress: Client) -> None:
    await ingress.post(PATH, json={"hooks": [hook("keep.example.com")]})
    r = await delete(ingress, ["gone.example.com", "GONE.example.com"])
    assert r.status_code == 200
    assert r.json() == {
        "hooks": [
            {
                "host": "keep.example.com",
                "source": "runtime",
                **plain("https://hooks.example.net/keep.example.com"),
            }
        ],
        "not_found": ["gone.example.com"],
    }


async def test_a_deleted_host_can_be_added_again(ingress: Client) -> None:
    for _ in range(2):
        assert (
            await ingress.post(PATH, json={"hooks": [hook("again.example.com")]})
        ).status_code == 200
        assert (await delete(ingress, ["again.example.com"])).json()["not_found"] == []
    assert (await ingress.get(PATH)).json() == {"hooks": []}


async def test_sip_disabled_lists_nothing_and_refuses_writes(
    nats_server: NatsServer,
) -> None:
    config = ingress_config(
        nats_server.url, SIP_ROOM_PREFIX=None, SIP_ALLOWED_ADDRESSES=None, SIP_HOOKS_JSON=None
    )
    async with serve(config) as client:
        assert (await client.get(PATH)).json() == {"hooks": []}
        for r in (
            await client.post(PATH, json={"hooks": [hook("a.example.com")]}),
            await delete(client, ["a.example.com"]),
        ):
            assert (r.status_code, r.json()["error"]) == (409, "sip_disabled")
            assert "SIP is not configured" in r.json()["message"]


TOKENS = '[{"id":"ops","secret":"ops-token-0123456789"},{"id":"ci","secret":"ci-token-0123456789"}]'


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        ("ops-token-0123456789", 401),  # no Bearer scheme
        ("Basic b3BzOnRva2Vu", 401),
        ("Bearer ops-token-0123456789", 200),
        ("bearer ci-token-0123456789", 200),
        ("Bearer single-token-0123456789", 200),
    ],
)
async def test_auth_required_guards_every_hooks_route(
    nats_server: NatsServer, jetstream: JetStreamContext, authorization: str | None, status: int
) -> None:
    config = ingress_config(
        nats_server.url,
        AUTH_REQUIRED="true",
        AUTH_API_SECRETS_JSON=TOKENS,
        AUTH_API_SECRET="single-token-0123456789",
    )
    headers = {"Authorization": authorization} if authorization else {}
    async with serve(config) as client:
        calls = [
            await client.get(PATH, headers=headers),
            await client.post(PATH, json={"hooks": [hook("a.example.com")]}, headers=headers),
            await client.request(
                "DELETE", PATH, json={"hosts": ["a.example.com"]}, headers=headers
            ),
        ]
        metrics = (await client.get("/metrics")).text  # never behind the token
    for r in calls:
        assert r.status_code == status, r.text
        if status == 401:
            assert r.json()["error"] == "unauthorized" and r.json()["message"]
    assert f'ingress_hook_api_calls_total{{method="GET",status="{status}"}} 1.0' in metrics


async def test_auth_off_needs_no_token(ingress: Client) -> None:
    assert (
        await ingress.get(PATH, headers={"Authorization": "Bearer whatever"})
    ).status_code == 200
    assert (await ingress.get(PATH)).status_code == 200


async def test_every_save_and_delete_leaves_one_log_line(
    ingress: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # The operator's audit trail of runtime changes: one line per hook saved or deleted.
    caplog.set_level(logging.INFO, logger="sayna_sip.ingress")
    await ingress.post(PATH, json={"hooks": [hook("Audit.example.com", "https://a.example.net/")]})
    await delete(ingress, ["audit.example.com", "never.example.com"])
    lines = [r.getMessage() for r in caplog.records if r.name == "sayna_sip.ingress"]
    assert [ln for ln in lines if ln.startswith("event=hook_")] == [
        "event=hook_saved host=audit.example.com url=https://a.example.net/ source=runtime"
        " own_secret=false",
        "event=hook_deleted host=audit.example.com",
    ]


def test_a_hook_write_never_shows_its_secret() -> None:
    write = HookEntry(
        host="a.example.com", url="https://a.example.net/", secret="s3cret-of-the-tenant"
    )
    assert "s3cret" not in repr(write) and "s3cret" not in str(write)


async def test_ordering_round_trips_and_unset_follows_sip_ordering(ingress: Client) -> None:
    r = await ingress.post(PATH, json={"hooks": [{**hook("a.example.com"), "ordering": "none"}]})
    assert r.status_code == 200, r.text
    assert [h["ordering"] for h in (await ingress.get(PATH)).json()["hooks"]] == ["none"]
    await ingress.post(PATH, json={"hooks": [hook("a.example.com")]})
    assert [h["ordering"] for h in (await ingress.get(PATH)).json()["hooks"]] == [None]


async def test_a_rate_limit_round_trips_and_changes_with_the_hook(ingress: Client) -> None:
    r = await ingress.post(PATH, json={"hooks": [{**hook("a.example.com"), "rate_limit": 2.5}]})
    assert r.status_code == 200, r.text
    assert [h["rate_limit"] for h in (await ingress.get(PATH)).json()["hooks"]] == [2.5]
    # A write replaces the settings: without rate_limit the hook has none again.
    await ingress.post(PATH, json={"hooks": [hook("a.example.com")]})
    assert [h["rate_limit"] for h in (await ingress.get(PATH)).json()["hooks"]] == [None]
