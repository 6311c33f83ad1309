"""`sayna-sip ingress [--config FILE]`: load the config and serve the app with uvicorn."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import uvicorn

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.logs import setup_logging
from sayna_sip.ingress.app import create_app

log = logging.getLogger("sayna_sip.ingress")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="sayna-sip ingress",
        description="LiveKit webhook intake to JetStream, and the runtime hooks API.",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config (the environment wins)")
    args = parser.parse_args(list(argv))
    try:
        config = ServerConfig.load(args.config)
    except ConfigError as exc:
        setup_logging()
        log.error("event=config_invalid error=%s", exc)
        return 2
    setup_logging(config.log_level, config.log_format)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=config.host,
            port=config.port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,
            log_config=None,  # keep our key=value logging
            server_header=False,
        )
    )
    server.run()
    # uvicorn sets `started` only when the lifespan (NATS, topology) came up.
    return 0 if server.started else 1
