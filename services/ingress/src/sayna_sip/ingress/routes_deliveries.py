"""Delivery records, hook stats, dead letters, redrive, replay and resend: the operator's
"what happened to event X" API, behind the same token guard as /sip/hooks.

Handlers parse the query, call the shared code in `sayna_sip.common` (the `dlq` and
`deliveries` CLI commands call the same), and shape the answer.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Router, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromPath, FromQuery, QueryParameter

from sayna_sip.common import deadletters, deliveries, replay
from sayna_sip.common.config import AuthConfig
from sayna_sip.common.contracts import Header
from sayna_sip.common.deliveries import QueryError, parse_when, rfc3339, view
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hook import DEFAULT_ENDPOINT
from sayna_sip.common.hosts import normalize_host
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.logs import shorten
from sayna_sip.ingress import writeguard
from sayna_sip.ingress.access import Access
from sayna_sip.ingress.audit_trail import Change, note
from sayna_sip.ingress.auth import bearer_guard
from sayna_sip.ingress.errors import BadRequest, Conflict, Gone, IngressError, Unavailable
from sayna_sip.ingress.records_state import Records
from sayna_sip.ingress.schemas import ErrorBody
from sayna_sip.ingress.schemas_records import (
    AttemptOut,
    DeadLetterOut,
    DeadLetterPage,
    DeliveryOut,
    DeliveryPage,
    HookStats,
    RedriveIn,
    RedriveResult,
    ReplayIn,
    ReplayResult,
    ResendIn,
    ResendResult,
    RouteOut,
)
from sayna_sip.ingress.state import IngressDep

BEARER_SCHEME = "ApiToken"
TENANT_SELF = {"tenant": "self"}  # the handler limits a tenant to its host (access.py)


class NotFound(IngressError):
    status = 404
    code: str = ErrorCode.NOT_FOUND


def _err(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


_READ = {
    400: _err("A filter, time, limit or cursor that cannot be used"),
    503: _err("NATS unavailable, or SIP not configured"),
}


_WRITE = {**_READ, **writeguard.RESPONSES}


def _records(ingress: IngressDep) -> Records:
    if ingress.records is None:
        raise Unavailable(
            "delivery records need SIP and NATS configured", ErrorCode.RECORDS_UNAVAILABLE
        )
    return ingress.records


def _when(value: str | None, name: str, code: str = ErrorCode.INVALID_QUERY) -> float | None:
    """A time filter; blank is absent. `code`: invalid_query for a query parameter,
    invalid_body for a body field."""
    if value is None or not value.strip():
        return None
    try:
        return parse_when(value)
    except QueryError as exc:
        raise BadRequest(f"{name}: {exc}", code) from None


def _named(value: str, code: str = ErrorCode.INVALID_QUERY) -> str:
    """A host as hooks are keyed; a path's blank host is no host (400), not every host."""
    try:
        return normalize_host(value)
    except ConfigError as exc:
        raise BadRequest(shorten(str(exc)), code) from None


def _host(value: str | None, code: str = ErrorCode.INVALID_QUERY) -> str | None:
    """A filter's host: blank is no filter."""
    return None if value is None or not value.strip() else _named(value, code)


def _out(record: Any) -> RouteOut | AttemptOut:
    data = view(record)
    target = RouteOut if data.pop("kind") == "route" else AttemptOut
    return msgspec.convert(data, target)  # type: ignore[return-value]


Limit = Annotated[int, QueryParameter(ge=1, le=deliveries.MAX_LIMIT, description="page size")]


