"""GET/POST/DELETE /sip/hooks: runtime hooks in NATS KV, behind the API-token guard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from litestar import Controller, Router, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter

from sayna_sip.common.config import AuthConfig, SipConfig
from sayna_sip.common.hookstore import HookRecord
from sayna_sip.ingress import hookrules
from sayna_sip.ingress.auth import bearer_guard
from sayna_sip.ingress.errors import Conflict
from sayna_sip.ingress.hooks import HookStore
from sayna_sip.ingress.schemas import (
    ErrorBody,
    HookDeleteResult,
    HookList,
    HookOut,
    HooksUpsert,
    HostsDelete,
)
from sayna_sip.ingress.state import IngressDep

BEARER_SCHEME = "ApiToken"


def _err(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


_COMMON = {
    401: _err("AUTH_REQUIRED is on and the Bearer token is missing or unknown"),
    503: _err("NATS KV unavailable"),
}
_WRITE = {
    **_COMMON,
    400: _err("Invalid body, host or URL (http://, duplicate host, blocked IP literal target)"),
    409: _err("Host defined in the static configuration, or SIP not configured"),
}


def _out(records: list[HookRecord]) -> list[HookOut]:
    return [HookOut(host=r.host, url=r.url, source=r.source) for r in records]


def _writable(ingress: IngressDep) -> tuple[SipConfig, HookStore]:
    if ingress.config.sip is None or ingress.hooks is None:
        raise Conflict("SIP is not configured: runtime hooks are unavailable", "sip_disabled")
    return ingress.config.sip, ingress.hooks


class HooksController(Controller):
    path = "/sip/hooks"
    tags = ["hooks"]
    security = [{BEARER_SCHEME: []}]

    @get(summary="List every hook with its source", responses=_COMMON)
    async def list_hooks(self, ingress: IngressDep) -> HookList:
        if ingress.hooks is None:
            return HookList(hooks=[])
        return HookList(hooks=_out(await ingress.hooks.all()))

    @post(
        status_code=200, summary="Add hooks, or replace those with the same host", responses=_WRITE
    )
    async def upsert_hooks(
        self,
        ingress: IngressDep,
        data: Annotated[HooksUpsert, Body(description="hooks to add or replace")],
    ) -> HookList:
        sip, store = _writable(ingress)
        records = await store.upsert(hookrules.upserts(data.hooks, sip))
        return HookList(hooks=_out(records))

    @delete(status_code=200, summary="Remove runtime hooks by host", responses=_WRITE)
    async def delete_hooks(
        self, ingress: IngressDep, data: Annotated[HostsDelete, Body(description="hosts to remove")]
    ) -> HookDeleteResult:
        sip, store = _writable(ingress)
        records, missing = await store.remove(hookrules.removals(data.hosts, sip))
        return HookDeleteResult(hooks=_out(records), not_found=missing)


def _counting(counter: Counter) -> Callable[..., ASGIApp]:
    """Route middleware counting hook API calls by method and final status (401s too)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            async def counted(message: Message) -> None:
                if message["type"] == "http.response.start":
                    counter.labels(scope.get("method", ""), str(message["status"])).inc()
                await send(message)

            await app(scope, receive, counted)

        return wrapped

    return middleware


def hooks_router(auth: AuthConfig, calls: Counter) -> Router:
    return Router(
        path="/",
        route_handlers=[HooksController],
        guards=[bearer_guard(auth)],
        middleware=[_counting(calls)],
    )
