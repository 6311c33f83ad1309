"""GET /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio

from litestar import MediaType, Response, get
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sayna_sip.common import natsconn
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.topology import TopologyError, check_topology
from sayna_sip.ingress.schemas import ErrorBody, Health
from sayna_sip.ingress.state import IngressDep

READY_TIMEOUT_S = 2.0


@get(
    "/healthz",
    summary="Liveness: the process serves HTTP and its NATS connection was not closed for good",
    responses={
        503: ResponseSpec(
            ErrorBody, description="NATS closed the connection: restart", generate_examples=False
        )
    },
    tags=["health"],
)
async def healthz(ingress: IngressDep) -> Response[Health | ErrorBody]:
    if ingress.nc is not None and natsconn.lost(ingress.nc):
        return Response(
            ErrorBody(ErrorCode.NATS_CLOSED, "the NATS connection was closed for good; restart"),
            status_code=503,
        )
    return Response(Health(status="ok"))


@get(
    "/readyz",
    summary=(
        "Readiness: a webhook sent now would be stored (NATS trouble shorter than the store's"
        " retry budget, such as a stream leader election, is ridden through); always ready"
        " with SIP off"
    ),
    responses={
        503: ResponseSpec(
            ErrorBody,
            description="NATS failing for longer than the store budget, a webhook refused, or"
            " the topology missing",
            generate_examples=False,
        )
    },
    tags=["health"],
)
async def readyz(ingress: IngressDep) -> Response[Health | ErrorBody]:
    if ingress.nc is None or ingress.js is None:
        return Response(Health(status="ready"))
    health = ingress.store_health
    if not ingress.nc.is_connected:  # reconnecting: the store waits for it, within budget
        health.trouble()
    else:
        try:
            await asyncio.wait_for(check_topology(ingress.js, ingress.config), READY_TIMEOUT_S)
        except TopologyError as exc:  # a definite answer, not a passing failure
            return Response(ErrorBody(ErrorCode.TOPOLOGY_MISSING, str(exc)), status_code=503)
        except Exception:  # any NATS failure (an election, a timeout): trouble, whatever its type
            health.trouble()
        else:
            health.fine()
    why = health.why_not()
    if why is not None:
        return Response(ErrorBody(ErrorCode.NATS_UNAVAILABLE, why), status_code=503)
    return Response(Health(status="ready"))


@get(
    "/metrics",
    summary="Prometheus metrics",
    media_type=MediaType.TEXT,
    tags=["health"],
    response_description="Prometheus text exposition format",
)
async def metrics(ingress: IngressDep) -> Response[bytes]:
    # Litestar appends `; charset=utf-8` to text/* media types: leave it out here
    media_type = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")
    return Response(generate_latest(ingress.registry), media_type=media_type)
