"""Tenant hooks in the `sip_hooks` KV bucket: the record, its key, and a watched cache.

Key = `host_token(host)`. Value = JSON `{host, url, source, updated_at}`. Secrets are
never stored: static hooks take theirs from the config, runtime hooks use the global one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Literal

import msgspec
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from sayna_sip.common.hosts import host_token, is_wildcard

log = logging.getLogger("sayna_sip.hooks")

Source = Literal["config", "runtime"]


class HookRecord(msgspec.Struct, frozen=True):
    host: str
    url: str
    source: Source
    updated_at: str = ""

    @property
    def key(self) -> str:
        return host_token(self.host)

    def encode(self) -> bytes:
        return _encoder.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> HookRecord:
        return _decoder.decode(data)

    @classmethod
    def new(cls, host: str, url: str, source: Source) -> HookRecord:
        stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return cls(host=host, url=url, source=source, updated_at=stamp)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(HookRecord)


def match_host(hooks: dict[str, HookRecord], host: str) -> HookRecord | None:
    """Exact host first, then the most specific `*.` wildcard that covers it.

    `*.example.com` covers `a.example.com` and `b.a.example.com`, not `example.com`.
    """
    host = host.lower()
    exact = hooks.get(host)
    if exact is not None:
        return exact
    labels = host.split(".")
    for i in range(1, len(labels)):  # longest suffix first = most specific
        hit = hooks.get("*." + ".".join(labels[i:]))
        if hit is not None:
            return hit
    return None


class HookDirectory:
    """In-memory view of `sip_hooks`, kept current by a KV watch (no KV read per event)."""

    def __init__(self, kv: KeyValue, on_change: Callable[[], None] | None = None) -> None:
        self._kv = kv
        self._hooks: dict[str, HookRecord] = {}
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._on_change = on_change
        self.updated_at = 0.0

    @property
    def hooks(self) -> dict[str, HookRecord]:
        return self._hooks

    def get(self, host: str) -> HookRecord | None:
        return self._hooks.get(host.lower())

    def match(self, host: str) -> HookRecord | None:
        return match_host(self._hooks, host)

    def __len__(self) -> int:
        return len(self._hooks)

    def wildcards(self) -> Iterable[str]:
        return (h for h in self._hooks if is_wildcard(h))

    async def start(self) -> None:
        """Load every hook, then follow changes in the background."""
        self._watcher = await self._kv.watchall()
        while True:
            entry = await self._watcher.updates(timeout=30.0)  # type: ignore[no-untyped-call]
            if entry is None:  # initial values replayed
                break
            self._apply(entry)
        self._task = asyncio.create_task(self._follow(), name="hook-directory")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._watcher is not None:
            with contextlib.suppress(Exception):  # connection already closed on shutdown
                await self._watcher.stop()  # type: ignore[no-untyped-call]

    async def _follow(self) -> None:
        assert self._watcher is not None
        async for entry in self._watcher:
            if entry is not None:
                self._apply(entry)

    def _apply(self, entry: KeyValue.Entry) -> None:
        if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
            removed = [h for h, r in self._hooks.items() if r.key == entry.key]
            for host in removed:
                del self._hooks[host]
        else:
            try:
                record = HookRecord.decode(entry.value)
            except msgspec.DecodeError:
                log.warning("event=hook_record_invalid key=%s", entry.key)
                return
            self._hooks[record.host] = record
        self.updated_at = time.time()
        if self._on_change is not None:
            self._on_change()
