"""How many forwarders are live: the share of a rate limit each one takes (pace.py).

Every forwarder answers pings on `sip.ops.forwarder_ping` (no queue group: all answer)
and pings every REFRESH seconds itself, counting the distinct answers that arrive
within LISTEN seconds, itself included. A forwarder that dies stops answering, so the
others take its share within one refresh; one that starts pings at once. No KV, no
provisioning: core NATS request/reply with many replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets as _random

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from sayna_sip.common import contracts
from sayna_sip.common.logs import quote

log = logging.getLogger("sayna_sip.forwarder")

REFRESH = 5.0  # seconds between counts
LISTEN = 0.25  # how long one count waits for answers


class PeerCount:
    """The live forwarder count, refreshed in the background (1 until the first count)."""

    def __init__(self, nc: Client, refresh: float = REFRESH, listen: float = LISTEN) -> None:
        self._nc = nc
        self._refresh = refresh
        self._listen = listen
        self.id = _random.token_hex(6)
        self.count = 1
        self._answer: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._answer = await self._nc.subscribe(contracts.FORWARDER_PING, cb=self._pong)
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="forwarder-peers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._answer is not None:
            with contextlib.suppress(NatsError):
                await self._answer.unsubscribe()

    async def _pong(self, msg: Msg) -> None:
        if msg.reply:
            with contextlib.suppress(NatsError):
                await self._nc.publish(msg.reply, self.id.encode())

    async def refresh(self) -> int:
        """Count the forwarders that answer now; keep the last count if NATS fails."""
        seen: set[bytes] = set()
        inbox = self._nc.new_inbox()

        async def answered(msg: Msg) -> None:
            seen.add(msg.data)

        try:
            sub = await self._nc.subscribe(inbox, cb=answered)
            try:
                await self._nc.publish(contracts.FORWARDER_PING, b"", reply=inbox)
                await asyncio.sleep(self._listen)  # answers trickle in: no event marks the last
            finally:
                await sub.unsubscribe()
        except NatsError as exc:
            log.debug("event=peer_count_failed error=%s", quote(repr(exc)))
            return self.count
        self.count = max(1, len(seen))
        return self.count

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            await self.refresh()
