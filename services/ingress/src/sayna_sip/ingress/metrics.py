"""The ingress's Prometheus metrics, registered on the app's own registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from sayna_sip.common.metrics import LATENCY_BUCKETS, NAMESPACE


@dataclass(frozen=True)
class IngressMetrics:
    webhooks: Counter
    publish_seconds: Histogram
    hook_api_calls: Counter
    audit_records: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> IngressMetrics:
        return cls(
            webhooks=Counter(
                "ingress_webhooks",
                "LiveKit webhooks received, by event type and outcome",
                ["event", "outcome"],
                namespace=NAMESPACE,
                registry=registry,
            ),
            publish_seconds=Histogram(
                "ingress_publish_seconds",
                "Time from JetStream publish to PubAck",
                namespace=NAMESPACE,
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            hook_api_calls=Counter(
                "ingress_hook_api_calls",
                "Calls to /sip/hooks, by method and HTTP status",
                ["method", "status"],
                namespace=NAMESPACE,
                registry=registry,
            ),
            audit_records=Counter(
                "ingress_audit_records",
                "Audit records of accepted API changes, by outcome (stored in SIP_AUDIT or not)",
                ["outcome"],
                namespace=NAMESPACE,
                registry=registry,
            ),
        )
