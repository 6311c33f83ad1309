"""What every service's `main(argv)` does first: parse `--config FILE`, load and
validate ServerConfig, set up logging. One place, so every service fails alike."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.logs import setup_logging

EXIT_CONFIG = 2  # invalid configuration (the message names the field)


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
