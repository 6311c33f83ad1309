"""What every service's `main(argv)` does: parse `--config FILE`, load and validate
ServerConfig, set up logging, then run until a signal. One place, so every service fails
and stops alike."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.logs import setup_logging

EXIT_CONFIG = 2  # invalid configuration (the message names the field)

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
