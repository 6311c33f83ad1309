"""`sayna-sip forwarder [--config FILE]`: run one delivery worker until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import sys
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
    until_signal,
)
from sayna_sip.common.topology import TopologyError
from sayna_sip.forwarder.app import Forwarder

log = logging.getLogger("sayna_sip.forwarder")


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_args(
        "sayna-sip forwarder",
        "Deliver SIP_DELIVERIES to tenant hooks: signed, retried, SSRF-safe.",
        sys.argv[1:] if argv is None else argv,
    )
    if config is None:
        return EXIT_CONFIG
    tracing.setup("forwarder")  # OTLP export only when OTEL_EXPORTER_OTLP_ENDPOINT is set
    return run(serve(config))


async def serve(config: ServerConfig) -> int:
    """Run until a signal asks to stop (exit 0) or the fetch loop dies (exit 1)."""
    try:
        forwarder = await Forwarder.start(config)
    except (NatsUnavailable, TopologyError) as exc:
        log.error("event=forwarder_start_failed error=%s", quote(exc))
        return 1
    freeze_startup_heap()
    crashed = not await until_signal(forwarder.running)
    if crashed:
        log.error("event=fetch_loop_died error=%s", quote(repr(forwarder.running.exception())))
    await forwarder.stop()
    return 1 if crashed else 0
