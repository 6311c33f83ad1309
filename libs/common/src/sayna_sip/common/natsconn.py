"""Connect to NATS with bounded retries and an error that says what to check."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client

from sayna_sip.common.logs import quote

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
        nc = Client()

        async def on_disconnect(nc: Client = nc) -> None:
            if not (nc.is_closed or nc.is_draining):  # a deliberate close is not news
                log.warning("event=nats_disconnected")

        try:
            await nc.connect(
                url,
                name=name,
                connect_timeout=2,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,  # type: ignore[arg-type]  # float works; stub says int
                error_cb=_on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=_on_reconnect,
            )
            return nc
        except Exception as exc:  # nats-py raises several unrelated types here
            last = exc
            log.warning(
                "event=nats_connect_failed url=%s attempt=%d error=%s",
                url,
                attempt,
                quote(repr(exc)),
            )
            if attempt < attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)
    raise NatsUnavailable(f"cannot connect to NATS at {url} after {attempts} attempts: {last!r}")


async def _on_error(exc: Exception) -> None:
    log.debug("event=nats_error error=%s", quote(repr(exc)))


async def _on_reconnect() -> None:
    log.info("event=nats_reconnected")
