"""/sip/hooks/{host}/endpoints: a host's endpoints, and per endpoint the managed-endpoint
actions (rotate-secret, disable, enable, test). Stats and replay per endpoint are the
records API's (routes_deliveries). Same guard, counters and JSON-only rule as /sip/hooks.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.params import Body, FromPath

from sayna_sip.common import hook_secrets
from sayna_sip.common.config import SipConfig
from sayna_sip.common.hook import Endpoint, EndpointEntry, Hook
from sayna_sip.common.secretbox import fingerprint
from sayna_sip.ingress import endpoints, hookrules, writeguard
from sayna_sip.ingress.audit_trail import Change, note
from sayna_sip.ingress.routes_hooks import BEARER_SCHEME, err, writable
from sayna_sip.ingress.schemas import (
    EndpointList,
    EndpointOut,
    EndpointRotated,
    RotateIn,
    SecretOut,
    TestSend,
)
from sayna_sip.ingress.state import IngressDep

_READ = {
    400: err("Invalid host or endpoint id"),
    404: err("No hook for this host, or no such endpoint"),
    409: err("SIP not configured"),
    503: err("NATS KV unavailable"),
}
_WRITE = {
    **_READ,
    400: err(
        "Invalid body, endpoint id, URL, events, headers (invalid_headers names the header) "
        "or secret; a taken id; one endpoint more than SIP_MAX_ENDPOINTS; the default "
        "endpoint removed alone"
    ),
    409: err("Host defined in the static configuration, or SIP not configured"),
    **writeguard.RESPONSES,
}
_TEST = {
    **_READ,
    **writeguard.RESPONSES,
    503: err("NATS unavailable, or no forwarder answered in time"),
}


def _out(hook: Hook, endpoint: Endpoint, sip: SipConfig) -> EndpointOut:
    return EndpointOut.of(endpoint, hook.source, hook_secrets.static_secrets(hook, endpoint, sip))


def _changed(host: str, endpoint_id: str, fields: dict[str, Any], secret: object) -> Change:
    """The fields written (values through the audit allow-list: never a header value); a
    secret by name only."""
    values = {k: v for k, v in fields.items() if k != "secret"}
    return Change(host, [*values, *(["secret"] if secret else [])], values, endpoint=endpoint_id)


def _all(hook: Hook, sip: SipConfig) -> EndpointList:
    return EndpointList(hook.host, [_out(hook, e, sip) for e in hook.endpoint_list()])


class EndpointsController(Controller):
    path = "/sip/hooks/{host:str}/endpoints"
    tags = ["hooks"]
    security = [{BEARER_SCHEME: []}]

    @get(summary="A host's endpoints, default first", responses=_READ)
    async def list_endpoints(self, ingress: IngressDep, host: FromPath[str]) -> EndpointList:
        sip, store = writable(ingress)
        return _all(await store.get(hookrules.host(host)), sip)

    @post(status_code=201, summary="Add an endpoint to a runtime hook", responses=_WRITE)
    async def add_endpoint(
        self,
        ingress: IngressDep,
        request: Request[Any, Any, Any],
        host: FromPath[str],
        data: Annotated[EndpointEntry, Body(description="the endpoint; id generated if absent")],
    ) -> EndpointOut:
        sip, store = writable(ingress)
        name = hookrules.host(host)
        made = await endpoints.add(store, sip, name, data)
        note(request, _changed(name, made.id, data.settings(), data.secret))
        return _out(await store.get(name), made, sip)

    @get("/{id:str}", summary="One endpoint", responses=_READ)
    async def get_endpoint(
        self, ingress: IngressDep, host: FromPath[str], id: FromPath[str]
    ) -> EndpointOut:
        sip, store = writable(ingress)
        hook, endpoint = await endpoints.get(store, hookrules.host(host), id)
        return _out(hook, endpoint, sip)

    @patch(
        "/{id:str}",
        summary="Change the fields sent (url, events, headers, secret); the others stay",
        responses=_WRITE,
    )
    async def patch_endpoint(
        self,
        ingress: IngressDep,
        request: Request[Any, Any, Any],
        host: FromPath[str],
        id: FromPath[str],
        data: Annotated[dict[str, Any], Body(description="the fields to change")],
    ) -> EndpointOut:
        sip, store = writable(ingress)
        name = hookrules.host(host)
        made = await endpoints.patch(store, sip, name, id, data)
        note(request, _changed(name, id, data, data.get("secret")))
        return _out(await store.get(name), made, sip)

    @delete("/{id:str}", status_code=200, summary="Remove an endpoint", responses=_WRITE,
            operation_class=writeguard.JsonOperation)  # fmt: skip
    async def delete_endpoint(
        self,
        ingress: IngressDep,
        request: Request[Any, Any, Any],
        host: FromPath[str],
        id: FromPath[str],
    ) -> EndpointList:
        sip, store = writable(ingress)
        record = await endpoints.remove(store, hookrules.host(host), id)
        note(request, Change(record.host, ("endpoint",), endpoint=id))
        return _all(record, sip)

    @post(
        "/{id:str}/rotate-secret",
        operation_class=writeguard.JsonOperation,
        status_code=200,
        summary="New signing secret of an endpoint (answered once); the previous one signs "
        "beside it for SIP_SECRET_OVERLAP",
        responses=_WRITE,
    )
    async def rotate_endpoint_secret(
        self,
        ingress: IngressDep,
        request: Request[Any, Any, Any],
        host: FromPath[str],
        id: FromPath[str],
        data: Annotated[RotateIn | None, Body(description="the new secret, or none")] = None,
    ) -> EndpointRotated:
        sip, store = writable(ingress)
        given = data.secret if data is not None else None
        secret, hook, made, early = await endpoints.rotate(
            store, sip, hookrules.host(host), given, id
        )
        values = {"fingerprint": fingerprint(secret)}
        note(request, Change(hook.host, ("secrets",), values, endpoint=id))
        expired = [SecretOut(s.id, s.fingerprint, hook.updated_at) for s in early]
        return EndpointRotated(secret=secret, endpoint=_out(hook, made, sip), expired_early=expired)

    @post("/{id:str}/disable", status_code=200, summary="Stop delivering to an endpoint",
          operation_class=writeguard.JsonOperation,
          responses=_WRITE)  # fmt: skip
    async def disable_endpoint(
        self,
        ingress: IngressDep,
        request: Request[Any, Any, Any],
        host: FromPath[str],
        id: FromPath[str],
    ) -> EndpointOut:
        sip, store = writable(ingress)
        hook, made = await endpoints.set_enabled(ingress, store, hookrules.host(host), False, id)
        note(request, Change(hook.host, ("enabled",), {"enabled": False}, endpoint=id))
        return _out(hook, made, sip)

    @post("/{id:str}/enable", status_code=200, summary="Deliver to an endpoint again",
          operation_class=writeguard.JsonOperation,
          responses=_WRITE)  # fmt: skip
    async def enable_endpoint(
        self,
        ingress: IngressDep,
        request: Request[Any, Any, Any],
        host: FromPath[str],
        id: FromPath[str],
    ) -> EndpointOut:
        sip, store = writable(ingress)
        hook, made = await endpoints.set_enabled(ingress, store, hookrules.host(host), True, id)
        note(request, Change(hook.host, ("enabled",), {"enabled": True}, endpoint=id))
        return _out(hook, made, sip)

    @post(
        "/{id:str}/test",
        operation_class=writeguard.JsonOperation,
        status_code=200,
        summary="One signed sip_hook_test delivery to an endpoint through a forwarder",
        responses=_TEST,
    )
    async def test_endpoint(
        self, ingress: IngressDep, host: FromPath[str], id: FromPath[str]
    ) -> TestSend:
        _, store = writable(ingress)
        return await endpoints.test_send(ingress, store, hookrules.host(host), id)
