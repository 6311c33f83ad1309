"""OpenTelemetry spans for intake, routing and each attempt, one trace per event.

W3C trace context (`traceparent`, `tracestate`) travels in NATS message headers from
hop to hop and reaches the tenant as `traceparent`. `setup()` installs the SDK with
an OTLP/HTTP exporter only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`)
is set; the exporter follows the standard `OTEL_*` variables. Otherwise no provider is
installed, `Tracer.enabled` is False and every call here returns at once: no spans, no
headers, no cost. Tests install an SDK provider with an in-memory exporter instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import ProxyTracerProvider, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def setup(service: str, env: Mapping[str, str] | None = None) -> bool:
    """Export spans over OTLP/HTTP when the standard variables ask for it; True if so."""
    env = os.environ if env is None else env
    if not any(env.get(name, "").strip() for name in _ENDPOINTS):
        return False
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or active():
        return active()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = env.get("OTEL_SERVICE_NAME", "").strip() or f"sayna-sip-{service}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def shutdown() -> None:
    """Flush and stop the exporter, if `setup()` installed one."""
    provider: Any = trace.get_tracer_provider()
    if active() and hasattr(provider, "shutdown"):
        provider.shutdown()


def active() -> bool:
    return not isinstance(
        trace.get_tracer_provider(), ProxyTracerProvider | trace.NoOpTracerProvider
    )


class Tracer:
    """One service's spans; decide `enabled` once, at start, so a disabled hop costs
    one attribute check per event."""

    def __init__(self, name: str) -> None:
        self.enabled = active()
        self._tracer = trace.get_tracer(name)

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        parent: Mapping[str, str] | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, str | int | float] | None = None,
    ) -> Iterator[Span | None]:
        """A span, child of the context in `parent` headers when they carry one."""
        if not self.enabled:
            yield None
            return
        ctx = _PROPAGATOR.extract(parent) if parent else None
        with self._tracer.start_as_current_span(
            name, context=ctx, kind=kind, attributes=dict(attributes or {})
        ) as span:
            yield span

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Write the current span's `traceparent` (and `tracestate`) into `headers`."""
        if self.enabled:
            _PROPAGATOR.inject(headers)


def trace_id(span: Span | None) -> str:
    """The span's trace id as 32 hex digits, '' without a span."""
    if span is None:
        return ""
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def fail(span: Span | None, description: str) -> None:
    if span is not None:
        span.set_status(Status(StatusCode.ERROR, description))


def carried(headers: Mapping[str, str]) -> dict[str, str]:
    """The trace headers among `headers` (to carry them onto a copy of a message)."""
    return {k: v for k, v in headers.items() if k in (TRACEPARENT, "tracestate")}
