"""Write the static configuration's hooks into the `sip_hooks` KV bucket.

Config hooks are stored with `source: config`. A config hook that is already stored as
is stays untouched (its `updated_at` and KV history stay stable across runs); config
entries the configuration no longer has are deleted; runtime entries are left alone,
except that a static hook wins over a runtime hook for the same host. The bucket is read
through the hook directory's snapshot and written through `hookstore.modify`, whose
compare-and-set never loses a concurrent runtime write.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from sayna_sip.common import hookstore
from sayna_sip.common.hook import Hook, HookEntry
from sayna_sip.common.hook_directory import snapshot
from sayna_sip.common.hookstore import DELETE, Delete
from sayna_sip.common.topology import HOOKS_BUCKET
from sayna_sip.provisioner.errors import ProvisionError
from sayna_sip.provisioner.summary import Summary

log = logging.getLogger("sayna_sip.provisioner")


async def sync_static_hooks(
    kv: KeyValue, hooks: Sequence[HookEntry], summary: Summary | None = None
) -> Summary:
    """Make the config-sourced entries of `kv` equal to `hooks`."""
    summary = summary if summary is not None else Summary()
    try:
        for hook in hooks:
            await _write(kv, hook, summary)
        wanted = {hook.host for hook in hooks}
        for stored in await snapshot(kv):
            if stored.source == "config" and stored.host not in wanted:
                await _remove(kv, stored.host, summary)
    except KeyWrongLastSequenceError:
        raise ProvisionError(
            f"static hooks: {HOOKS_BUCKET} kept changing meanwhile; run provision again"
        ) from None
    return summary


async def _write(kv: KeyValue, hook: HookEntry, summary: Summary) -> None:
    new = hookstore.record(hook, "config", None, None)

    def change(old: Hook | None) -> Hook | None:
        return None if old is not None and old.same_definition(new) else new

    done = await hookstore.modify(kv, hook.host, change)
    old = done.before
    if not done.wrote:
        summary.record("hook", hook.host, "unchanged")
    elif old is None:
        log.info("event=static_hook_created host=%s", hook.host)
        summary.record("hook", hook.host, "created")
    else:
        if old.source == "runtime":
            log.warning(
                "event=static_hook_overrides_runtime host=%s runtime_url=%s", hook.host, old.url
            )
        else:
            log.info("event=static_hook_updated host=%s", hook.host)
        summary.record("hook", hook.host, "updated")


async def _remove(kv: KeyValue, host: str, summary: Summary) -> None:
    def change(old: Hook | None) -> Delete | None:
        return DELETE if old is not None and old.source == "config" else None

    if (await hookstore.modify(kv, host, change)).wrote:
        log.info("event=static_hook_removed host=%s", host)
        summary.record("hook", host, "removed")
