"""The router's view of `sip_hooks`: a HookDirectory opened once the broker is connected
and reloaded after every NATS reconnect (a restarted nats-server forgets the KV watch),
with a direct KV read on a cache miss (a hook created moments ago may not be cached yet).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec
import nats.errors
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from sayna_sip.common.hookstore import HookDirectory, HookRecord
from sayna_sip.common.hosts import host_token
from sayna_sip.common.logs import quote

log = logging.getLogger("sayna_sip.router")

OpenBucket = Callable[[], Awaitable[KeyValue]]


class ReloadingHooks:
    """`lookup()`: the directory, else KV; `reload_quietly()` for the reconnect callback."""

    def __init__(self, open_bucket: OpenBucket) -> None:
        self._open = open_bucket
        self._kv: KeyValue | None = None
        self._directory: HookDirectory | None = None

    @property
    def generation(self) -> int:
        """Complete loads so far (tests wait on it)."""
        return self._directory.generation if self._directory is not None else 0

    def match(self, host: str) -> HookRecord | None:
        return self._directory.match(host) if self._directory is not None else None

    async def lookup(self, host: str) -> HookRecord | None:
        """The cached match; on a miss, the same match read from KV (exact host, then
        each `*.` suffix, most specific first), so an event arriving before the watch
        delivers its new hook is not lost. Only misses pay; NATS errors propagate (the
        caller retries the event rather than drop it)."""
        hit = self.match(host)
        if hit is not None or self._kv is None:
            return hit
        kv = self._kv
        found = await asyncio.gather(*(_read(kv, key) for key in candidate_keys(host)))
        return next((record for record in found if record is not None), None)

    def __len__(self) -> int:
        return len(self._directory) if self._directory is not None else 0

    async def start(self) -> None:
        self._kv = await self._open()
        self._directory = HookDirectory(self._kv)
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
        self._kv = None


def candidate_keys(host: str) -> list[str]:
    """KV keys of the hooks that could match `host`, in `match_host`'s order."""
    labels = host.lower().split(".")
    wildcards = ("*." + ".".join(labels[i:]) for i in range(1, len(labels)))
    return [host_token(host), *(host_token(w) for w in wildcards)]


async def _read(kv: KeyValue, key: str) -> HookRecord | None:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:  # also raised for deleted keys
        return None
    if not entry.value:
        return None
    try:
        return HookRecord.decode(entry.value)
    except msgspec.DecodeError:  # the directory logs it when the watch brings it
        return None
