"""One delivery attempt: resolve the hook now, sign, POST, classify.

The hook is looked up at each attempt (KV watch cache, then KV itself on a miss, so a
hook created a moment ago is not mistaken for a removed one), which makes an updated
URL apply to pending retries and a deleted hook dead-letter them.
"""

from __future__ import annotations

import logging
import time

import httpx
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.hookstore import HookRecord
from sayna_sip.common.hosts import host_token
from sayna_sip.forwarder import client, signing
from sayna_sip.forwarder.envelope import Delivery
from sayna_sip.forwarder.hooks import LiveHooks
from sayna_sip.forwarder.policy import Kind, Result

log = logging.getLogger("sayna_sip.forwarder")


class Deliverer:
    def __init__(
        self,
        config: ServerConfig,
        http: httpx.AsyncClient,
        hooks: LiveHooks,
        kv: KeyValue,
    ) -> None:
        self._config = config
        self._http = http
        self._hooks = hooks
        self._kv = kv

    async def resolve(self, hook_host: str) -> HookRecord | None:
        record = self._hooks.get(hook_host)
        if record is not None:
            return record
        try:
            entry = await self._kv.get(host_token(hook_host))
        except KeyNotFoundError:  # also raised for deleted/purged keys
            return None
        return HookRecord.decode(entry.value) if entry.value else None

    def secrets(self, hook_host: str) -> tuple[str, ...]:
        sip = self._config.sip
        return sip.secrets_for(hook_host) if sip else ()

    async def attempt(self, d: Delivery, body: bytes) -> Result:
        hook = await self.resolve(d.hook)
        if hook is None:
            return Result(Kind.REMOVED, error=f"hook {d.hook} no longer exists")
        headers = signing.signature_headers(
            d.event_id, body, self.secrets(hook.host), int(time.time())
        )
        return await client.post(
            self._http, hook.url, body, headers, self._config.forwarder.timeout
        )


def warn_if_unsigned(config: ServerConfig) -> None:
    """One warning at start when some hook would be delivered unsigned."""
    sip = config.sip
    if sip is None:
        return  # SIP disabled: stay quiet
    unsigned = [h.host for h in sip.hooks if not sip.secrets_for(h.host)]
    if not sip.hook_secrets:
        unsigned.append("<runtime hooks>")
    if unsigned:
        log.warning(
            "event=hooks_unsigned hosts=%s hint=%s",
            ",".join(unsigned),
            "set SIP_HOOK_SECRET or a per-hook secret to sign deliveries",
        )
