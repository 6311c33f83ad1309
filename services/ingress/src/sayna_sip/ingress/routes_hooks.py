"""GET/POST/DELETE /sip/hooks: runtime hooks in NATS KV, behind the API-token guard."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from litestar import Controller, Request, Router, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromPath
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter

from sayna_sip.common import hook_secrets
from sayna_sip.common.config import AuthConfig, SipConfig
from sayna_sip.common.hook import Hook, HookEntry
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.secretbox import fingerprint
from sayna_sip.ingress import endpoints, hookrules, writeguard
from sayna_sip.ingress.audit_trail import Change, note
from sayna_sip.ingress.auth import bearer_guard
from sayna_sip.ingress.errors import Conflict, NotFound
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
    SecretOut,
    TestSend,
)
from sayna_sip.ingress.state import IngressDep

BEARER_SCHEME = "ApiToken"


def err(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


_COMMON = {
    503: err("NATS KV unavailable"),
}
_WRITE = {
    **_COMMON,
    **writeguard.RESPONSES,
    400: err(
        "Invalid body, host, URL, secret or events (http://, credentials in the URL, "
        "duplicate host, blocked IP target in any numeric spelling, unknown LiveKit event, "
        "secret without SIP_SECRETS_KEY)"
    ),
    409: err("Host defined in the static configuration, or SIP not configured"),
}
_ONE = {**_WRITE, 404: err("No hook for this host")}
_TEST = {
    **_COMMON,
    **writeguard.RESPONSES,
    400: err("Invalid host"),
    404: err("No hook for this host"),
    503: err("NATS unavailable, or no forwarder answered in time"),
}


def view(hook: Hook, sip: SipConfig | None) -> HookOut:
    if sip is None:
        return HookOut.of(hook)
    return HookOut.of(hook, lambda endpoint: hook_secrets.static_secrets(hook, endpoint, sip))


def _upserted(write: HookEntry) -> Change:
    """The settings as set (values through the audit allow-list); a secret by name only."""
    settings = write.settings()
    fields = [*settings, *(["secret"] if write.secret else [])]
    return Change(write.host, fields, settings)


def _out(records: list[Hook], sip: SipConfig | None = None) -> list[HookOut]:
    return [view(r, sip) for r in records]


def writable(ingress: IngressDep) -> tuple[SipConfig, HookStore]:
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

    @get(
        "/{host:str}",
        summary="One host's hook",
        responses={**_COMMON, 400: err("Invalid host"), 404: _ONE[404]},
    )
    async def get_hook(self, ingress: IngressDep, host: FromPath[str]) -> HookOut:
        if ingress.hooks is None:
            raise NotFound(f"no hook for host '{host}'", ErrorCode.HOOK_NOT_FOUND)
        return view(await ingress.hooks.get(hookrules.host(host)), ingress.config.sip)

    @post(
        status_code=200, summary="Add hooks, or replace those with the same host", responses=_WRITE
    )
    async def upsert_hooks(
        self,
        ingress: IngressDep,
        request: Request[Any, Any, Any],
        data: Annotated[HooksUpsert, Body(description="hooks to add or replace")],
    ) -> HookList:
        sip, store = writable(ingress)
        writes = hookrules.upserts(data.hooks, sip)
        records = await store.upsert(writes)
        note(request, *(_upserted(w) for w in writes))
        return HookList(hooks=_out(records, sip))

    @delete(status_code=200, summary="Remove runtime hooks by host", responses=_WRITE)
    async def delete_hooks(
        self,
        ingress: IngressDep,
        request: Request[Any, Any, Any],
        data: Annotated[HostsDelete, Body(description="hosts to remove")],
    ) -> HookDeleteResult:
        sip, store = writable(ingress)
        hosts = hookrules.removals(data.hosts, sip)
        records, missing = await store.remove(hosts)
        gone = [h for h in hosts if h not in missing]
        if ingress.generations is not None:  # a host added again later is not its tokens'
            for host in gone:
                await ingress.generations.bump(host)
        note(request, *(Change(h, ("hook",)) for h in gone))
        return HookDeleteResult(hooks=_out(records, sip), not_found=missing)

    @post(
        "/{host:str}/rotate-secret",
        operation_class=writeguard.JsonOperation,
        status_code=200,
        summary="New signing secret (answered once); the previous one signs beside it for "
        "SIP_SECRET_OVERLAP",
        responses=_ONE,
    )
    async def rotate_secret(
        self,
        ingress: IngressDep,
        request: Request[Any, Any, Any],
        host: FromPath[str],
        data: Annotated[RotateIn | None, Body(description="the new secret, or none")] = None,
    ) -> Rotated:
        sip, store = writable(ingress)
        given = data.secret if data is not None else None
        secret, record, _, early = await endpoints.rotate(store, sip, hookrules.host(host), given)
        note(request, Change(record.host, ("secrets",), {"fingerprint": fingerprint(secret)}))
        expired = [SecretOut(s.id, s.fingerprint, record.updated_at) for s in early]
        return Rotated(secret=secret, hook=view(record, sip), expired_early=expired)

    @post(
        "/{host:str}/disable",
        operation_class=writeguard.JsonOperation,
        status_code=200,
        summary="Stop delivering",
        responses=_ONE,
    )
    async def disable_hook(
        self, ingress: IngressDep, request: Request[Any, Any, Any], host: FromPath[str]
    ) -> HookOut:
        sip, store = writable(ingress)
        record, _ = await endpoints.set_enabled(ingress, store, hookrules.host(host), False)
        note(request, Change(record.host, ("enabled",), {"enabled": False}))
        return view(record, sip)

    @post(
        "/{host:str}/enable",
        operation_class=writeguard.JsonOperation,
        status_code=200,
        summary="Deliver again",
        responses=_ONE,
    )
    async def enable_hook(
        self, ingress: IngressDep, request: Request[Any, Any, Any], host: FromPath[str]
    ) -> HookOut:
        sip, store = writable(ingress)
        record, _ = await endpoints.set_enabled(ingress, store, hookrules.host(host), True)
        note(request, Change(record.host, ("enabled",), {"enabled": True}))
        return view(record, sip)

    @post(
        "/{host:str}/test",
        operation_class=writeguard.JsonOperation,
        status_code=200,
        summary="One signed sip_hook_test delivery through a forwarder",
        responses=_TEST,
    )
    async def test_hook(self, ingress: IngressDep, host: FromPath[str]) -> TestSend:
        _, store = writable(ingress)
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


def hooks_router(auth: AuthConfig, calls: Counter, more: Sequence[type[Controller]] = ()) -> Router:
    """The hooks API behind the token guard; `more`: controllers under /sip/hooks too."""
    return Router(
        path="/",
        route_handlers=[HooksController, *more],
        guards=[bearer_guard(auth)],
        middleware=[_counting(calls)],
    )
