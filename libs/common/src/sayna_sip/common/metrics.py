"""Prometheus helpers. Each app builds its own registry at start (never at import), so
tests can build several apps in one process. Every registry carries prometheus-client's
standard collectors: `process_*` (CPU, memory, fds), `python_info` and `python_gc_*`."""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    make_asgi_app,
)

NAMESPACE = "sayna_sip"

# Latency buckets from 1 ms to 60 s, for webhook intake and delivery alike.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def new_registry() -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    return reg


def metrics_app(reg: CollectorRegistry) -> Any:
    """ASGI app serving `reg` in the Prometheus text format."""
    return make_asgi_app(registry=reg)
