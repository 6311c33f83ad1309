"""Hooks whose own secrets no configured key opens: a fault of ours, never the tenant's.

Without SIP_SECRETS_KEY, or without the key that sealed a hook's secret, the forwarder
cannot sign for that hook. Its deliveries then wait in JetStream (policy.Wait: nothing
sent, no attempt, breaker and failing_since untouched) and /readyz answers 503
`secrets_unreadable` while any such hook exists, so a deploy with the wrong key stops
rather than rolls on; once the key is set the waiting deliveries go out.
"""

from __future__ import annotations

import time

from sayna_sip.common import hook_secrets
from sayna_sip.common.hook_directory import HookDirectory
from sayna_sip.common.secretbox import SecretBox


class SealedSecrets:
    """Which cached hooks this forwarder cannot sign for, recomputed after a change."""

    def __init__(self, box: SecretBox | None) -> None:
        self._box = box
        self._hooks: HookDirectory | None = None
        self._dirty = True
        self._unreadable: list[str] = []

    def watch(self, hooks: HookDirectory) -> None:
        self._hooks = hooks

    def changed(self) -> None:
        """HookDirectory's on_change: the next `unreadable()` scans again."""
        self._dirty = True

    def unreadable(self) -> list[str]:
        """Hosts of the hooks whose own secrets no configured key opens, sorted."""
        if self._hooks is None:
            return []
        if self._dirty:
            self._dirty = False
            now = time.time()
            self._unreadable = sorted(
                h.host
                for h in self._hooks.hooks.values()
                if h.secrets and hook_secrets.unopenable(h, self._box, now)
            )
        return self._unreadable
