"""GET/POST/DELETE /sip/hooks: runtime hooks in NATS KV, behind the API-token guard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from litestar import Controller, Router, delete, get, post
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter

from sayna_sip.common import hook_secrets
from sayna_sip.common.config import AuthConfig, SipConfig
from sayna_sip.common.hook import Hook
from sayna_sip.common.labels import ErrorCode
from sayna_sip.ingress import endpoints, hookrules
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
    Rotated,
    RotateIn,
    TestSend,
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
    400: _err(
        "Invalid body, host, URL, secret or events (http://, credentials in the URL, "
        "duplicate host, blocked IP target in any numeric spelling, unknown LiveKit event, "
        "secret without SIP_SECRETS_KEY)"
    ),
    409: _err("Host defined in the static configuration, or SIP not configured"),
    415: _err("Body declared with a Content-Type other than application/json"),
}
_ONE = {**_WRITE, 404: _err("No hook for this host")}
_TEST = {
    **_COMMON,
    404: _err("No hook for this host"),
    503: _err("NATS unavailable, or no forwarder answered in time"),
}


def view(hook: Hook, sip: SipConfig | None) -> HookOut:
    return HookOut.of(hook, hook_secrets.static_secrets(hook, sip) if sip else ())


def _out(records: list[Hook], sip: SipConfig | None = None) -> list[HookOut]:
    return [view(r, sip) for r in records]


def _writable(ingress: IngressDep) -> tuple[SipConfig, HookStore]:
    if ingress.config.sip is None or ingress.hooks is None:
        raise Conflict(
            "SIP is not configured: runtime hooks are unavailable", ErrorCode.SIP_DISABLED
        )
    return ingress.config.sip, ingress.hooks


class HooksController(Controller):
    path = "/sip/hooks"
    tags = ["hooks"]
    security = [{BEARER_SCHEME: []}]

    @get(summary="List every hook with its source", responses=_COMMON)
    async def list_hooks(self, ingress: IngressDep) -> HookList:
        if ingress.hooks is None:
            return HookList(hooks=[])
        return HookList(hooks=_out(await ingress.hooks.all(), ingress.config.sip))

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
        return HookList(hooks=_out(records, sip))

    @delete(status_code=200, summary="Remove runtime hooks by host", responses=_WRITE)
    async def delete_hooks(
        self, ingress: IngressDep, data: Annotated[HostsDelete, Body(description="hosts to remove")]
    ) -> HookDeleteResult:
        sip, store = _writable(ingress)
        records, missing = await store.remove(hookrules.removals(data.hosts, sip))
        return HookDeleteResult(hooks=_out(records, sip), not_found=missing)

    @post(
        "/{host:str}/rotate-secret",
        status_code=200,
        summary="New signing secret (answered once); the previous one signs beside it for "
        "SIP_SECRET_OVERLAP",
        responses=_ONE,
    )
    async def rotate_secret(
        self,
        ingress: IngressDep,
        host: str,
        data: Annotated[RotateIn | None, Body(description="the new secret, or none")] = None,
    ) -> Rotated:
        sip, store = _writable(ingress)
        given = data.secret if data is not None else None
        secret, record = await endpoints.rotate(store, sip, hookrules.host(host), given)
        return Rotated(secret=secret, hook=view(record, sip))

    @post("/{host:str}/disable", status_code=200, summary="Stop delivering", responses=_ONE)
    async def disable_hook(self, ingress: IngressDep, host: str) -> HookOut:
        sip, store = _writable(ingress)
        return view(await endpoints.set_enabled(ingress, store, hookrules.host(host), False), sip)

    @post("/{host:str}/enable", status_code=200, summary="Deliver again", responses=_ONE)
    async def enable_hook(self, ingress: IngressDep, host: str) -> HookOut:
        sip, store = _writable(ingress)
        return view(await endpoints.set_enabled(ingress, store, hookrules.host(host), True), sip)

    @post(
        "/{host:str}/test",
        status_code=200,
        summary="One signed sip_hook_test delivery through a forwarder",
        responses=_TEST,
    )
    async def test_hook(self, ingress: IngressDep, host: str) -> TestSend:
        _, store = _writable(ingress)
        return await endpoints.test_send(ingress, store, hookrules.host(host))


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


def _json_only(app: ASGIApp) -> ASGIApp:
    """A body declared as something other than JSON is refused (415), not decoded anyway;
    a body without a Content-Type is read as JSON."""

    async def checked(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") in ("POST", "DELETE"):
            declared = dict(scope["headers"]).get(b"content-type")
            media = (declared or b"").split(b";")[0].strip().lower()
            if declared is not None and not (
                media == b"application/json" or media.endswith(b"+json")
            ):
                raise HTTPException(
                    status_code=415,
                    detail=f"request body must be application/json, not {media.decode('latin-1')}",
                )
        await app(scope, receive, send)

    return checked


def hooks_router(auth: AuthConfig, calls: Counter) -> Router:
    return Router(
        path="/",
        route_handlers=[HooksController],
        guards=[bearer_guard(auth)],
        middleware=[_counting(calls), _json_only],
    )
