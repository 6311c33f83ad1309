"""`sayna-sip router [--config FILE]`: run the router until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sayna_sip.common import tracing
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.logs import quote
from sayna_sip.common.natsconn import NatsUnavailable
from sayna_sip.common.startup import (
    EXIT_CONFIG,
    config_from_args,
    freeze_startup_heap,
    run,
    stop_signals,
    until_signal,
)
from sayna_sip.common.topology import TopologyError
from sayna_sip.router.app import RouterService

log = logging.getLogger("sayna_sip.router")


def main(argv: Sequence[str]) -> int:
    config = config_from_args(
        "sayna-sip router",
        "Route LiveKit events of SIP calls from LK_EVENTS to SIP_DELIVERIES.",
        argv,
    )
    if config is None:
        return EXIT_CONFIG
    tracing.setup("router")  # OTLP export only when OTEL_EXPORTER_OTLP_ENDPOINT is set
    try:
        return run(_run(config))
    except (NatsUnavailable, TopologyError) as exc:
        log.error("event=router_start_failed error=%s", quote(str(exc)))
        return 1


async def _run(config: ServerConfig) -> int:
    """0 after a signal; 1 when NATS closed the connection for good (restart us)."""
    service = RouterService(config)
    stop = stop_signals()  # a signal during start stops it cleanly too
    try:
        await service.start()
        freeze_startup_heap()
        await until_signal(service.failed.wait(), stop=stop)
        return 1 if service.failed.is_set() else 0
    finally:
        await service.stop()
