"""Provision LiveKit SIP (trunk + dispatch rule) with bounded retries and the spec's log lines.

Runs only when SIP is configured, LiveKit credentials are set and LIVEKIT_URL is set:
credentials without a URL are local development (the ingress needs them to verify
webhooks, there is no LiveKit server to provision), so that is one info line and a skip,
as `sayna-sip up` does, rather than a failure that would stop compose. Transport errors and
5xx/429 answers are retried a bounded number of times (livekit-api's own region
failover is turned off so the bound is ours); any other refusal (bad credentials,
invalid request) fails at once. Every failure names the trunk and the dispatch rule.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
from livekit import api

from sayna_sip.common.config import LiveKitConfig, ServerConfig, SipConfig
from sayna_sip.common.logs import quote
from sayna_sip.provisioner.errors import LiveKitProvisionError
from sayna_sip.provisioner.livekit_reconcile import (
    desired_rule,
    desired_trunk,
    dispatch_name,
    ensure_rule,
    ensure_trunk,
    trunk_name,
)
from sayna_sip.provisioner.summary import Summary

log = logging.getLogger("sayna_sip.provisioner")


@dataclass(frozen=True)
class Retry:
    """How hard to try LiveKit: attempts of the whole reconcile, backoff, per-call timeout."""

    attempts: int = 5
    first_delay: float = 1.0
    max_delay: float = 8.0
    request_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Retry.attempts must be at least 1")


async def provision_livekit(
    config: ServerConfig, summary: Summary, retry: Retry | None = None
) -> None:
    """Create or update the trunk and dispatch rule; raise LiveKitProvisionError on failure."""
    sip = config.sip
    if sip is None:
        return
    names = f"trunk={trunk_name(sip.room_prefix)} dispatch={dispatch_name(sip.room_prefix)}"
    lk = config.livekit
    if _skipped(lk, names) or not lk.http_url:  # (the second test narrows the type)
        return
    log.info("SIP configuration detected, provisioning LiveKit SIP trunk and dispatch rules")
    retry = retry or Retry()
    client = api.LiveKitAPI(
        lk.http_url,
        lk.api_key,
        lk.api_secret,
        timeout=aiohttp.ClientTimeout(total=retry.request_timeout),
        failover=False,
    )
    try:
        where = f"{names} url={lk.http_url}"
        trunk_id, rule_id = await _with_retries(client, sip, summary, retry, where)
    finally:
        await client.aclose()
    log.info(
        "Successfully provisioned SIP resources: trunk=%s, dispatch=%s trunk_id=%s dispatch_id=%s",
        trunk_name(sip.room_prefix),
        dispatch_name(sip.room_prefix),
        trunk_id,
        rule_id,
    )


def _skipped(lk: LiveKitConfig, names: str) -> bool:
    """True (after one info line saying why) when LiveKit SIP is not to be provisioned."""
    if not lk.has_credentials:
        log.info(
            "event=livekit_sip_skipped reason=missing_credentials %s hint=%s",
            names,
            quote("set LIVEKIT_API_KEY and LIVEKIT_API_SECRET to provision LiveKit SIP"),
        )
        return True
    if not lk.http_url:
        log.info(
            "event=livekit_sip_skipped reason=LIVEKIT_URL_not_set %s hint=%s",
            names,
            quote(
                "set LIVEKIT_URL to provision LiveKit SIP (the key pair still verifies webhooks)"
            ),
        )
        return True
    return False


async def _once(client: api.LiveKitAPI, sip: SipConfig, summary: Summary) -> tuple[str, str]:
    trunk_id = await ensure_trunk(client.sip, desired_trunk(sip), summary)
    rule_id = await ensure_rule(client.sip, desired_rule(sip, trunk_id), summary)
    return trunk_id, rule_id


async def _with_retries(
    client: api.LiveKitAPI, sip: SipConfig, summary: Summary, retry: Retry, where: str
) -> tuple[str, str]:
    """Re-run the whole (idempotent) reconcile: a create whose answer was lost is found
    by name on the next attempt, so retrying never duplicates."""
    delay = retry.first_delay
    for attempt in range(1, retry.attempts + 1):
        try:
            return await _once(client, sip, summary)
        except (api.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
            error = _describe(exc, retry)
            if not _retryable(exc) or attempt >= retry.attempts:
                raise LiveKitProvisionError(
                    f"LiveKit SIP provisioning failed ({where}) after {attempt} attempt(s): {error}"
                ) from exc
        log.warning(
            "event=livekit_sip_retry %s attempt=%d delay_s=%.2f error=%s",
            where,
            attempt,
            delay,
            quote(error),
        )
        await asyncio.sleep(delay)
        delay = min(delay * 2, retry.max_delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, api.TwirpError):
        return exc.status >= 500 or exc.status == 429
    return True  # transport error or timeout: LiveKit may be starting


def _describe(exc: Exception, retry: Retry) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {retry.request_timeout}s"
    return str(exc) or repr(exc)
