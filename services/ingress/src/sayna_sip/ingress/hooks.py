"""Runtime hooks in the `sip_hooks` KV bucket: list, upsert and delete with CAS.

Every read goes to KV (no in-process copy), so all ingress replicas agree. Each key is
written with compare-and-set against the revision just read; on a conflict the key is
re-read and the write retried, so concurrent writers never lose an update and a
`config` record written meanwhile (by the provisioner) is never overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from sayna_sip.common.hookstore import HookRecord, delete_if_unchanged
from sayna_sip.common.hosts import host_token
from sayna_sip.common.logs import quote
from sayna_sip.ingress.errors import Conflict, IngressError, Unavailable

log = logging.getLogger("sayna_sip.ingress")

T = TypeVar("T")

CAS_ATTEMPTS = 20
SNAPSHOT_TIMEOUT_S = 5.0


class HookStore:
    """The hooks API's view of `sip_hooks`."""

    def __init__(self, kv: KeyValue, connected: Callable[[], bool] = lambda: True) -> None:
        self._kv = kv
        self._connected = connected

    async def all(self) -> list[HookRecord]:
        """Every hook, sorted by host, read from KV now."""
        self._check_connected()
        return await _guard(self._snapshot())

    def _check_connected(self) -> None:
        if not self._connected():  # fail fast rather than wait out KV request timeouts
            raise Unavailable("NATS is not connected; retry later", "nats_unavailable")

    async def upsert(self, hooks: list[tuple[str, str]]) -> list[HookRecord]:
        self._check_connected()
        for host, _ in hooks:  # refuse the whole request before writing any of it
            _writable(host, (await _guard(self._current(host)))[0])
        for host, url in hooks:
            await _guard(self._put(host, url))
            log.info("event=hook_saved host=%s url=%s source=runtime", host, url)
        return await self.all()

    async def remove(self, hosts: list[str]) -> tuple[list[HookRecord], list[str]]:
        """Delete runtime hooks; returns the hooks left and the hosts that had none."""
        self._check_connected()
        missing: list[str] = []
        for host in hosts:
            if await _guard(self._delete(host)):
                log.info("event=hook_deleted host=%s", host)
            else:
                missing.append(host)
        return await self.all(), missing

    async def _current(self, host: str) -> tuple[HookRecord | None, int]:
        """The record at `host` and its revision (0 when absent or deleted)."""
        try:
            entry = await self._kv.get(host_token(host))
        except KeyNotFoundError as exc:
            deleted = getattr(exc, "entry", None)
            return None, deleted.revision if deleted is not None else 0
        try:
            return HookRecord.decode(entry.value or b""), entry.revision or 0
        except msgspec.DecodeError:
            return None, entry.revision or 0  # unreadable record: overwrite it

    async def _put(self, host: str, url: str) -> None:
        for _ in range(CAS_ATTEMPTS):
            record, revision = await self._current(host)
            _writable(host, record)
            value = HookRecord.new(host, url, "runtime").encode()
            try:
                if revision:
                    await self._kv.update(host_token(host), value, last=revision)
                else:
                    await self._kv.create(host_token(host), value)
                return
            except KeyWrongLastSequenceError:
                continue  # someone wrote in between: re-read and decide again
        raise Unavailable(f"SIP hook host '{host}' is being changed concurrently; retry", "busy")

    async def _delete(self, host: str) -> bool:
        for _ in range(CAS_ATTEMPTS):
            record, revision = await self._current(host)
            if record is None:
                return False
            _writable(host, record)
            try:
                await delete_if_unchanged(self._kv, host_token(host), revision)
                return True
            except KeyWrongLastSequenceError:
                continue
        raise Unavailable(f"SIP hook host '{host}' is being changed concurrently; retry", "busy")

    async def _snapshot(self) -> list[HookRecord]:
        watcher = await self._kv.watchall(ignore_deletes=True)
        records: list[HookRecord] = []
        try:
            while True:
                entry = await watcher.updates(SNAPSHOT_TIMEOUT_S)  # type: ignore[no-untyped-call]
                if entry is None:  # every current value replayed
                    break
                try:
                    records.append(HookRecord.decode(entry.value or b""))
                except msgspec.DecodeError:
                    log.warning("event=hook_record_invalid key=%s", entry.key)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return sorted(records, key=lambda r: r.host)


def _writable(host: str, record: HookRecord | None) -> None:
    if record is not None and record.source == "config":
        raise Conflict(
            f"SIP hook host '{host}' is defined in the static configuration and is read-only",
            "config_hook",
        )


async def _guard(op: Awaitable[T]) -> T:
    """Run a KV operation, turning NATS trouble into a 503."""
    try:
        return await op
    except IngressError:
        raise
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        log.warning("event=hook_store_unavailable error=%s", quote(repr(exc)))
        raise Unavailable(f"NATS KV is unavailable: {exc!r}", "nats_unavailable") from exc
