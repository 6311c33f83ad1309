"""The router's view of `sip_hooks`: a HookDirectory opened once the broker is connected
and reloaded after every NATS reconnect (a restarted nats-server forgets the KV watch)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.js.kv import KeyValue

from sayna_sip.common.hookstore import HookDirectory, HookRecord
from sayna_sip.common.logs import quote

log = logging.getLogger("sayna_sip.router")

OpenBucket = Callable[[], Awaitable[KeyValue]]


class ReloadingHooks:
    """`match()` against the directory; `reload_quietly()` for the reconnect callback."""

    def __init__(self, open_bucket: OpenBucket) -> None:
        self._open = open_bucket
        self._directory: HookDirectory | None = None

    @property
    def generation(self) -> int:
        """Complete loads so far (tests wait on it)."""
        return self._directory.generation if self._directory is not None else 0

    def match(self, host: str) -> HookRecord | None:
        return self._directory.match(host) if self._directory is not None else None

    def __len__(self) -> int:
        return len(self._directory) if self._directory is not None else 0

    async def start(self) -> None:
        self._directory = HookDirectory(await self._open())
        await self._directory.start()

    async def reload_quietly(self) -> None:
        """Reload; failures are logged and the old view kept (the next reconnect retries)."""
        if self._directory is None:
            return
        try:
            await self._directory.reload()
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("event=hooks_reload_failed error=%s", quote(repr(exc)))
        else:
            log.info("event=hooks_reloaded hooks=%d", len(self))

    async def stop(self) -> None:
        if self._directory is not None:
            await self._directory.stop()
            self._directory = None
