"""`sayna-sip ingress [--config FILE]`: load the config and serve the app with uvicorn."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import uvicorn

from sayna_sip.common import tracing
from sayna_sip.common.startup import EXIT_CONFIG, config_from_args
from sayna_sip.ingress.app import create_app

log = logging.getLogger("sayna_sip.ingress")


def main(argv: Sequence[str]) -> int:
    config = config_from_args(
        "sayna-sip ingress",
        "LiveKit webhook intake to JetStream, and the runtime hooks API.",
        argv,
    )
    if config is None:
        return EXIT_CONFIG
    tracing.setup("ingress")  # OTLP export only when OTEL_EXPORTER_OTLP_ENDPOINT is set
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
