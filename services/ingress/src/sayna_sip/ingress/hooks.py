"""Runtime hooks in the `sip_hooks` KV bucket: list, upsert, change and delete.

Every read goes to KV (no in-process copy), so all ingress replicas agree; the reads are
`common.hook_directory`'s, shared with router and forwarder. Every write is
`common.hookstore.modify`'s compare-and-set, which re-reads and re-decides on a conflict,
so concurrent writers never lose an update and a `config` record written meanwhile (by
the provisioner) is never overwritten.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from sayna_sip.common import hookstore, kvwrite
from sayna_sip.common.hook import REDACTED, EndpointEntry, Hook, HookEntry
from sayna_sip.common.hook_directory import read_hook, snapshot
from sayna_sip.common.hookstore import DELETE, Delete
from sayna_sip.common.hosts import host_token
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.logs import quote
from sayna_sip.common.secretbox import SecretBox
from sayna_sip.ingress.errors import (
    BadRequest,
    Conflict,
    IngressError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)

log = logging.getLogger("sayna_sip.ingress")

T = TypeVar("T")


class HookStore:
    """The hooks API's view of `sip_hooks`."""

    def __init__(
        self,
        kv: KeyValue,
        connected: Callable[[], bool] = lambda: True,
        box: SecretBox | None = None,
    ) -> None:
        self._kv = kv
        self._connected = connected
        self._box = box

    async def all(self) -> list[Hook]:
        """Every hook, sorted by host, read from KV now."""
        self._check_connected()
        return await _guard(snapshot(self._kv))

    def _check_connected(self) -> None:
        if not self._connected():  # fail fast rather than wait out KV request timeouts
            raise Unavailable("NATS is not connected; retry later", ErrorCode.NATS_UNAVAILABLE)

    async def upsert(self, hooks: list[HookEntry]) -> list[Hook]:
        """Write validated entries (`hookrules.upserts`): all refused before any is written
        when one host is static; a sent secret is sealed on the way in."""
        self._check_connected()
        if self._box is None and any(_sealing(e) for h in hooks for e in h.endpoint_entries()):
            raise BadRequest(
                "A hook secret or header needs SIP_SECRETS_KEY (the key that encrypts them at "
                "rest)",
                ErrorCode.SECRETS_KEY_MISSING,
            )
        for hook in hooks:  # refuse the whole request before writing any of it
            _writable(hook.host, (await _guard(self._current(hook.host)))[0])
        for hook in hooks:
            await self._write(hook.host, functools.partial(self._record, hook))
            log.info(
                "event=hook_saved host=%s url=%s source=runtime own_secret=%s",
                hook.host, hook.url, str(bool(hook.secret)).lower(),
            )  # fmt: skip
        return await self.all()

    async def get(self, host: str) -> Hook:
        """The hook of `host` from KV now; NotFound when there is none."""
        self._check_connected()
        record, _ = await _guard(self._current(host))
        if record is None:
            raise NotFound(f"no hook for host '{host}'", ErrorCode.HOOK_NOT_FOUND)
        return record

    async def change(self, host: str, change: Callable[[Hook], Hook | None]) -> Hook:
        """Compare-and-set `change` on a runtime hook (404 unknown, 409 static)."""
        _writable(host, await self.get(host))

        def checked(record: Hook | None) -> Hook | None:
            if record is None:
                raise NotFound(f"no hook for host '{host}'", ErrorCode.HOOK_NOT_FOUND)
            _writable(host, record)
            return change(record)

        done = await self._write(host, checked)
        assert done.after is not None  # checked() refused a missing hook
        return done.after

    def box_for(self, entry: EndpointEntry) -> SecretBox | None:
        """The box when `entry` has something to seal (a secret, a header value), else None;
        400 when it has and SIP_SECRETS_KEY is not set."""
        return self.box() if _sealing(entry) else self._box

    def box(self) -> SecretBox:
        if self._box is None:
            raise BadRequest(
                "Hook secrets need SIP_SECRETS_KEY (the key that encrypts secrets at rest)",
                ErrorCode.SECRETS_KEY_MISSING,
            )
        return self._box

    async def remove(self, hosts: list[str]) -> tuple[list[Hook], list[str]]:
        """Delete runtime hooks; returns the hooks left and the hosts that had none."""
        self._check_connected()
        missing: list[str] = []
        for host in hosts:
            if await _guard(self._delete(host)):
                log.info("event=hook_deleted host=%s", host)
            else:
                missing.append(host)
        return await self.all(), missing

    async def _current(self, host: str) -> tuple[Hook | None, int]:
        """The record at `host` and its revision (0 when absent or deleted)."""
        return await read_hook(self._kv, host_token(host))

    def _record(self, hook: HookEntry, old: Hook | None) -> Hook:
        _writable(hook.host, old)
        return hookstore.record(hook, "runtime", old, self._box)

    async def _write(self, host: str, change: hookstore.Change) -> hookstore.Written:
        try:
            return await _guard(hookstore.modify(self._kv, host, change))
        except KeyWrongLastSequenceError:
            raise Unavailable(
                f"SIP hook host '{host}' is being changed concurrently; retry", ErrorCode.BUSY
            ) from None

    async def _delete(self, host: str) -> bool:
        def change(record: Hook | None) -> Delete | None:
            _writable(host, record)
            return DELETE if record is not None else None

        return (await self._write(host, change)).wrote


def _sealing(entry: EndpointEntry) -> bool:
    return bool(entry.secret) or any(v != REDACTED for v in (entry.headers or {}).values())


def _writable(host: str, record: Hook | None) -> None:
    if record is not None and record.source == "config":
        raise Conflict(
            f"SIP hook host '{host}' is defined in the static configuration and is read-only",
            ErrorCode.CONFIG_HOOK,
        )


async def _guard(op: Awaitable[T]) -> T:
    """Run a KV operation, turning NATS trouble into a 503."""
    try:
        return await op
    except (IngressError, KeyWrongLastSequenceError):  # the caller's to answer (busy)
        raise
    except kvwrite.RecordTooLarge as exc:  # refused before sending: the connection is fine
        raise PayloadTooLarge(str(exc), ErrorCode.RECORD_TOO_LARGE) from None
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        log.warning("event=hook_store_unavailable error=%s", quote(repr(exc)))
        raise Unavailable(f"NATS KV is unavailable: {exc!r}", ErrorCode.NATS_UNAVAILABLE) from exc
