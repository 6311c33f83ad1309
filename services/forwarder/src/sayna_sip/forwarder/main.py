"""`sayna-sip forwarder [--config FILE]`: run one delivery worker until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.logs import quote
from sayna_sip.common.natsconn import NatsUnavailable
from sayna_sip.common.startup import freeze_startup_heap, run, service_main, until_signal
from sayna_sip.common.topology import TopologyError
from sayna_sip.forwarder.app import Forwarder
from sayna_sip.forwarder.idle import IdleForwarder

log = logging.getLogger("sayna_sip.forwarder")


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "forwarder",
        "Deliver SIP_DELIVERIES to tenant hooks: signed, retried, SSRF-safe.",
        argv,
        lambda config: run(serve(config)),
        (NatsUnavailable, TopologyError),
        failed="event=forwarder_start_failed",
    )


async def serve(config: ServerConfig) -> int:
    """Run until a signal asks to stop (exit 0) or the fetch loop dies (exit 1)."""
    if config.sip is None:  # nothing is routed: nothing to deliver, no topology to bind to
        idle = await IdleForwarder.start(config)
        await until_signal()
        await idle.stop()
        return 0
    forwarder = await Forwarder.start(config)  # NATS or topology trouble: service_main's
    freeze_startup_heap()
    crashed = not await until_signal(forwarder.running)
    if crashed:
        log.error("event=fetch_loop_died error=%s", quote(repr(forwarder.running.exception())))
    await forwarder.stop()
    return 1 if crashed else 0
