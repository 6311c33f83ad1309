"""What every service's `main(argv)` does: parse `--config FILE`, load and validate
ServerConfig, set up logging and tracing, run, and turn a start failure into one error
line and exit 1 (`service_main`). One place, so every service starts, fails and stops
alike."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from sayna_sip.common import tracing
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.logs import quote, setup_logging

EXIT_CONFIG = 2  # invalid configuration (the message names the field)
EXIT_FAILED = 1  # could not start (NATS, topology, LiveKit): the log line says why

T = TypeVar("T")


def config_from_args(prog: str, description: str, argv: Sequence[str]) -> ServerConfig | None:
    """The validated config with logging set up, or None after printing why it is invalid."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", metavar="FILE", help="YAML config (the environment wins)")
    args = parser.parse_args(list(argv))
    try:
        config = ServerConfig.load(args.config)
    except ConfigError as exc:
        print(f"{prog}: invalid configuration: {exc}", file=sys.stderr)
        return None
    setup_logging(config.log_level, config.log_format)
    return config


def service_main(
    service: str,
    description: str,
    argv: Sequence[str] | None,
    body: Callable[[ServerConfig], int],
    failures: tuple[type[Exception], ...] = (),
    *,
    prog: str | None = None,
    failed: str = "",
) -> int:
    """The `main(argv)` of a service: its config (exit 2 when invalid), tracing, then
    `body(config)`'s exit code. An exception of `failures` (raised while starting) is one
    error line, `failed` (`event=<service>_start_failed`) and why, and exit 1, never a
    traceback."""
    prog = prog or f"sayna-sip {service}"
    config = config_from_args(prog, description, sys.argv[1:] if argv is None else argv)
    if config is None:
        return EXIT_CONFIG
    tracing.setup(service)  # OTLP export only when OTEL_EXPORTER_OTLP_ENDPOINT is set
    try:
        return body(config)
    except failures as exc:
        logging.getLogger(f"sayna_sip.{service}").error("%s error=%s", failed, quote(exc))
        return EXIT_FAILED


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it): 5-15% less CPU per event."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on uvloop where available."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)


def freeze_startup_heap() -> None:
    """Once a service is up: collect, then exempt everything alive now (modules, config,
    connections) from later garbage collections. A full collection otherwise walks all of
    it, a 20-30 ms pause of the event loop that shows as a delivery-latency spike
    (measured in the router and forwarder under load, docs/performance.md)."""
    gc.collect()
    gc.freeze()


def stop_signals() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM from now on (instead of the default exit)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def until_signal(*ends: Awaitable[Any], stop: asyncio.Event | None = None) -> bool:
    """Wait for SIGINT/SIGTERM (`stop`, from `stop_signals()`; else caught from now on) or
    the first of `ends` to finish; True when a signal came first. Tasks passed in are only
    watched, never cancelled (the caller stops them)."""
    stop = stop_signals() if stop is None else stop
    watched = [asyncio.ensure_future(end) for end in ends]
    ours = [f for f, end in zip(watched, ends, strict=True) if f is not end]
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([stopper, *watched], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in (stopper, *ours):
            future.cancel()
    return stop.is_set()
