"""What every service's `main(argv)` does first: parse `--config FILE`, load and
validate ServerConfig, set up logging. One place, so every service fails alike."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
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
