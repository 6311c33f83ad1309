"""Tenant hooks in the `sip_hooks` KV bucket: host matching and the CAS writes of a
`Hook` (the model and its codec are `hook`; the watched cache and KV reads are
`hook_directory`). Key = `host_token(host)`.
"""

from __future__ import annotations

from collections.abc import Callable

from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from sayna_sip.common.hook import Hook
from sayna_sip.common.hosts import host_token

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


CAS_ATTEMPTS = 20


async def modify(kv: KeyValue, host: str, change: Callable[[Hook], Hook | None]) -> Hook | None:
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
        current = Hook.decode(entry.value)
        updated = change(current)
        if updated is None:
            return current
        try:
            await kv.update(key, updated.encode(), last=entry.revision)
            return updated
        except KeyWrongLastSequenceError:
            continue
    raise KeyWrongLastSequenceError(description=f"hook {host} kept changing during the update")


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
