"""The forwarder's view of `sip_hooks`: a HookDirectory rebuilt after each NATS reconnect.

The directory follows the bucket through a KV watch (an ephemeral ordered consumer). A
nats-server restart forgets ephemeral consumers and nats-py does not recreate the watch,
so without a rebuild changed URLs and deleted hooks would go unnoticed. Reconnects are
noticed by polling the client's reconnect counter: no hook into nats-py's callbacks.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.js.kv import KeyValue

from sayna_sip.common.hookstore import HookDirectory, HookRecord
from sayna_sip.common.logs import quote

log = logging.getLogger("sayna_sip.forwarder")

CHECK_EVERY = 1.0  # seconds between looks at the reconnect counter


class LiveHooks:
    def __init__(self, nc: Client, kv: KeyValue) -> None:
        self._nc = nc
        self._kv = kv
        self._directory = HookDirectory(kv)
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0
        self.reloaded = asyncio.Event()  # set after each rebuild (tests, diagnostics)

    def __len__(self) -> int:
        return len(self._directory)

    def get(self, host: str) -> HookRecord | None:
        return self._directory.get(host)

    async def start(self) -> None:
        await self._directory.start()
        self._task = asyncio.create_task(self._follow_reconnects(), name="hooks-reload")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._directory.stop()

    async def _follow_reconnects(self) -> None:
        seen = self._nc.stats["reconnects"]
        while True:
            await asyncio.sleep(CHECK_EVERY)
            now = self._nc.stats["reconnects"]
            if now != seen and self._nc.is_connected:
                try:
                    await self.reload()
                except Exception as exc:  # NATS flapping: try again on the next tick
                    log.warning("event=hooks_reload_failed error=%s", quote(repr(exc)))
                    continue
                seen = now

    async def reload(self) -> None:
        await self._directory.reload()
        self.reloads += 1
        self.reloaded.set()
        log.info("event=hooks_reloaded hooks=%d", len(self._directory))
