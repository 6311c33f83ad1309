"""Trace context across hops: a span's traceparent in headers, a child span from them."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sayna_sip.common import tracing


def test_no_endpoint_no_exporter() -> None:
    assert tracing.setup("router", env={}) is False
    assert tracing.setup("router", env={"OTEL_EXPORTER_OTLP_ENDPOINT": " "}) is False


def test_context_travels_in_headers_to_a_child_span(spans: InMemorySpanExporter) -> None:
    ingress, router = tracing.Tracer("ingress"), tracing.Tracer("router")
    headers: dict[str, str] = {"Sayna-Event-Id": "EV_1"}
    with ingress.span("intake", kind=SpanKind.SERVER) as span:
        ingress.inject(headers)
        root_trace = tracing.trace_id(span)
    with router.span("route", parent=headers) as child:
        assert tracing.trace_id(child) == root_trace

    intake, route = sorted(spans.get_finished_spans(), key=lambda s: s.start_time or 0)
    assert headers[tracing.TRACEPARENT].split("-")[1] == root_trace
    assert route.parent is not None and intake.context is not None
    assert route.parent.span_id == intake.context.span_id
    assert tracing.carried({**headers, "other": "x"}) == {"traceparent": headers["traceparent"]}