class DeliveriesController(Controller):
    path = "/sip"
    tags = ["deliveries"]
    security = [{BEARER_SCHEME: []}]

    @get("/deliveries/{event_id:str}", summary="An event's route and attempts", responses={
        **_READ, 404: _err("No record of this event id")}, opt=TENANT_SELF)  # fmt: skip
    async def delivery(
        self, ingress: IngressDep, access: NamedDependency[Access], event_id: FromPath[str]
    ) -> DeliveryOut:
        records = _records(ingress)
        found = await records.deliveries.event(event_id)
        # A tenant sees an event routed to its host, and only that host's attempts.
        if found is None or not access.sees(getattr(found.route, "host", None)):
            raise NotFound(f"no delivery record of event {event_id}", ErrorCode.NOT_FOUND)
        route = _out(found.route) if found.route is not None else None
        shown = [a for a in found.attempts if access.sees(a.host)]
        original = await records.replayer.original(found.route) if found.route else None
        body = original[0].decode(errors="replace") if original is not None else None
        return DeliveryOut(
            found.event_id, found.event, found.room, route,  # type: ignore[arg-type]
            [_out(a) for a in shown], body, rfc3339(deliveries.next_retry(shown)),  # type: ignore[misc]
        )  # fmt: skip

    @post("/deliveries/{event_id:str}/resend", status_code=200, opt=TENANT_SELF,
          summary="Deliver one event again, with its webhook-id",
          operation_class=writeguard.JsonOperation, responses={
        **_WRITE, 404: _err("No record of this event id (code not_found), or not an endpoint "
                            "it went to (endpoint_not_found)"),
        409: _err("The event went to no hook (its route: not_sip, unknown_host, …): not_routed"),
        410: _err("Its body is past LK_EVENTS_MAX_AGE: event_expired")})  # fmt: skip
    async def resend_delivery(
        self,
        ingress: IngressDep,
        access: NamedDependency[Access],
        request: Request[Any, Any, Any],
        event_id: FromPath[str],
        data: Annotated[ResendIn | None, Body(description="the endpoint, or none")] = None,
    ) -> ResendResult:
        records = _records(ingress)
        found = await records.deliveries.event(event_id)
        route = found.route if found is not None else None
        if found is None or not access.sees(getattr(route, "host", None)):
            raise NotFound(f"no delivery record of event {event_id}", ErrorCode.NOT_FOUND)
        given = data.endpoint if data is not None else None
        endpoint = (given or "").strip() or None  # blank is absent
        try:
            sent = await records.replayer.resend(event_id, route, endpoint)
        except replay.NotRouted as exc:
            raise Conflict(str(exc), ErrorCode.NOT_ROUTED) from None
        except replay.NotItsEndpoint as exc:
            raise NotFound(str(exc), ErrorCode.ENDPOINT_NOT_FOUND) from None
        except replay.BodyGone as exc:
            raise Gone(str(exc)) from None
        assert route is not None
        fields = ("event_id", "endpoint") if endpoint else ("event_id",)
        note(request, Change(route.host, fields, {"event_ids": [event_id]}, endpoint=endpoint))
        return ResendResult(event_id, route.host, list(sent))

    @get("/deliveries", summary="Routing and attempt records, newest first", responses=_READ)
    async def list_deliveries(
        self,
        ingress: IngressDep,
        host: FromQuery[str | None] = None,
        outcome: FromQuery[str | None] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        limit: Limit = 50,
        cursor: FromQuery[str | None] = None,
    ) -> DeliveryPage:
        if outcome is not None and not (outcome.isascii() and outcome.replace("_", "").isalpha()):
            raise BadRequest(f"outcome '{shorten(outcome)}' is not an outcome name",
                             ErrorCode.INVALID_QUERY)  # fmt: skip
        try:
            if cursor:  # refused even when no record is read (schemathesis: since=0667-…)
                deliveries.parse_cursor(cursor)
            page = await _records(ingress).deliveries.page(
                host=_host(host), outcome=outcome or None, since=_when(since, "since"),
                until=_when(until, "until"), limit=limit, cursor=cursor or None,
            )  # fmt: skip
        except QueryError as exc:
            raise BadRequest(str(exc), ErrorCode.INVALID_QUERY) from None
        return DeliveryPage([_out(r) for r in page.items], page.next_cursor)

    @get("/hooks/{host:str}/stats", summary="A hook's attempts over a window", responses={
        **_READ, 404: _err("A tenant token: not its host")})  # fmt: skip
    async def hook_stats(
        self, ingress: IngressDep, host: FromPath[str], window: FromQuery[str] = "24h"
    ) -> HookStats:
        return await _stats(ingress, host, DEFAULT_ENDPOINT, window)

    @get("/hooks/{host:str}/endpoints/{id:str}/stats",
         summary="An endpoint's attempts over a window", responses={
        **_READ, 404: _err("A tenant token: not its host")})  # fmt: skip
    async def endpoint_stats(
        self,
        ingress: IngressDep,
        host: FromPath[str],
        id: FromPath[str],
        window: FromQuery[str] = "24h",
    ) -> HookStats:
        return await _stats(ingress, host, id, window)

    @get("/dead-letters", summary="Dead letters, newest first", responses=_READ)
    async def dead_letters(
        self,
        ingress: IngressDep,
        host: FromQuery[str | None] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        limit: Limit = 100,
        cursor: FromQuery[str | None] = None,
    ) -> DeadLetterPage:
        records = _records(ingress)
        try:
            below = deliveries.parse_cursor(cursor) if cursor else None
        except QueryError as exc:
            raise BadRequest(str(exc), ErrorCode.INVALID_QUERY) from None
        letters, next_seq = await deadletters.page(
            records.dead_reader, records.dead_last_seq, host=_host(host),
            since=_when(since, "since"), until=_when(until, "until"), limit=limit, cursor=below,
        )  # fmt: skip
        return DeadLetterPage(
            [_letter(x) for x in letters], None if next_seq is None else str(next_seq)
        )

    @post("/dead-letters/redrive", status_code=200, summary="Deliver dead letters again",
          responses=_WRITE, opt=TENANT_SELF)  # fmt: skip
    async def redrive(
        self,
        ingress: IngressDep,
        access: NamedDependency[Access],
        request: Request[Any, Any, Any],
        data: Annotated[RedriveIn, Body(description="filters")],
    ) -> RedriveResult:
        body = ErrorCode.INVALID_BODY
        host, since = _host(data.host, body), _when(data.since, "since", body)
        until = _when(data.until, "until", body)
        event_ids = [e for e in data.event_ids or () if e.strip()] or None
        if host is None and since is None and event_ids is None:  # blank is absent
            raise BadRequest("give host, since or event_ids (all of them: since=7d)", body)
        records = _records(ingress)
        host = access.host_filter(host)  # a tenant's: its own host only
        done = await deadletters.redrive(
            records.js, records.dead_reader, host=host, since=since, until=until,
            event_ids=event_ids, budget=deadletters.REDRIVE_BUDGET_S,
        )  # fmt: skip
        note(request, Change(host, [k for k in ("host", "since", "until", "event_ids")
                                    if getattr(data, k) is not None], {
            "since": data.since, "until": data.until,
            "count": None if data.event_ids is None else len(data.event_ids),
            "redriven": done.redriven, "skipped": done.skipped, "truncated": done.truncated,
        }))  # fmt: skip
        return RedriveResult(done.redriven, done.skipped, done.truncated)

    @post("/hooks/{host:str}/replay", status_code=200, summary="Deliver a window's events again",
          responses={**_WRITE, 404: _err("A tenant token: not its host")})  # fmt: skip
    async def replay(
        self,
        ingress: IngressDep,
        request: Request[Any, Any, Any],
        host: FromPath[str],
        data: Annotated[ReplayIn, Body(description="window")],
    ) -> ReplayResult:
        return await _replay(ingress, request, host, None, data)

    @post("/hooks/{host:str}/endpoints/{id:str}/replay", status_code=200,
          summary="Deliver a window's events again to one endpoint",
          responses={**_WRITE, 404: _err("A tenant token: not its host")})  # fmt: skip
    async def endpoint_replay(
        self,
        ingress: IngressDep,
        request: Request[Any, Any, Any],
        host: FromPath[str],
        id: FromPath[str],
        data: Annotated[ReplayIn, Body(description="window")],
    ) -> ReplayResult:
        return await _replay(ingress, request, host, id, data)


