"""The one write path to the `sip_hooks` KV bucket: the conversion of a written hook into
its stored record (`record` and `endpoint`, where secrets and header values are sealed)
and the compare-and-set loop every writer uses (`modify`): the ingress API, the
forwarders' state changes and the provisioner's static hooks. Key = `host_token(host)`;
reads are `hook_directory`'s.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from nats.js.errors import APIError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from sayna_sip.common import hook_secrets, kvwrite
from sayna_sip.common.hook import (
    REDACTED,
    Endpoint,
    EndpointEntry,
    Hook,
    HookEntry,
    Source,
    new_endpoint_id,
    utc_stamp,
)
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
    """The record a written hook becomes: each endpoint written as `endpoint()` makes
    it; endpoints not written kept as they are, unless the entry lists `endpoints` (then
    those are the host's endpoints). A static hook starts afresh on every write."""
    current = old if old is not None and source == "runtime" else None
    written = entry.endpoint_entries()  # `default` first
    made = [
        endpoint(e, entry.host, source, current.endpoint(e.id or "") if current else None, box)
        for e in written
    ]
    if current is None:
        hook = Hook(host=entry.host, source=source, updated_at=utc_stamp(), **made[0].state())
    else:
        hook = current.with_endpoint(made[0])
    if entry.endpoints is not None:
        return hook.changed(endpoints=tuple(made[1:]))
    return hook


def endpoint(
    entry: EndpointEntry, host: str, source: Source, old: Endpoint | None, box: SecretBox | None
) -> Endpoint:
    """The one conversion in of an endpoint: its settings as written, header values and a
    written secret sealed (a written secret replaces the old ones); the old endpoint's
    secrets and state kept. A static endpoint's secret and header values stay in the
    config: KV holds the header names only."""
    settings = entry.settings()
    settings["headers"] = _sealed(entry.headers, host, source, old, box)
    endpoint_id = entry.id or new_endpoint_id()
    if old is None or source == "config":
        new = Endpoint(id=endpoint_id, **settings)
    else:
        new = old.changed(**settings)
    if entry.secret and source == "runtime":
        new = hook_secrets.with_secret(new, host, _need(box, host), entry.secret)
    return new


def _sealed(
    headers: dict[str, str] | None,
    host: str,
    source: Source,
    old: Endpoint | None,
    box: SecretBox | None,
) -> dict[str, str] | None:
    if headers is None:  # not written: as they are (a seed client knows no headers)
        return old.headers if old is not None and source == "runtime" else None
    if not headers:  # written empty: none
        return None
    if source == "config":
        return dict.fromkeys(headers, "")
    kept = old.headers or {} if old is not None else {}
    return {
        name: kept[name]
        if value == REDACTED and name in kept
        else _need(box, host).seal(value, host)
        for name, value in headers.items()
    }


def _need(box: SecretBox | None, host: str) -> SecretBox:
    if box is None:
        raise hook_secrets.SecretBoxError(f"hook {host}: SIP_SECRETS_KEY is not set")
    return box


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
                await kvwrite.update(kv, key, after.encode(), revision)
            else:
                await kvwrite.create(kv, key, after.encode())
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
