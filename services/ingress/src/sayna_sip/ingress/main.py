"""`sayna-sip ingress [--config FILE]`: load the config and serve the app with uvicorn."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import uvicorn

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.startup import freeze_startup_heap, service_main
from sayna_sip.ingress.app import START_FAILURES, create_app

log = logging.getLogger("sayna_sip.ingress")


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "ingress", "LiveKit webhook intake to JetStream, and the runtime hooks API.", argv, serve
    )


def serve(config: ServerConfig) -> int:
    """uvicorn until a signal; its lifespan logs a start failure (START_FAILURES) itself."""
    server = uvicorn.Server(
        uvicorn.Config(
            freeze_once_started(quiet_start_failure(create_app(config))),
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
    with contextlib.suppress(SystemExit):  # uvicorn exits 3 when the lifespan fails
        server.run()
    # uvicorn sets `started` only when the lifespan (NATS, topology) came up.
    return 0 if server.started else 1


class _AfterStartFailed(logging.Filter):
    """Drops uvicorn's "Application startup failed" once the lifespan said why."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.failed and record.getMessage().startswith("Application startup failed"))


def quiet_start_failure(app: Any) -> Any:
    """Litestar hands uvicorn the traceback of a failed lifespan, which uvicorn logs whole.
    A START_FAILURES one was logged in one line already: pass it on without the traceback."""
    after = _AfterStartFailed()
    logging.getLogger("uvicorn.error").addFilter(after)

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def send_quietly(message: Any) -> None:
            text = str(message.get("message", ""))
            known = any(f"{e.__name__}:" in text for e in START_FAILURES)
            if message["type"] == "lifespan.startup.failed" and known:
                after.failed = True
                message = {"type": message["type"], "message": ""}
            await send(message)

        await app(scope, receive, send_quietly if scope["type"] == "lifespan" else send)

    return wrapped


def freeze_once_started(app: Any) -> Any:
    """`freeze_startup_heap()` when the lifespan reports startup complete (NATS, hooks
    and records open), in the served process only: tests build apps without it."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def send_started(message: Any) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                freeze_startup_heap()

        await app(scope, receive, send_started)

    return wrapped
