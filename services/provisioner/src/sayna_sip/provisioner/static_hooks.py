"""Write the static configuration's hooks into the `sip_hooks` KV bucket.

Config hooks are stored with `source: config`. A config hook that is already stored as
is stays untouched (its `updated_at` and KV history stay stable across runs); config
entries the configuration no longer has are deleted; runtime entries are left alone,
except that a static hook wins over a runtime hook for the same host. Every write is a
compare-and-set on the key's revision, so a concurrent runtime write is never lost
silently: the pass is re-read and retried.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from sayna_sip.common.config import HookConfig
from sayna_sip.common.hook import Hook
from sayna_sip.common.hookstore import delete_if_unchanged
from sayna_sip.common.hosts import host_token
from sayna_sip.common.topology import HOOKS_BUCKET
from sayna_sip.provisioner.errors import ProvisionError
from sayna_sip.provisioner.summary import Summary

log = logging.getLogger("sayna_sip.provisioner")

_PASSES = 3


@dataclass(frozen=True)
class _Stored:
    record: Hook | None  # None: the value does not decode
    revision: int


async def sync_static_hooks(
    kv: KeyValue, hooks: Sequence[HookConfig], summary: Summary | None = None
) -> Summary:
    """Make the config-sourced entries of `kv` equal to `hooks`."""
    summary = summary if summary is not None else Summary()
    for _ in range(_PASSES):
        try:
            await _sync_once(kv, hooks, summary)
            return summary
        except KeyWrongLastSequenceError:
            continue  # someone wrote meanwhile: re-read and decide again
    raise ProvisionError(
        f"static hooks: {HOOKS_BUCKET} kept changing during {_PASSES} passes; run provision again"
    )


async def _sync_once(kv: KeyValue, hooks: Sequence[HookConfig], summary: Summary) -> None:
    stored = await _read_all(kv)
    wanted = {host_token(h.host): h for h in hooks}
    for key, hook in wanted.items():
        await _write(kv, key, hook, stored.get(key), summary)
    for key, entry in stored.items():
        if key in wanted or entry.record is None or entry.record.source != "config":
            continue
        await delete_if_unchanged(kv, key, entry.revision)
        log.info("event=static_hook_removed host=%s", entry.record.host)
        summary.record("hook", entry.record.host, "removed")


async def _write(
    kv: KeyValue, key: str, hook: HookConfig, entry: _Stored | None, summary: Summary
) -> None:
    old = entry.record if entry is not None else None
    new = Hook.from_config(hook)
    if old is not None and old.same_definition(new):
        summary.record("hook", hook.host, "unchanged")
        return
    value = new.encode()
    if entry is None:
        await kv.create(key, value)
        log.info("event=static_hook_created host=%s", hook.host)
        summary.record("hook", hook.host, "created")
        return
    await kv.update(key, value, last=entry.revision)
    if old is not None and old.source == "runtime":
        log.warning(
            "event=static_hook_overrides_runtime host=%s runtime_url=%s", hook.host, old.url
        )
    else:
        log.info("event=static_hook_updated host=%s", hook.host)
    summary.record("hook", hook.host, "updated")


async def _read_all(kv: KeyValue) -> dict[str, _Stored]:
    """Every live key with its record and revision (deleted keys are skipped)."""
    watcher = await kv.watchall(ignore_deletes=True)
    out: dict[str, _Stored] = {}
    try:
        while (entry := await watcher.updates(timeout=10.0)) is not None:  # type: ignore[no-untyped-call]
            try:
                record: Hook | None = Hook.decode(entry.value or b"")
            except msgspec.DecodeError:
                record = None
            out[entry.key] = _Stored(record, entry.revision or 0)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return out
