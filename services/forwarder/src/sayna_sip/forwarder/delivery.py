"""One delivery attempt: resolve the hook and its endpoint now, sign, POST, classify.

The hook is looked up at each attempt (KV watch cache, then KV itself on a miss, so a
hook created a moment ago is not mistaken for a removed one), which makes an updated
URL apply to pending retries and a deleted hook or endpoint dead-letter them. Every
attempt, retry, redrive, replay and test send carries the endpoint's custom headers.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from sayna_sip.common import hook_secrets, tracing
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.contracts import Header
from sayna_sip.common.delivery import Delivery
from sayna_sip.common.hook import DEFAULT_ENDPOINT, Endpoint, Hook
from sayna_sip.common.hook_directory import HookDirectory
from sayna_sip.common.logs import quote
from sayna_sip.forwarder import client, signing
from sayna_sip.forwarder.endpoint_health import FailureWatch
from sayna_sip.forwarder.policy import Kind, Result

log = logging.getLogger("sayna_sip.forwarder")


class Deliverer:
    def __init__(self, config: ServerConfig, http: client.HookClient, hooks: HookDirectory) -> None:
        self._config = config
        self._http = http
        self._hooks = hooks
        self.watch: FailureWatch | None = None  # set by the app when SIP is configured
        self._tracer = tracing.Tracer("sayna_sip.forwarder")

    async def resolve(self, hook_host: str) -> Hook | None:
        return await self._hooks.resolve(hook_host)

    async def attempt(self, d: Delivery, body: bytes) -> Result:
        hook = await self.resolve(d.hook)
        endpoint = hook.endpoint(d.endpoint) if hook is not None else None
        if hook is None or endpoint is None:
            what = f"hook {d.hook}" if hook is None else f"endpoint {d.endpoint} of hook {d.hook}"
            return Result(Kind.REMOVED, error=f"{what} no longer exists")
        if not endpoint.enabled:
            reason = endpoint.disabled_reason or "disabled"
            what = hook.host if d.endpoint == DEFAULT_ENDPOINT else f"{hook.host} {d.endpoint}"
            return Result(Kind.DISABLED, error=f"hook {what} is disabled: {reason}")
        result = await self.send(hook, endpoint, d.event_id, body, d.call_seq)
        if self.watch is not None and result.was_attempt:
            self.watch.observe(hook, endpoint, result.kind is Kind.DELIVERED)
        return result

    async def send(
        self, hook: Hook, endpoint: Endpoint, event_id: str, body: bytes, call_seq: int = 0
    ) -> Result:
        """One signed POST of `body` to `endpoint` of `hook`, with its custom headers
        (deliveries and test sends alike) and, for a numbered copy, its place in its
        call (`Sayna-Call-Seq`, so the tenant can see a gap or a late one)."""
        sip = self._config.sip
        try:
            secrets = hook_secrets.signing_secrets(hook, endpoint, sip, time.time()) if sip else ()
            custom = hook_secrets.open_headers(hook, endpoint, sip) if sip else {}
        except hook_secrets.SecretBoxError as exc:  # our key is wrong, not their endpoint
            log.error("event=hook_secret_unreadable host=%s error=%s", hook.host, quote(exc))
            error = f"cannot open the hook's secret (SIP_SECRETS_KEY): {exc}"
            return Result(Kind.UNSEALED, error=error, url=endpoint.url)
        headers = signing.signature_headers(event_id, body, secrets, int(time.time()))
        if custom:  # validated names never collide with the signature's or the framing's
            headers = {**custom, **headers}
        if call_seq > 0:
            headers[Header.CALL_SEQ] = str(call_seq)  # the same name the tenant sees
        self._tracer.inject(headers)  # the attempt span's traceparent, for the tenant
        result = await self._http.post(endpoint.url, body, headers, self._config.forwarder.timeout)
        sent = signing.shown({**client.SESSION_HEADERS, **headers}, custom)
        return dataclasses.replace(result, request_headers=sent)

    async def post_ops(self, url: str, body: bytes, event_id: str) -> int | None:
        """An operator notice to SIP_OPS_WEBHOOK_URL, signed with the global secret."""
        sip = self._config.sip
        secrets = sip.hook_secrets if sip else ()
        headers = signing.signature_headers(event_id, body, secrets, int(time.time()))
        result = await self._http.post(url, body, headers, self._config.forwarder.timeout)
        if result.kind is not Kind.DELIVERED:
            log.warning("event=ops_webhook_failed url=%s error=%s", url, quote(result.error))
        return result.status


def warn_if_unsigned(config: ServerConfig) -> None:
    """One warning at start when some hook would be delivered unsigned."""
    sip = config.sip
    if sip is None:
        return  # SIP disabled: stay quiet
    unsigned = [
        h.host
        for h in sip.hooks
        if not all(e.secrets or sip.hook_secrets for e in h.endpoint_entries())
    ]
    if not sip.hook_secrets:
        unsigned.append("<runtime hooks>")
    if unsigned:
        log.warning(
            "event=hooks_unsigned hosts=%s hint=%s",
            ",".join(unsigned),
            "set SIP_HOOK_SECRET or a per-hook secret to sign deliveries",
        )
