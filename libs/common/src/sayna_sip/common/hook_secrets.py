"""An endpoint's sealed values: its signing secrets (set, rotate with an overlap, open
for signing) and its custom header values (opened for sending).

The KV record holds them sealed (SecretBox, bound to the host), secrets with an id and a
public fingerprint; only the forwarders open them, at sending time. `signing_secrets` is
the one choice of what signs an endpoint: its own secrets, else its static config
secrets, else SIP_HOOK_SECRET. A static endpoint's header values are its config's.
"""

from __future__ import annotations

import secrets as _random
import time
from typing import TYPE_CHECKING

from sayna_sip.common.hook import (
    DEFAULT_ENDPOINT,
    GLOBAL_SECRET_ID,
    Endpoint,
    EndpointEntry,
    Hook,
    HookSecret,
    utc_stamp,
)
from sayna_sip.common.secretbox import SecretBox, SecretBoxError, fingerprint

if TYPE_CHECKING:
    from sayna_sip.common.config import SipConfig

__all__ = [
    "SecretBoxError", "entry", "open_headers", "rotated", "signing_secrets", "static_secrets",
    "unopenable",
    "with_secret",
]  # fmt: skip


def entry(box: SecretBox, host: str, secret: str, now: float | None = None) -> HookSecret:
    """A new sealed secret entry for `host`."""
    return HookSecret(
        id="sec_" + _random.token_hex(6),
        fingerprint=fingerprint(secret),
        sealed=box.seal(secret, host),
        created_at=utc_stamp(now),
    )


def with_secret(record: Endpoint, host: str, box: SecretBox, secret: str) -> Endpoint:
    """The endpoint with `secret` as its only secret (set by a write of its settings)."""
    return record.changed(secrets=(entry(box, host, secret),))


# Secrets that keep signing beside the newest during an overlap: each adds a signature
# to every delivery, and receivers refuse headers past a few KB (201 after 200 rotations).
MAX_OVERLAPPING = 3


def rotated(
    record: Endpoint,
    host: str,
    box: SecretBox,
    secret: str,
    overlap: float,
    global_secrets: tuple[str, ...],
) -> tuple[Endpoint, tuple[HookSecret, ...]]:
    """`secret` first; the newest MAX_OVERLAPPING secrets signing until now keep signing
    for `overlap` seconds, and the older ones stop now (returned, to say so).

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
        for s in previous[:MAX_OVERLAPPING]
    )
    new = record.changed(secrets=(entry(box, host, secret, now), *kept))
    return new, previous[MAX_OVERLAPPING:]


def _expiring(secret: HookSecret, until: str) -> HookSecret:
    return HookSecret(secret.id, secret.fingerprint, secret.sealed, secret.created_at, until)


def unopenable(hook: Hook, box: SecretBox | None, now: float) -> bool:
    """True when an active secret of one of `hook`'s endpoints was sealed by no key in
    `box` (or there is no box): this process cannot sign for it."""
    return any(
        s.id != GLOBAL_SECRET_ID and (box is None or not box.has_key_for(s.sealed))
        for endpoint in hook.endpoint_list()
        for s in endpoint.active_secrets(now)
    )


def _static(hook: Hook, endpoint: Endpoint, sip: SipConfig) -> EndpointEntry | None:
    """The config's entry of a static endpoint (found by host, then endpoint id)."""
    entry = sip.static_hooks.get(hook.host)
    if entry is None:
        return None
    if endpoint.id == DEFAULT_ENDPOINT:
        return entry.endpoint_entries()[0]
    return next((e for e in entry.endpoints or () if e.id == endpoint.id), None)


def static_secrets(hook: Hook, endpoint: Endpoint, sip: SipConfig) -> tuple[str, ...]:
    """The secrets the static config gives the endpoint (never stored in KV)."""
    entry = _static(hook, endpoint, sip)
    return entry.secrets if entry is not None else ()


def signing_secrets(hook: Hook, endpoint: Endpoint, sip: SipConfig, now: float) -> tuple[str, ...]:
    """The secrets to sign a delivery to `endpoint` of `hook` with, newest first: its own
    (opened now), else its static config secrets, else the global SIP_HOOK_SECRET ones.

    Raises SecretBoxError when a sealed secret cannot be opened (SIP_SECRETS_KEY missing
    or without the key that sealed it).
    """
    active = endpoint.active_secrets(now)
    if not active:
        return static_secrets(hook, endpoint, sip) or sip.hook_secrets
    out: list[str] = []
    for s in active:
        if s.id == GLOBAL_SECRET_ID:
            out.extend(sip.hook_secrets)
            continue
        out.append(_box(sip, hook, "its own secret").open(s.sealed, hook.host))
    return tuple(out)


def open_headers(hook: Hook, endpoint: Endpoint, sip: SipConfig) -> dict[str, str]:
    """The endpoint's custom headers with their values opened (a static one's from the
    config). Raises SecretBoxError as `signing_secrets` does."""
    if not endpoint.headers:
        return {}
    static = _static(hook, endpoint, sip) if hook.source == "config" else None
    given = (static.headers or {}) if static is not None else {}
    return {
        name: _box(sip, hook, "sealed header values").open(sealed, hook.host)
        if sealed
        else given.get(name, "")
        for name, sealed in endpoint.headers.items()
    }


def _box(sip: SipConfig, hook: Hook, what: str) -> SecretBox:
    if sip.secret_box is None:
        raise SecretBoxError(f"hook {hook.host} has {what} but SIP_SECRETS_KEY is not set")
    return sip.secret_box
