"""The router's view of `sip_hooks`: a HookDirectory, rebuilt after every NATS reconnect.

HookDirectory follows the bucket through a KV watch, an ephemeral ordered consumer. A
nats-server restart forgets ephemeral consumers, and nats-py does not recreate the watch,
so without a rebuild the cache would silently stop seeing new and deleted hooks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.js.kv import KeyValue

from sayna_sip.common.hookstore import HookDirectory, HookRecord
from sayna_sip.common.logs import quote

log = logging.getLogger("sayna_sip.router")

OpenBucket = Callable[[], Awaitable[KeyValue]]


class ReloadingHooks:
    """`match()` against the current directory; `reload()` swaps in a fresh one."""

    def __init__(self, open_bucket: OpenBucket) -> None:
        self._open = open_bucket
        self._current: HookDirectory | None = None
        self._lock = asyncio.Lock()
        self.generation = 0  # directories loaded so far (tests wait on it)

    def match(self, host: str) -> HookRecord | None:
        return self._current.match(host) if self._current is not None else None

    def __len__(self) -> int:
        return len(self._current) if self._current is not None else 0

    async def start(self) -> None:
        await self.reload()

    async def reload(self) -> None:
        """Load every hook into a new directory, then drop the old one (and its watch)."""
        async with self._lock:
            fresh = HookDirectory(await self._open())
            await fresh.start()
            old, self._current = self._current, fresh
            self.generation += 1
        if old is not None:
            await old.stop()

    async def reload_quietly(self) -> None:
        """`reload()` for the reconnect callback: failures are logged, the old view kept;
        the next reconnect tries again."""
        try:
            await self.reload()
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("event=hooks_reload_failed error=%s", quote(repr(exc)))
        else:
            log.info("event=hooks_reloaded hooks=%d", len(self))

    async def stop(self) -> None:
        if self._current is not None:
            await self._current.stop()
            self._current = None
