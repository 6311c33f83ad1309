"""The router's Prometheus metrics, registered on a registry built at start. `Outcome`
(its label values) lives in common.labels, with every other label vocabulary."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from sayna_sip.common.metrics import LATENCY_BUCKETS, NAMESPACE
from sayna_sip.router.outcomes import Outcome


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "router_events",
            "LK_EVENTS messages handled, by outcome",
            ["outcome"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.duplicates = Counter(
            "router_duplicate_deliveries",
            "Deliveries JetStream dropped as duplicates (a redelivered event already routed)",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.routing_seconds = Histogram(
            "router_routing_seconds",
            "Time from consuming an event to the delivery's PubAck",
            buckets=LATENCY_BUCKETS,
            namespace=NAMESPACE,
            registry=registry,
        )
        self.event_age_seconds = Histogram(
            "router_event_age_seconds",
            "Age of an event (since the ingress stored it) when its delivery was stored",
            buckets=LATENCY_BUCKETS,
            namespace=NAMESPACE,
            registry=registry,
        )
        for outcome in Outcome:  # export zeros, so rates work from the first scrape
            self.events.labels(outcome.value)

    def count(self, outcome: Outcome) -> None:
        self.events.labels(outcome.value).inc()
