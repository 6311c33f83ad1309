"""GET /sip/audit: who changed what, newest first (admin: any host; a tenant: its own)."""

from __future__ import annotations

from typing import Annotated

import nats.errors
from litestar import Controller, Router, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromQuery, QueryParameter

from sayna_sip.common import audit, deliveries
from sayna_sip.common.config import AuthConfig
from sayna_sip.common.deliveries import QueryError
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.streamscan import ScanError
from sayna_sip.ingress.auth import bearer_guard
from sayna_sip.ingress.errors import BadRequest, Unavailable
from sayna_sip.ingress.routes_deliveries import _host, _when
from sayna_sip.ingress.schemas import ErrorBody
from sayna_sip.ingress.schemas_records import AuditOut, AuditPage
from sayna_sip.ingress.state import IngressDep

BEARER_SCHEME = "ApiToken"
Limit = Annotated[int, QueryParameter(ge=1, le=deliveries.MAX_LIMIT, description="page size")]


def _err(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


_READ = {
    400: _err("A host, time, limit or cursor that cannot be used"),
    503: _err("NATS unavailable, or SIP not configured"),
}


class AuditController(Controller):
    path = "/sip/audit"
    tags = ["tenant access"]
    security = [{BEARER_SCHEME: []}]

    @get(summary="Audit records of accepted changes, newest first", responses=_READ)
    async def audit_log(
        self,
        ingress: IngressDep,
        host: FromQuery[str | None] = None,
        since: FromQuery[str | None] = None,
        limit: Limit = 100,
        cursor: FromQuery[str | None] = None,
    ) -> AuditPage:
        records = ingress.records
        if records is None:
            raise Unavailable("the audit log needs SIP and NATS configured",
                              ErrorCode.RECORDS_UNAVAILABLE)  # fmt: skip
        try:
            below = deliveries.parse_cursor(cursor) if cursor else None
        except QueryError as exc:
            raise BadRequest(str(exc), ErrorCode.INVALID_QUERY) from None
        name, start = _host(host), _when(since, "since")
        reader = records.audit_reader
        try:
            floor = await reader.seq_at(start) if start is not None else None
            if start is not None and floor is None:
                return AuditPage([], None)
            found, next_seq = await audit.page(
                reader, await records.audit_last_seq(), host=name, since_seq=floor,
                limit=limit, cursor=below,
            )  # fmt: skip
        except (ScanError, TimeoutError, nats.errors.Error) as exc:
            raise Unavailable(
                f"reading SIP_AUDIT failed: {exc}", ErrorCode.NATS_UNAVAILABLE
            ) from None
        return AuditPage([_out(s) for s in found], None if next_seq is None else str(next_seq))


def _out(stored: audit.StoredRecord) -> AuditOut:
    r = stored.record
    return AuditOut(
        stored.seq, r.v, r.at, r.actor, r.action, r.host, r.endpoint, r.request_id, r.via,
        r.fields, r.values, r.truncated,
    )  # fmt: skip


def audit_router(auth: AuthConfig) -> Router:
    return Router(path="/", route_handlers=[AuditController], guards=[bearer_guard(auth)])
