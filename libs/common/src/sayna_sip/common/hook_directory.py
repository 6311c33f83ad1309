"""`HookDirectory`: the one access layer to the `sip_hooks` KV bucket.

Router and forwarder `start()` its cache, kept current by a KV watch (no KV read per
event), and read KV on a cache miss (a hook created a moment ago may not be cached yet).
A restarted nats-server forgets the watch (an ephemeral ordered consumer) and nats-py does
not recreate it: the owner calls `on_reconnected()` from its NATS reconnect callback, the
one reload-after-reconnect mechanism. The ingress API uses only the direct KV reads, so
every ingress replica answers from KV, not from a copy; so does the provisioner. Writes
go through `hookstore`, never here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import msgspec
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from sayna_sip.common.hook import Hook
from sayna_sip.common.hosts import host_token
from sayna_sip.common.logs import quote

log = logging.getLogger("sayna_sip.hooks")

SNAPSHOT_TIMEOUT_S = 5.0
RELOAD_RETRY_S = 1.0  # between reload attempts after a reconnect, until one succeeds


async def read_hook(kv: KeyValue, key: str) -> tuple[Hook | None, int]:
    """The hook at `key` and its revision (0 when absent or deleted). An unreadable
    value reads as None with its revision, so a writer may overwrite it."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError as exc:  # also raised for deleted keys
        deleted = getattr(exc, "entry", None)
        return None, deleted.revision if deleted is not None else 0
    if not entry.value:
        return None, entry.revision or 0
    return _decode_value(key, entry.value), entry.revision or 0


async def snapshot(kv: KeyValue) -> list[Hook]:
    """Every hook in KV now, sorted by host.

    Read through a pull consumer of the bucket's stream (last value per key), not a KV
    watch: nats-py's watcher says "caught up" from a consumer-info answer that can
    arrive before values already sent to it, so a hook written just before the read
    was now and then missing (2 of 300 POST /sip/hooks answers lacked the hook they
    had just created). A pull consumer sends nothing until asked, so its pending count
    is exact, and each message says how many are left.
    """
    js: JetStreamContext = kv._js  # nats-py's KeyValue has no public accessor for it
    stream = f"KV_{kv._name}"
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=SNAPSHOT_TIMEOUT_S * 2,  # the server removes it if we cannot
        mem_storage=True,
    )
    prefix = f"$KV.{kv._name}."
    sub = await js.pull_subscribe(prefix + ">", stream=stream, config=config)
    hooks: list[Hook] = []
    name = ""
    try:
        info = await sub.consumer_info()
        name, left = info.name, info.num_pending or 0
        while left > 0:
            for msg in await sub.fetch(min(left, 256), timeout=SNAPSHOT_TIMEOUT_S):
                left = msg.metadata.num_pending or 0
                if msg.headers and msg.headers.get(KV_OP) in (KV_DEL, KV_PURGE):
                    continue
                hook = _decode_value(msg.subject.removeprefix(prefix), msg.data)
                if hook is not None:
                    hooks.append(hook)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
            if name:
                await js.delete_consumer(stream, name)
    return sorted(hooks, key=lambda h: h.host)


def match_host(hooks: dict[str, Hook], host: str) -> Hook | None:
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


def candidate_keys(host: str) -> list[str]:
    """KV keys of the hooks that could match `host`, in `match_host`'s order."""
    labels = host.lower().split(".")
    wildcards = ("*." + ".".join(labels[i:]) for i in range(1, len(labels)))
    return [host_token(host), *(host_token(w) for w in wildcards)]


def _decode(entry: KeyValue.Entry) -> Hook | None:
    return _decode_value(entry.key, entry.value or b"")


def _decode_value(key: str, value: bytes) -> Hook | None:
    """The hook stored at `key`, or None (logged) when the value is unreadable or names
    another host: a record copied under a foreign key must not shadow the real hook."""
    try:
        hook = Hook.decode(value)
    except msgspec.DecodeError:
        log.warning("event=hook_record_invalid key=%s", key)
        return None
    if hook.key != key:
        log.warning("event=hook_record_misplaced key=%s host=%s", quote(key), quote(hook.host))
        return None
    return hook


