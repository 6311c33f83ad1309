"""Tenant hooks in the `sip_hooks` KV bucket: the record, its key and its CAS writes
(the watched cache and KV reads are `hook_directory`).

Key = `host_token(host)`. Value = JSON `{host, url, source, updated_at}` plus, when set,
`events` (filter), `secrets` (sealed with SecretBox, never in clear), `enabled`,
`disabled_reason` and `failing_since`. Fields at their defaults are not written, so a
plain hook's value is byte-for-byte what earlier releases wrote, and their values decode.
Static hooks take their secrets from the config, never from KV.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import msgspec
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from sayna_sip.common.hosts import host_token

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


def candidate_keys(host: str) -> list[str]:
    """KV keys of the hooks that could match `host`, in `match_host`'s order."""
    labels = host.lower().split(".")
    wildcards = ("*." + ".".join(labels[i:]) for i in range(1, len(labels)))
    return [host_token(host), *(host_token(w) for w in wildcards)]
