"""The one write path to the `sip_hooks` KV bucket: the conversion of a written hook into
its stored record (`record`, where a secret is sealed) and the compare-and-set loop every
writer uses (`modify`): the ingress API, the forwarders' state changes and the
provisioner's static hooks. Key = `host_token(host)`; reads are `hook_directory`'s.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from nats.js.errors import APIError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from sayna_sip.common import hook_secrets
from sayna_sip.common.hook import Hook, HookEntry, Source, utc_stamp
from sayna_sip.common.hook_directory import read_hook
from sayna_sip.common.hosts import host_token
from sayna_sip.common.secretbox import SecretBox

_WRONG_LAST_SEQUENCE = (10071, 10164)  # JetStream's "wrong last sequence" error codes
CAS_ATTEMPTS = 20


class Delete(enum.Enum):
    """What a change returns to remove the hook."""

    DELETE = "delete"


DELETE = Delete.DELETE

# change(current record or None) -> the record to store, DELETE, or None to write nothing
Change = Callable[[Hook | None], Hook | Delete | None]


@dataclass(frozen=True)
class Written:
    """What `modify` found and what it left (equal when it wrote nothing)."""

    before: Hook | None
    after: Hook | None
    wrote: bool


def record(entry: HookEntry, source: Source, old: Hook | None, box: SecretBox | None) -> Hook:
    """The record a written hook becomes: its settings as written; the old record's
    secrets and state kept, unless a secret is written (sealed here: it replaces them).
    A static hook's secret stays in the config, and it starts afresh."""
    if old is None or source == "config":
        new = Hook(host=entry.host, source=source, updated_at=utc_stamp(), **entry.settings())
    else:
        new = old.changed(**entry.settings())
    if entry.secret and source == "runtime":
        if box is None:
            raise hook_secrets.SecretBoxError(f"hook {entry.host}: SIP_SECRETS_KEY is not set")
        new = hook_secrets.with_secret(new, box, entry.secret)
    return new


async def modify(kv: KeyValue, host: str, change: Change) -> Written:
    """Compare-and-set `change(current)` into the key of `host` (created when absent).

    A concurrent write re-reads and re-applies, so a change is never made on a stale
    record; exceptions raised by `change` (a refusal) propagate. Raises
    KeyWrongLastSequenceError when the key kept changing for CAS_ATTEMPTS rounds.
    """
    key = host_token(host)
    for _ in range(CAS_ATTEMPTS):
        before, revision = await read_hook(kv, key)
        after = change(before)
        if after is None:
            return Written(before, before, wrote=False)
        try:
            if after is DELETE:
                if before is None:
                    return Written(None, None, wrote=False)
                await _delete_if_unchanged(kv, key, revision)
                return Written(before, None, wrote=True)
            if revision:  # also a deleted key: its tombstone is the last revision
                await kv.update(key, after.encode(), last=revision)
            else:
                await kv.create(key, after.encode())
            return Written(before, after, wrote=True)
        except KeyWrongLastSequenceError:
            continue  # someone wrote in between: re-read and decide again
    raise KeyWrongLastSequenceError(description=f"hook {host} kept changing during the update")


async def _delete_if_unchanged(kv: KeyValue, key: str, revision: int) -> None:
    """nats-py's delete raises a bare APIError on a wrong revision: the same error as
    kv.update's, so the loop above retries both alike."""
    try:
        await kv.delete(key, last=revision)
    except APIError as exc:
        if exc.err_code in _WRONG_LAST_SEQUENCE:
            raise KeyWrongLastSequenceError(description=exc.description) from exc
        raise