async def _stats(ingress: IngressDep, host: str, endpoint: str, window: str) -> HookStats:
    """The per-host form counts the `default` endpoint's attempts."""
    seconds = deliveries.STATS_WINDOWS.get(window)
    if seconds is None:
        raise BadRequest(f"window must be one of {', '.join(deliveries.STATS_WINDOWS)}",
                         ErrorCode.INVALID_QUERY)  # fmt: skip
    name = _named(host)
    records = _records(ingress)
    st = await records.deliveries.stats(name, seconds, endpoint=endpoint)
    return HookStats(
        host=name, window=window, attempts=st.attempts, delivered=st.delivered,
        failed=st.failed, success_rate=st.success_rate, p50_ms=st.p50_ms, p99_ms=st.p99_ms,
        last_success_at=rfc3339(st.last_success_at),
        last_failure_at=rfc3339(st.last_failure_at),
        state=await records.hook_state(name, endpoint), truncated=st.truncated,
        endpoint=endpoint, rate_limit=await records.rate_limit(name, endpoint),
        current_rate=round(st.recent / deliveries.RECENT_WINDOW, 2),
    )  # fmt: skip


async def _replay(
    ingress: IngressDep,
    request: Request[Any, Any, Any],
    host: str,
    endpoint: str | None,
    data: ReplayIn,
) -> ReplayResult:
    """Per host: every endpoint each event went to; per endpoint: that one only."""
    since = _when(data.since, "since", ErrorCode.INVALID_BODY)
    until = _when(data.until, "until", ErrorCode.INVALID_BODY)
    if since is None:
        raise BadRequest("'since' is required (a time or a duration back, like 1h)",
                         ErrorCode.INVALID_BODY)  # fmt: skip
    records = _records(ingress)
    name = _named(host)
    done = await records.replayer.replay(name, since, until, endpoint)
    note(request, Change(name, ("since", "until"), {
        "since": data.since, "until": data.until, "replayed": done.replayed,
        "expired": done.expired, "truncated": done.truncated}, endpoint=endpoint))  # fmt: skip
    return ReplayResult(done.replayed, done.expired, done.truncated, rfc3339(done.next_since))


def _letter(x: deadletters.DeadLetter) -> DeadLetterOut:
    status = x.get(Header.LAST_STATUS)
    return DeadLetterOut(
        seq=x.seq, host=x.host, event_id=x.event_id, event=x.get(Header.EVENT),
        room=x.get(Header.ROOM), reason=x.get(Header.DEAD_REASON),
        attempts=int(x.get(Header.ATTEMPT) or 0), last_status=int(status) if status else None,
        last_error=x.get(Header.LAST_ERROR), url=x.get(Header.HOOK_URL),
        dead_at=rfc3339(x.dead_at), endpoint=x.get(Header.ENDPOINT) or DEFAULT_ENDPOINT,
    )  # fmt: skip


def deliveries_router(auth: AuthConfig) -> Router:
    return Router(path="/", route_handlers=[DeliveriesController], guards=[bearer_guard(auth)])
