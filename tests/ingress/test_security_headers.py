"""What a browser is told about every answer: no sniffing, no framing, nothing loaded
(the console loads its own scripts and styles only), and one Content-Type each."""

from __future__ import annotations

import pytest

from sayna_sip.common.config import ServerConfig
from tests.fixtures.livekit import API_KEY, API_SECRET
from tests.ingress.conftest import serve

# SIP off: no NATS needed, every route is still there (the guards answer first).
CONFIG = ServerConfig.from_env(
    {
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "AUTH_REQUIRED": "true",
        "AUTH_API_SECRET": "ops-token-0123456789",
    }
)


def _strict(csp: str) -> bool:
    directives = {d.strip() for d in csp.split(";")}
    return {"default-src 'none'", "frame-ancestors 'none'"} <= directives


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("/console", "text/html; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
    ],
)
async def test_the_console_forbids_framing_and_sniffing_and_sends_one_content_type(
    path: str, media: str
) -> None:
    async with serve(CONFIG) as client:
        r = await client.get(path)
    assert r.status_code == 200
    assert r.headers.get_list("content-type") == [media]
    assert r.headers.get_list("x-content-type-options") == ["nosniff"]
    [csp] = r.headers.get_list("content-security-policy")
    assert _strict(csp), csp
    assert "script-src 'self'" in csp and "unsafe" not in csp
    # A new release's script is fetched again, not run from a stale cache; the portal's
    # address (its token is in the fragment) is never sent on as a Referer.
    assert r.headers.get_list("cache-control") == ["no-cache"]
    assert r.headers.get_list("referrer-policy") == ["no-referrer"]


async def test_an_unknown_console_asset_is_a_404_naming_it() -> None:
    async with serve(CONFIG) as client:
        r = await client.get("/console/nothing.js")
    assert (r.status_code, r.json()) == (
        404,
        {"error": "not_found", "message": "no console asset 'nothing.js'"},
    )


async def test_every_api_answer_forbids_framing_sniffing_and_loading() -> None:
    token = {"Authorization": "Bearer ops-token-0123456789"}
    async with serve(CONFIG) as client:
        answers = {
            "hooks": await client.get("/sip/hooks", headers=token),
            "unauthorized": await client.get("/sip/hooks"),
            "refused body": await client.post(
                "/sip/hooks", content=b"x", headers={**token, "Content-Type": "text/plain"}
            ),
            "healthz": await client.get("/healthz"),
            "metrics": await client.get("/metrics"),
            "schema": await client.get("/schema/openapi.json"),
            "no such route": await client.get("/sip/nothing-here"),
            "no such asset": await client.get("/console/nothing.js"),
        }
    assert answers["hooks"].status_code == 200
    assert answers["unauthorized"].status_code == 401
    for name, r in answers.items():
        assert r.headers.get_list("x-content-type-options") == ["nosniff"], name
        [csp] = r.headers.get_list("content-security-policy")
        assert csp == "default-src 'none'; frame-ancestors 'none'", name
    metrics = answers["metrics"].headers.get_list("content-type")
    assert metrics == ["text/plain; version=1.0.0; charset=utf-8"]


@pytest.mark.parametrize(
    ("path", "methods"),
    [("/sip/hooks", "DELETE, GET, OPTIONS, POST"),
     ("/sip/hooks/a.example.com/endpoints", "GET, OPTIONS, POST"),
     ("/sip/hooks/a.example.com/endpoints/default", "DELETE, GET, OPTIONS, PATCH")],
)  # fmt: skip
async def test_options_lists_every_method_of_the_path(path: str, methods: str) -> None:
    # Handlers of one path in two routers: Litestar's OPTIONS listed one router's only.
    async with serve(CONFIG) as client:
        r = await client.options(path, headers={"Authorization": "Bearer ops-token-0123456789"})
    assert (r.status_code, r.headers["allow"]) == (204, methods)
