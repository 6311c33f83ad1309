"""Connect to NATS with bounded retries and an error that says what to check."""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client

log = logging.getLogger("sayna_sip.nats")


class NatsUnavailable(RuntimeError):
    """NATS could not be reached within the retry budget."""


async def connect(
    url: str,
    *,
    name: str,
    attempts: int = 10,
    first_delay: float = 0.2,
    max_delay: float = 3.0,
) -> Client:
    """Connect, retrying with exponential backoff; once up, nats-py reconnects forever."""
    delay = first_delay
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return await nats.connect(
                url,
                name=name,
                connect_timeout=2,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=_on_error,
                disconnected_cb=_on_disconnect,
                reconnected_cb=_on_reconnect,
            )
        except Exception as exc:  # nats-py raises several unrelated types here
            last = exc
            log.warning("event=nats_connect_failed url=%s attempt=%d error=%r", url, attempt, exc)
            if attempt < attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)
    raise NatsUnavailable(f"cannot connect to NATS at {url} after {attempts} attempts: {last!r}")


async def _on_error(exc: Exception) -> None:
    log.debug("event=nats_error error=%r", exc)


async def _on_disconnect() -> None:
    log.warning("event=nats_disconnected")


async def _on_reconnect() -> None:
    log.info("event=nats_reconnected")
