"""Connect to NATS within a start budget, then let nats-py reconnect forever.

nats-py's `connect()` with `max_reconnect_attempts=-1` retries inside itself and never
returns while no server answers, so the budget is a deadline around the whole call and
each failed attempt is logged from nats-py's error callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.client import Client

from sayna_sip.common.config import NatsConfig
from sayna_sip.common.logs import quote

log = logging.getLogger("sayna_sip.nats")

T = TypeVar("T")
RECONNECT_WAIT = 0.5  # seconds between attempts at one server, at start and after


# Connections being closed by their owner, whose close is not a fault.
_closing: weakref.WeakSet[Client] = weakref.WeakSet()


class NatsUnavailable(RuntimeError):
    """NATS could not be reached within the start budget."""


class StartWatch:
    """Logs each failed attempt until the first connection; then errors are debug chatter
    (nats-py reports every failed reconnect through the same callback)."""

    def __init__(self, nats: NatsConfig) -> None:
        self.nats = nats
        self.failures = 0
        self.last: Exception | None = None
        self.connected = False

    async def on_error(self, exc: Exception) -> None:
        if self.connected:
            log.debug("event=nats_error error=%s", quote(repr(exc)))
            return
        self.failures += 1
        self.last = exc
        log.warning(
            "event=nats_connect_failed urls=%s attempt=%d error=%s",
            self.nats.display,
            self.failures,
            quote(repr(exc)),
        )

    async def wait(self, connecting: Awaitable[T]) -> T:
        """`connecting`'s result, or NatsUnavailable once the start budget is spent."""
        try:
            result = await asyncio.wait_for(connecting, self.nats.start_timeout)
        except TimeoutError:
            raise NatsUnavailable(
                f"cannot connect to NATS at {self.nats.display} within "
                f"{self.nats.start_timeout:g}s (NATS_START_TIMEOUT); "
                f"{self.failures} failed attempt(s), last: {self.last!r}"
            ) from None
        self.connected = True
        return result


async def connect(
    nats: NatsConfig, *, name: str, on_reconnected: Callable[[], None] | None = None
) -> Client:
    """A connection to any of the configured servers; once up, nats-py reconnects forever.
    `on_reconnected` runs after each reconnect (e.g. `HookDirectory.on_reconnected`)."""

    async def on_reconnect() -> None:
        log.info("event=nats_reconnected")
        if on_reconnected is not None:
            on_reconnected()

    watch = StartWatch(nats)
    nc = Client()

    async def on_disconnect() -> None:
        if not (nc.is_closed or nc.is_draining):  # a deliberate close is not news
            log.warning("event=nats_disconnected")

    async def on_closed() -> None:
        if watch.connected and lost(nc):
            log_lost(nc.last_error)

    try:
        await watch.wait(
            nc.connect(
                nats.servers,
                name=name,
                connect_timeout=2,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=RECONNECT_WAIT,  # type: ignore[arg-type]  # stub says int
                error_cb=watch.on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                closed_cb=on_closed,
            )
        )
    except BaseException:
        with contextlib.suppress(Exception):
            await close(nc)
        raise
    return nc


async def close(nc: Client) -> None:
    """Close `nc` on purpose: not reported as lost, not a liveness failure."""
    _closing.add(nc)
    await nc.close()


def lost(nc: Client) -> bool:
    """True when the connection is closed for good and not by its owner: nats-py does not
    reconnect after a server -ERR (a message over max_payload, a too-long subject), so
    the process is useless until restarted; its /healthz says so."""
    return nc.is_closed and nc not in _closing


def log_lost(error: Exception | None) -> None:
    log.error(
        "event=nats_connection_closed error=%s detail=%s",
        quote(repr(error)),
        quote("closed by the server, no reconnect: /healthz fails until a restart"),
    )