class HookDirectory:
    """In-memory view of `sip_hooks` with KV reads on a miss; see the module docstring."""

    def __init__(self, kv: KeyValue, on_change: Callable[[], None] | None = None) -> None:
        self.kv = kv
        self._hooks: dict[str, Hook] = {}
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._on_change = on_change
        self._lock = asyncio.Lock()
        self.generation = 0  # complete loads so far (1 after start, +1 per reload)
        self.reloaded = asyncio.Event()  # set after each reload that follows a reconnect

    @property
    def hooks(self) -> dict[str, Hook]:
        return self._hooks

    def get(self, host: str) -> Hook | None:
        return self._hooks.get(host.lower())

    def match(self, host: str) -> Hook | None:
        return match_host(self._hooks, host)

    def __len__(self) -> int:
        return len(self._hooks)

    async def lookup(self, host: str) -> Hook | None:
        """The cached match for a SIP host; on a miss, the same match read from KV (exact
        host, then each `*.` suffix, most specific first). Only misses pay; NATS errors
        propagate (the caller retries the event rather than drop it)."""
        hit = self.match(host)
        if hit is not None:
            return hit
        found = await asyncio.gather(*(read_hook(self.kv, k) for k in candidate_keys(host)))
        return next((hook for hook, _ in found if hook is not None), None)

    async def resolve(self, hook_host: str) -> Hook | None:
        """The hook stored under exactly `hook_host`: the cache, else KV."""
        hit = self.get(hook_host)
        if hit is not None:
            return hit
        return (await read_hook(self.kv, host_token(hook_host)))[0]

    async def start(self) -> None:
        """Load every hook, then follow changes in the background."""
        await self.reload()

    async def reload(self) -> None:
        """Load every hook through a fresh watch, then swap it in for the old one."""
        async with self._lock:
            old_task, old_watcher = self._task, self._watcher
            watcher = await self.kv.watchall()
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

    def on_reconnected(self) -> None:
        """For a NATS reconnect callback: reload in the background (not inside nats-py's
        reconnect logic), retrying until one reload succeeds; a newer reconnect restarts it."""
        if self._task is None:
            return  # not started, or stopped
        if self._reloading is not None:
            self._reloading.cancel()
        self._reloading = asyncio.create_task(self._reload_until_done(), name="hooks-reload")

    async def _reload_until_done(self) -> None:
        while True:
            try:
                await self.reload()
            except Exception as exc:  # NATS flapping: the old view stays meanwhile
                log.warning("event=hooks_reload_failed error=%s", quote(repr(exc)))
                await asyncio.sleep(RELOAD_RETRY_S)
                continue
            log.info("event=hooks_reloaded hooks=%d", len(self))
            self.reloaded.set()
            return

    async def _replay(self, watcher: KeyValue.KeyWatcher) -> dict[str, Hook]:
        hooks: dict[str, Hook] = {}
        while True:
            entry = await watcher.updates(timeout=30.0)  # type: ignore[no-untyped-call]
            if entry is None:  # initial values replayed
                return hooks
            self._apply(hooks, entry)

    async def stop(self) -> None:
        if self._reloading is not None:
            self._reloading.cancel()
            await asyncio.gather(self._reloading, return_exceptions=True)
            self._reloading = None
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

    async def _follow(self, watcher: KeyValue.KeyWatcher, hooks: dict[str, Hook]) -> None:
        async for entry in watcher:
            if entry is not None:
                self._apply(hooks, entry)
                self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    @staticmethod
    def _apply(hooks: dict[str, Hook], entry: KeyValue.Entry) -> None:
        hook = None
        if entry.operation not in (KV_DEL, KV_PURGE) and entry.value:
            hook = _decode(entry)
        if hook is None:  # deleted, unreadable or misplaced: whatever the key held is gone
            for host in [h for h, r in hooks.items() if r.key == entry.key]:
                del hooks[host]
            return
        hooks[hook.host] = hook
