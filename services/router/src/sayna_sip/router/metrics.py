"""The router's Prometheus metrics, registered on a registry built at start."""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Histogram

from sayna_sip.common.metrics import LATENCY_BUCKETS, NAMESPACE


class Outcome(StrEnum):
    """What the router did with one LK_EVENTS message (the `outcome` label)."""

    ROUTED = "routed"  # published to SIP_DELIVERIES, input acked
    UNMATCHED = "unmatched"  # SIP host found, no hook for it
    FILTERED = "filtered"  # the hook's events filter leaves this event type out
    NO_HOST = "no_host"  # SIP room, no host in the event nor in room memory: gave up
    DEFERRED = "deferred"  # no host yet: nak'd briefly, the caller's join may be in flight
    NON_SIP = "non_sip"  # room name without the SIP prefix, or no room
    DISABLED = "disabled"  # SIP not configured: everything is acked unread
    MALFORMED = "malformed"  # unreadable body: terminated
    RETRY = "retry"  # NATS failed while routing: nak'd with a delay


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
