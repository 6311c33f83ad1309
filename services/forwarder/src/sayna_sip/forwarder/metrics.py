"""The forwarder's Prometheus metrics, registered on a registry built at start."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sayna_sip.common.metrics import LATENCY_BUCKETS, NAMESPACE


class ForwarderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name, doc, labels, namespace=NAMESPACE, registry=registry)

        self.attempts = counter(
            "forwarder_attempts",
            "Delivery attempts by hook host, outcome and HTTP status",
            ["host", "outcome", "status"],
        )
        self.retries = counter("forwarder_retries_scheduled", "Retries scheduled", ["host"])
        self.dead = counter(
            "forwarder_dead_letters", "Messages sent to SIP_DEAD", ["host", "reason"]
        )
        self.deferred = counter(
            "forwarder_deferred",
            "Messages put back to wait (not yet due, host busy, breaker open)",
            ["host", "reason"],
        )
        self.hooks_disabled = counter(
            "forwarder_hooks_disabled",
            "Hooks disabled automatically after failing for SIP_HOOK_DISABLE_AFTER",
            ["host"],
        )
        self.rate_limited = counter(
            "forwarder_rate_limited_seconds",
            "Seconds deliveries waited for a slot of their endpoint's rate_limit",
            ["host", "endpoint"],
        )
        self.order_waits = counter(
            "forwarder_order_waits",
            "Copies that waited for an earlier event of their call to end (ordering: call)",
            ["host"],
        )
        self.order_released = counter(
            "forwarder_order_released",
            "Call lanes released past a head that held later events for SIP_ORDER_HOLD_MAX",
            ["host"],
        )
        self.proxy_errors = counter(
            "forwarder_proxy_errors",
            "Requests the egress proxy (SIP_EGRESS_PROXY) failed: refused, 407, 5xx to CONNECT",
            [],
        )
        self.breaker_opened = counter(
            "forwarder_breaker_opened", "Circuit breaker openings", ["host"]
        )
        self.latency = Histogram(
            "forwarder_delivery_latency_seconds",
            "Event received by the ingress -> delivered to the hook",
            namespace=NAMESPACE,
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.in_flight = Gauge(
            "forwarder_in_flight", "Requests in flight", namespace=NAMESPACE, registry=registry
        )
