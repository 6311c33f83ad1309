"""A hook's own signing secrets: set, rotate with an overlap, and open for signing.

The KV record holds them sealed (SecretBox, bound to the host) with an id and a public
fingerprint; only the forwarders open them, at signing time. `signing_secrets` is the one
choice of what signs a hook: its own secrets, else its static config secrets, else
SIP_HOOK_SECRET.
"""

from __future__ import annotations

import secrets as _random
import time
from typing import TYPE_CHECKING

from sayna_sip.common.hook import GLOBAL_SECRET_ID, Hook, HookSecret, utc_stamp
from sayna_sip.common.secretbox import SecretBox, SecretBoxError, fingerprint

if TYPE_CHECKING:
    from sayna_sip.common.config import SipConfig

__all__ = [
    "SecretBoxError", "entry", "rotated", "signing_secrets", "static_secrets", "with_secret",
]  # fmt: skip


def entry(box: SecretBox, host: str, secret: str, now: float | None = None) -> HookSecret:
    """A new sealed secret entry for `host`."""
    return HookSecret(
        id="sec_" + _random.token_hex(6),
        fingerprint=fingerprint(secret),
        sealed=box.seal(secret, host),
        created_at=utc_stamp(now),
    )


def with_secret(record: Hook, box: SecretBox, secret: str) -> Hook:
    """The hook with `secret` as its only secret (set through POST /sip/hooks)."""
    return record.changed(secrets=(entry(box, record.host, secret),))


def rotated(
    record: Hook,
    box: SecretBox,
    secret: str,
    overlap: float,
    global_secrets: tuple[str, ...],
) -> Hook:
    """`secret` first; the secrets signing until now keep signing for `overlap` seconds.

    A hook that had only the global secret keeps it beside the new one through a
    `global` entry, so its receivers can switch over as well.
    """
    now = time.time()
    until = utc_stamp(now + overlap)
    previous = record.active_secrets(now)
    if not previous and global_secrets:
        previous = (HookSecret(GLOBAL_SECRET_ID, fingerprint(global_secrets[0])),)
    kept = tuple(
        s if s.expires_at is not None and s.expires_at < until else _expiring(s, until)
        for s in previous
    )
    return record.changed(secrets=(entry(box, record.host, secret, now), *kept))


def _expiring(secret: HookSecret, until: str) -> HookSecret:
    return HookSecret(secret.id, secret.fingerprint, secret.sealed, secret.created_at, until)


def static_secrets(record: Hook, sip: SipConfig) -> tuple[str, ...]:
    """The secrets the static config gives the hook's host (never stored in KV)."""
    entry = sip.static_hooks.get(record.host)
    return entry.secrets if entry is not None else ()


def signing_secrets(record: Hook, sip: SipConfig, now: float) -> tuple[str, ...]:
    """The secrets to sign a delivery to `record` with, newest first: its own (opened
    now), else its static config secrets, else the global SIP_HOOK_SECRET ones.

    Raises SecretBoxError when a sealed secret cannot be opened (SIP_SECRETS_KEY missing
    or without the key that sealed it).
    """
    active = record.active_secrets(now)
    if not active:
        return static_secrets(record, sip) or sip.hook_secrets
    out: list[str] = []
    for s in active:
        if s.id == GLOBAL_SECRET_ID:
            out.extend(sip.hook_secrets)
            continue
        if sip.secret_box is None:
            raise SecretBoxError(
                f"hook {record.host} has its own secret but SIP_SECRETS_KEY is not set"
            )
        out.append(sip.secret_box.open(s.sealed, record.host))
    return tuple(out)
