"""Store a verified webhook in JetStream `LK_EVENTS`, exactly as received.

`Nats-Msg-Id` = the event id, so LiveKit's retries and duplicates are stored once.
The caller answers LiveKit only after the PubAck; any NATS trouble becomes
`Unavailable` (503) so that LiveKit retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.client import Client
from opentelemetry.trace import SpanKind

from sayna_sip.common import contracts, topology, tracing
from sayna_sip.common.delivery import EventMeta
from sayna_sip.common.logs import quote
from sayna_sip.ingress.errors import IngressError, PayloadTooLarge, Unavailable
from sayna_sip.ingress.metrics import IngressMetrics
from sayna_sip.ingress.puback import AckedPublisher
from sayna_sip.ingress.webhook import Event, WebhookVerifier, parse_event

log = logging.getLogger("sayna_sip.ingress")

PUBLISH_TIMEOUT_S = 3.0


def event_headers(event: Event, received_at: float) -> dict[str, str]:
    return EventMeta(event.id, event.event, event.room, received_at).to_headers()


class EventPublisher:
    """Publishes webhook bodies to LK_EVENTS over one shared NATS connection."""

    def __init__(
        self, nc: Client, metrics: IngressMetrics, timeout: float = PUBLISH_TIMEOUT_S
    ) -> None:
        self._nc = nc
        self._acked = AckedPublisher(nc, topology.LK_EVENTS)
        self._metrics = metrics
        self._timeout = timeout
        self._tracer = tracing.Tracer("sayna_sip.ingress")

    async def start(self) -> None:
        await self._acked.start()

    async def publish(self, event: Event, body: bytes) -> bool:
        """Store `body`; True when JetStream already had this event id (a duplicate)."""
        if not self._nc.is_connected:  # fail fast: waiting out the timeout helps no one
            raise Unavailable("NATS is not connected; retry later", "nats_unavailable")
        started = time.perf_counter()
        headers = event_headers(event, time.time())
        if contracts.message_size(body, headers) + 64 > self._nc.max_payload:
            # The server would close the connection for good rather than refuse it.
            raise PayloadTooLarge(
                f"webhook too large for NATS (max_payload {self._nc.max_payload} bytes)"
            )
        try:
            if self._tracer.enabled:  # the root of the event's trace, carried in LK_EVENTS
                attrs = {"sayna.event_id": event.id, "sayna.event": event.event}
                with self._tracer.span("sip.intake", kind=SpanKind.SERVER, attributes=attrs):
                    self._tracer.inject(headers)
                    duplicate = await self._store(event, body, headers)
            else:
                duplicate = await self._store(event, body, headers)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            log.warning(
                "event=webhook_publish_failed event_id=%s lk_event=%s error=%s",
                event.id,
                event.event,
                quote(repr(exc)),
            )
            raise Unavailable(
                f"could not store the event in NATS: {exc!r}", "nats_unavailable"
            ) from exc
        self._metrics.publish_seconds.observe(time.perf_counter() - started)
        return duplicate

    async def _store(self, event: Event, body: bytes, headers: dict[str, str]) -> bool:
        subject = contracts.lk_event_subject(event.event)
        return await self._acked.publish(subject, body, headers, self._timeout)


class WebhookIntake:
    """The webhook route's logic: verify, decode, store, in the order LiveKit expects.

    `verifier` is None when LiveKit credentials are missing (every webhook gets 503);
    `publisher` is None when SIP is disabled (verified webhooks are answered, not stored).
    """

    def __init__(
        self,
        verifier: WebhookVerifier | None,
        publisher: EventPublisher | None,
        metrics: IngressMetrics,
    ) -> None:
        self._verifier = verifier
        self._publisher = publisher
        self._metrics = metrics

    async def receive(
        self, authorization: str | None, read_body: Callable[[], Awaitable[bytes]]
    ) -> None:
        event_name = "unknown"
        try:
            if self._verifier is None:
                raise Unavailable(
                    "LiveKit credentials are not configured (LIVEKIT_API_KEY, LIVEKIT_API_SECRET)",
                    "livekit_not_configured",
                )
            digest = self._verifier.token_digest(authorization)
            body = await read_body()
            self._verifier.check_body(digest, body)
            event = parse_event(body)
            event_name = event.event or "unknown"
            outcome = "ignored"
            if self._publisher is not None:
                outcome = "duplicate" if await self._publisher.publish(event, body) else "stored"
        except IngressError as exc:
            self._metrics.webhooks.labels(event_name, exc.code).inc()
            if exc.status != 503:  # 503s are logged where they happen
                log.warning(
                    "event=webhook_rejected status=%d code=%s detail=%s",
                    exc.status,
                    exc.code,
                    quote(exc.message),
                )
            raise
        self._metrics.webhooks.labels(event_name, outcome).inc()
