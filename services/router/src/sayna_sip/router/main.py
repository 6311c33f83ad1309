"""`sayna-sip router [--config FILE]`: run the router until SIGINT/SIGTERM."""

from __future__ import annotations

from collections.abc import Sequence

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.natsconn import NatsUnavailable
from sayna_sip.common.startup import (
    freeze_startup_heap,
    run,
    service_main,
    stop_signals,
    until_signal,
)
from sayna_sip.common.topology import TopologyError
from sayna_sip.router.app import RouterService


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "router",
        "Route LiveKit events of SIP calls from LK_EVENTS to SIP_DELIVERIES.",
        argv,
        lambda config: run(_run(config)),
        (NatsUnavailable, TopologyError),
        failed="event=router_start_failed",
    )


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
