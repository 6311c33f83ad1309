"""Store a verified webhook in JetStream `LK_EVENTS`, exactly as received.

`Nats-Msg-Id` = the event id, so LiveKit's retries and duplicates are stored once.
The caller answers LiveKit only after the PubAck; any NATS trouble becomes
`Unavailable` (503) so that LiveKit retries, once a bounded budget of tries is spent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from opentelemetry.trace import SpanKind

from sayna_sip.common import contracts, topology, tracing
from sayna_sip.common.delivery import EventMeta
from sayna_sip.common.labels import ErrorCode, IngressOutcome
from sayna_sip.common.logs import quote
from sayna_sip.common.puback import AckedPublisher
from sayna_sip.ingress.errors import IngressError, PayloadTooLarge, Unavailable
from sayna_sip.ingress.metrics import IngressMetrics
from sayna_sip.ingress.readiness import StoreHealth
from sayna_sip.ingress.webhook import Event, WebhookVerifier, parse_event

log = logging.getLogger("sayna_sip.ingress")

PUBLISH_TIMEOUT_S = 3.0  # one try
# All tries of one webhook: more than a stream leader election takes (4.5-8.2 s seen
# on a 3-node cluster), well inside the ~15 s LiveKit keeps retrying a webhook.
PUBLISH_BUDGET_S = 10.0
RETRY_PAUSE_S = 0.05  # doubling up to the max between tries
RETRY_PAUSE_MAX_S = 0.5


def event_headers(event: Event, received_at: float) -> dict[str, str]:
    return EventMeta(event.id, event.event, event.room, received_at).to_headers()


class EventPublisher:
    """Publishes webhook bodies to LK_EVENTS over one shared NATS connection.

    A publish that fails for a passing reason (reconnecting to another server, a stream
    leader being elected, a PubAck that did not come) is tried again until `budget`
    seconds have passed, so a leader change answers LiveKit late rather than 503.
    Retrying is safe: `Nats-Msg-Id` makes a second store of the same event a duplicate.
    What happens is told to `health`, which `/readyz` reads.
    """

    def __init__(
        self,
        nc: Client,
        metrics: IngressMetrics,
        health: StoreHealth,
        timeout: float = PUBLISH_TIMEOUT_S,
        budget: float = PUBLISH_BUDGET_S,
    ) -> None:
        self._nc = nc
        self._acked = AckedPublisher(nc, topology.LK_EVENTS)
        self._metrics = metrics
        self._timeout = timeout
        self._tracer = tracing.Tracer("sayna_sip.ingress")
        self._budget = budget
        self._health = health

    async def start(self) -> None:
        await self._acked.start()

    async def publish(self, event: Event, body: bytes) -> bool:
        """Store `body`; True when JetStream already had this event id (a duplicate)."""
        started = time.perf_counter()
        headers = event_headers(event, time.time())
        if contracts.message_size(body, headers) + 64 > self._nc.max_payload:
            # The server would close the connection for good rather than refuse it.
            raise PayloadTooLarge(
                f"webhook too large for NATS (max_payload {self._nc.max_payload} bytes)"
            )
        if self._tracer.enabled:  # the root of the event's trace, carried in LK_EVENTS
            attrs = {"sayna.event_id": event.id, "sayna.event": event.event}
            with self._tracer.span("sip.intake", kind=SpanKind.SERVER, attributes=attrs):
                self._tracer.inject(headers)
                duplicate = await self._store(event, body, headers)
        else:
            duplicate = await self._store(event, body, headers)
        self._metrics.publish_seconds.observe(time.perf_counter() - started)
        return duplicate

    async def _store(self, event: Event, body: bytes, headers: dict[str, str]) -> bool:
        """Try until stored or the budget is spent (see the class docstring)."""
        subject = contracts.lk_event_subject(event.event, event.room)
        deadline = time.monotonic() + self._budget
        pause = RETRY_PAUSE_S
        while True:
            try:
                duplicate = await self._try(subject, body, headers, deadline)
            except _FAILURES as exc:
                if not _passing(exc):  # about this message or the stream's config
                    raise self._failed(event, exc) from exc
                self._health.trouble()
                if time.monotonic() + pause >= deadline:
                    self._health.refused()
                    raise self._failed(event, exc) from exc
            else:
                self._health.stored()
                return duplicate
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_PAUSE_MAX_S)

    async def _try(
        self, subject: str, body: bytes, headers: dict[str, str], deadline: float
    ) -> bool:
        if not self._nc.is_connected:  # reconnecting: a publish now would only be buffered
            raise nats.errors.ConnectionReconnectingError
        timeout = max(0.05, min(self._timeout, deadline - time.monotonic()))
        return await self._acked.publish(subject, body, headers, timeout)

    def _failed(self, event: Event, exc: BaseException) -> Unavailable:
        log.warning(
            "event=webhook_publish_failed event_id=%s lk_event=%s error=%s",
            event.id,
            event.event,
            quote(repr(exc)),
        )
        if isinstance(exc, nats.errors.ConnectionReconnectingError):
            return Unavailable("NATS is not connected; retry later", ErrorCode.NATS_UNAVAILABLE)
        return Unavailable(
            f"could not store the event in NATS: {exc!r}", ErrorCode.NATS_UNAVAILABLE
        )


_FAILURES = (TimeoutError, nats.errors.Error, OSError)


def _passing(exc: BaseException) -> bool:
    """Worth another try within the budget: not a refusal that would repeat (a wrong
    stream, a message over the server's limit: JetStream API errors other than 503)."""
    if isinstance(exc, nats.js.errors.APIError):
        return isinstance(exc, nats.js.errors.ServiceUnavailableError)
    return not isinstance(exc, nats.errors.MaxPayloadError | nats.errors.ConnectionClosedError)


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
                    ErrorCode.LIVEKIT_NOT_CONFIGURED,
                )
            digest = self._verifier.token_digest(authorization)
            body = await read_body()
            self._verifier.check_body(digest, body)
            event = parse_event(body)
            event_name = event.event or "unknown"
            outcome = IngressOutcome.IGNORED
            if self._publisher is not None:
                duplicate = await self._publisher.publish(event, body)
                outcome = IngressOutcome.DUPLICATE if duplicate else IngressOutcome.STORED
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
