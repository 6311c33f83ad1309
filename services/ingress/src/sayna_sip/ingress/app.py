"""Composition root: `create_app(config)` builds the ingress; NATS opens in its lifespan.

Nothing is built at import time, so tests build apps with any config. With SIP
disabled the ingress needs no NATS at all: it verifies webhooks and answers 200.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from nats.aio.client import Client

from sayna_sip.common import metrics as common_metrics
from sayna_sip.common import natsconn, topology
from sayna_sip.common.audit import AuditLog
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.logs import quote
from sayna_sip.common.version import __version__
from sayna_sip.ingress import (
    audit_trail,
    openapi_rules,
    routes_access,
    routes_audit,
    routes_console,
    routes_deliveries,
    routes_endpoints,
    routes_health,
    routes_hooks,
    routes_webhook,
    writeguard,
)
from sayna_sip.ingress.access import provide_access
from sayna_sip.ingress.access_tokens import Generations, TokenSigner
from sayna_sip.ingress.allow_header import fix_allow
from sayna_sip.ingress.errors import (
    IngressError,
    http_error_handler,
    ingress_error_handler,
    internal_error_handler,
    nesting_error_handler,
)
from sayna_sip.ingress.hooks import HookStore
from sayna_sip.ingress.intake import (
    PUBLISH_BUDGET_S,
    PUBLISH_TIMEOUT_S,
    EventPublisher,
    WebhookIntake,
)
from sayna_sip.ingress.metrics import IngressMetrics
from sayna_sip.ingress.readiness import StoreHealth
from sayna_sip.ingress.records_state import Records
from sayna_sip.ingress.security_headers import add_security_headers
from sayna_sip.ingress.state import Ingress, provide_ingress
from sayna_sip.ingress.webhook import WebhookVerifier

log = logging.getLogger("sayna_sip.ingress")
T = TypeVar("T")


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="sayna-sip ingress",
        version=__version__,
        description="LiveKit webhook intake (to JetStream) and runtime SIP hook management.",
        path="/schema",
        components=Components(
            security_schemes={
                routes_hooks.BEARER_SCHEME: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="AUTH_API_SECRET / AUTH_API_SECRETS_JSON token (admin), or a "
                    "tenant token from POST /sip/hooks/{host}/access-tokens, when AUTH_REQUIRED",
                )
            }
        ),
    )


def create_app(
    config: ServerConfig,
    *,
    publish_timeout: float = PUBLISH_TIMEOUT_S,
    publish_budget: float = PUBLISH_BUDGET_S,
) -> Litestar:
    registry = common_metrics.new_registry()
    metrics = IngressMetrics.create(registry)
    lk = config.livekit
    verifier = WebhookVerifier(lk.api_key, lk.api_secret) if lk.api_key and lk.api_secret else None
    ingress = Ingress(
        config,
        registry,
        metrics,
        WebhookIntake(verifier, None, metrics),
        StoreHealth(publish_budget),
    )
    box = config.sip.secret_box if config.sip is not None else None
    ingress.signer = TokenSigner(box) if box is not None else None

    def publisher(nc: Client) -> EventPublisher:
        return EventPublisher(nc, metrics, ingress.store_health, publish_timeout, publish_budget)

    app = Litestar(
        route_handlers=[
            routes_webhook.receive_webhook,
            routes_hooks.hooks_router(
                config.auth, metrics.hook_api_calls, [routes_endpoints.EndpointsController]
            ),
            routes_deliveries.deliveries_router(config.auth),
            routes_access.access_router(config.auth),
            routes_audit.audit_router(config.auth),
            routes_health.healthz,
            routes_health.readyz,
            routes_health.metrics,
            routes_console.console_router(),
        ],
        dependencies={
            "ingress": Provide(provide_ingress, sync_to_thread=False),
            "access": Provide(provide_access, sync_to_thread=False),
        },
        # The write guard first: a refused request reaches neither the audit nor a route.
        middleware=[writeguard.write_guard, audit_trail.middleware],
        state=State({"ingress": ingress}),
        lifespan=[_lifespan(ingress, verifier, publisher)],
        exception_handlers={
            IngressError: ingress_error_handler,
            HTTPException: http_error_handler,
            RecursionError: nesting_error_handler,
            Exception: internal_error_handler,
        },
        openapi_config=_openapi(),
        before_send=[add_security_headers, fix_allow],
        request_max_body_size=config.max_body_bytes,
        logging_config=None,  # keep the process's key=value logging (setup_logging)
    )
    openapi_rules.install(app)
    return app


def warn_if_open(config: ServerConfig) -> None:
    """AUTH_REQUIRED=false is for a loopback bind: elsewhere anyone who reaches the port
    can change hooks (browsers on other sites cannot: see writeguard)."""
    if config.auth.required or _loopback(config.host):
        return
    log.warning(
        "event=auth_off_exposed host=%s port=%d detail=%s",
        config.host, config.port,
        quote("AUTH_REQUIRED=false on a non-loopback bind: anyone reaching it can change "
              "hooks; set AUTH_REQUIRED=true and AUTH_API_SECRET, or HOST=127.0.0.1"),
    )  # fmt: skip


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


# NATS out of reach or its topology missing at start: what an operator fixes.
START_FAILURES: tuple[type[Exception], ...] = (natsconn.NatsUnavailable, topology.TopologyError)


async def _started(step: Awaitable[T]) -> T:
    """`step`, with the failures an operator fixes (router and forwarder alike) logged as
    one line that says what to do, rather than a traceback."""
    try:
        return await step
    except START_FAILURES as exc:
        log.error("event=ingress_start_failed error=%s", quote(str(exc)))
        raise


def _lifespan(
    ingress: Ingress,
    verifier: WebhookVerifier | None,
    new_publisher: Callable[[Client], EventPublisher],
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """NATS, the hook store, records and the publisher, opened at start, closed at stop."""
    config, metrics = ingress.config, ingress.metrics

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        if verifier is None:
            log.warning('event=livekit_credentials_missing detail="webhooks answer 503"')
        warn_if_open(config)
        if config.sip is None:  # nothing to store or route: no NATS needed
            yield
            return
        nc = await _started(natsconn.connect(config.nats, name="sayna-sip-ingress"))
        try:
            js = nc.jetstream()
            await _started(topology.check_topology(js, config))
            ingress.nc, ingress.js = nc, js
            ingress.hooks = HookStore(
                await js.key_value(topology.HOOKS_BUCKET),
                lambda: nc.is_connected,
                config.sip.secret_box,
            )
            ingress.records = await Records.start(nc, js, ingress.hooks)
            ingress.generations = Generations(await js.key_value(topology.ACCESS_BUCKET))
            ingress.audit = AuditLog(nc, js)
            publisher = new_publisher(nc)
            await publisher.start()
            ingress.intake = WebhookIntake(verifier, publisher, metrics)
            log.info(
                "event=ingress_nats_ready urls=%s max_payload=%d max_body_bytes=%d",
                config.nats.display,
                nc.max_payload,
                ingress.body_limit(),
            )
            yield
        finally:
            await natsconn.close(nc)

    return lifespan
