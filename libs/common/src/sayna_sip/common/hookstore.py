"""Tenant hooks in the `sip_hooks` KV bucket: the record, its key, and a watched cache.

Key = `host_token(host)`. Value = JSON `{host, url, source, updated_at}` plus, when set,
`events` (filter), `secrets` (sealed with SecretBox, never in clear), `enabled`,
`disabled_reason` and `failing_since`. Fields at their defaults are not written, so a
plain hook's value is byte-for-byte what earlier releases wrote, and their values decode.
Static hooks take their secrets from the config, never from KV.
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
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from sayna_sip.common.hosts import host_token, is_wildcard

log = logging.getLogger("sayna_sip.hooks")

Source = Literal["config", "runtime"]


def utc_stamp(at: float | None = None) -> str:
    """RFC 3339 UTC, to the second: the format of every time in a hook record."""
    when = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_stamp(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


GLOBAL_SECRET_ID = "global"  # a secrets entry standing for SIP_HOOK_SECRET (during rotation)


class HookSecret(msgspec.Struct, frozen=True, omit_defaults=True):
    """One signing secret of a hook: its id, public fingerprint and sealed value.

    `sealed` is empty for the `global` entry, which stands for SIP_HOOK_SECRET while a
    hook that used it rotates to its own secret.
    """

    id: str
    fingerprint: str
    sealed: str = ""
    created_at: str = ""
    expires_at: str | None = None

    def active(self, now: float) -> bool:
        return self.expires_at is None or parse_stamp(self.expires_at) > now


class HookRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    host: str
    url: str
    source: Source
    updated_at: str = ""
    events: tuple[str, ...] | None = None  # LiveKit event names it receives; None = all
    secrets: tuple[HookSecret, ...] = ()  # newest first; empty = config or global secret
    enabled: bool = True
    disabled_reason: str | None = None
    failing_since: str | None = None  # set by the forwarders when attempts start failing

    def wants(self, event: str) -> bool:
        return self.events is None or event in self.events

    def active_secrets(self, now: float) -> tuple[HookSecret, ...]:
        return tuple(s for s in self.secrets if s.active(now))

    def changed(self, **fields: object) -> HookRecord:
        """A copy with `fields` changed, expired secrets dropped, and a new updated_at."""
        now = time.time()
        record = msgspec.structs.replace(self, **fields)
        return msgspec.structs.replace(
            record, secrets=record.active_secrets(now), updated_at=utc_stamp(now)
        )

    @property
    def key(self) -> str:
        return host_token(self.host)

    def encode(self) -> bytes:
        return _encoder.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> HookRecord:
        return _decoder.decode(data)

    @classmethod
    def new(
        cls, host: str, url: str, source: Source, events: tuple[str, ...] | None = None
    ) -> HookRecord:
        return cls(host=host, url=url, source=source, updated_at=utc_stamp(), events=events)


_WRONG_LAST_SEQUENCE = (10071, 10164)  # JetStream's "wrong last sequence" error codes


async def delete_if_unchanged(kv: KeyValue, key: str, revision: int) -> None:
    """Delete `key` only if it is still at `revision`. A concurrent write raises
    KeyWrongLastSequenceError, as kv.update does (nats-py's delete raises a bare APIError)."""
    try:
        await kv.delete(key, last=revision)
    except APIError as exc:
        if exc.err_code in _WRONG_LAST_SEQUENCE:
            raise KeyWrongLastSequenceError(description=exc.description) from exc
        raise


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(HookRecord)

CAS_ATTEMPTS = 20


async def modify(
    kv: KeyValue, host: str, change: Callable[[HookRecord], HookRecord | None]
) -> HookRecord | None:
    """Compare-and-set `change(record)` into the key of `host`; None when there is no hook.

    `change` may return None to leave the record as it is (nothing written). A concurrent
    write re-reads and re-applies, so the change is never made on a stale record.
    """
    key = host_token(host)
    for _ in range(CAS_ATTEMPTS):
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        current = HookRecord.decode(entry.value)
        updated = change(current)
        if updated is None:
            return current
        try:
            await kv.update(key, updated.encode(), last=entry.revision)
            return updated
        except KeyWrongLastSequenceError:
            continue
    raise KeyWrongLastSequenceError(description=f"hook {host} kept changing during the update")


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
    """In-memory view of `sip_hooks`, kept current by a KV watch (no KV read per event).

    Call `reload()` after a NATS reconnect: the watch is an ephemeral ordered consumer,
    which a restarted nats-server forgets and nats-py does not recreate.
    """

    def __init__(self, kv: KeyValue, on_change: Callable[[], None] | None = None) -> None:
        self._kv = kv
        self._hooks: dict[str, HookRecord] = {}
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._on_change = on_change
        self._lock = asyncio.Lock()
        self.generation = 0  # complete loads so far (1 after start, +1 per reload)
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
        await self.reload()

    async def reload(self) -> None:
        """Load every hook through a fresh watch, then swap it in for the old one."""
        async with self._lock:
            old_task, old_watcher = self._task, self._watcher
            watcher = await self._kv.watchall()
            try:
                hooks = await self._replay(watcher)
            except BaseException:
                await self._close(None, watcher)  # a failed reload must not leak its watch
                raise
            self._hooks, self._watcher = hooks, watcher
            self._task = asyncio.create_task(self._follow(watcher, hooks), name="hook-directory")
            self.generation += 1
            self._changed()
        await self._close(old_task, old_watcher)

    async def _replay(self, watcher: KeyValue.KeyWatcher) -> dict[str, HookRecord]:
        hooks: dict[str, HookRecord] = {}
        while True:
            entry = await watcher.updates(timeout=30.0)  # type: ignore[no-untyped-call]
            if entry is None:  # initial values replayed
                return hooks
            self._apply(hooks, entry)

    async def stop(self) -> None:
        await self._close(self._task, self._watcher)
        self._task = self._watcher = None

    @staticmethod
    async def _close(task: asyncio.Task[None] | None, watcher: KeyValue.KeyWatcher | None) -> None:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if watcher is not None:
            with contextlib.suppress(Exception):  # connection already closed on shutdown
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _follow(self, watcher: KeyValue.KeyWatcher, hooks: dict[str, HookRecord]) -> None:
        async for entry in watcher:
            if entry is not None:
                self._apply(hooks, entry)
                self._changed()

    def _changed(self) -> None:
        self.updated_at = time.time()
        if self._on_change is not None:
            self._on_change()

    @staticmethod
    def _apply(hooks: dict[str, HookRecord], entry: KeyValue.Entry) -> None:
        if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
            for host in [h for h, r in hooks.items() if r.key == entry.key]:
                del hooks[host]
            return
        try:
            record = HookRecord.decode(entry.value)
        except msgspec.DecodeError:
            log.warning("event=hook_record_invalid key=%s", entry.key)
            return
        hooks[record.host] = record
