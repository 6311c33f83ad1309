"""`sayna-sip router [--config FILE]`: run the router until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.logs import quote, setup_logging
from sayna_sip.common.natsconn import NatsUnavailable
from sayna_sip.common.topology import TopologyError
from sayna_sip.router.app import RouterService

log = logging.getLogger("sayna_sip.router")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="sayna-sip router",
        description="Route LiveKit events of SIP calls from LK_EVENTS to SIP_DELIVERIES.",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config (environment wins)")
    args = parser.parse_args(list(argv))
    try:
        config = ServerConfig.load(args.config)
    except ConfigError as exc:
        print(f"sayna-sip router: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_format)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_run(config))
    except (NatsUnavailable, TopologyError) as exc:
        log.error("event=router_start_failed error=%s", quote(str(exc)))
        return 1
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it comes with uvicorn[standard]): a faster event loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run(config: ServerConfig) -> None:
    service = RouterService(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
        await stop.wait()
    finally:
        await service.stop()
