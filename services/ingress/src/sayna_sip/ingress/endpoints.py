"""Hooks as managed endpoints: rotate a secret, disable/enable, and test sends.

State changes are compare-and-set writes on the hook's KV record (HookStore.change);
test sends are NATS requests answered by a forwarder, so they go through the same
client, SSRF policy and signing as real deliveries.
"""

from __future__ import annotations

import json
import logging
import time

import msgspec
import nats.errors

from sayna_sip.common import contracts, hook_secrets
from sayna_sip.common.config import SipConfig
from sayna_sip.common.hook import Hook, utc_stamp
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.logs import quote
from sayna_sip.common.secretbox import generate_secret
from sayna_sip.ingress import hookrules
from sayna_sip.ingress.errors import Unavailable
from sayna_sip.ingress.hooks import HookStore
from sayna_sip.ingress.schemas import TestSend
from sayna_sip.ingress.state import Ingress

log = logging.getLogger("sayna_sip.ingress")

TEST_GRACE_S = 2.0  # on top of the forwarder's request timeout


async def rotate(
    store: HookStore, sip: SipConfig, host: str, given: str | None
) -> tuple[str, Hook]:
    """Put a new secret first; the ones signing until now expire after the overlap."""
    box = store.box()
    secret = hookrules.secret(given, host) if given is not None else generate_secret()

    def change(record: Hook) -> Hook:
        return hook_secrets.rotated(record, box, secret, sip.secret_overlap, sip.hook_secrets)

    record = await store.change(host, change)
    log.info(
        "event=hook_secret_rotated host=%s fingerprint=%s overlap_s=%g",
        host, record.secrets[0].fingerprint, sip.secret_overlap,
    )  # fmt: skip
    return secret, record


async def set_enabled(ingress: Ingress, store: HookStore, host: str, enabled: bool) -> Hook:
    def change(record: Hook) -> Hook | None:
        if record.enabled == enabled:
            return None  # already so: nothing to write
        if enabled:
            return record.changed(enabled=True, disabled_reason=None, failing_since=None)
        return record.changed(enabled=False, disabled_reason="disabled by an operator")

    before = (await store.get(host)).enabled
    record = await store.change(host, change)
    if before != enabled:
        log.info("event=hook_%s host=%s by=operator", "enabled" if enabled else "disabled", host)
        if enabled:
            await _ops_event(ingress, contracts.OPS_HOOK_ENABLED, record)
    return record


async def _ops_event(ingress: Ingress, subject: str, record: Hook) -> None:
    """Operator events are best effort on core NATS: the state change is already stored."""
    if ingress.nc is None:
        return
    body = {"event": subject.rsplit(".", 1)[1], "host": record.host, "url": record.url}
    body["at"] = utc_stamp()
    try:
        await ingress.nc.publish(subject, json.dumps(body).encode())
    except nats.errors.Error as exc:
        log.warning("event=ops_event_failed subject=%s error=%s", subject, quote(repr(exc)))


async def test_send(ingress: Ingress, store: HookStore, host: str) -> TestSend:
    """Ask a forwarder to make one signed sip_hook_test delivery to the hook of `host`."""
    await store.get(host)  # 404 before asking anyone
    if ingress.nc is None or not ingress.nc.is_connected:
        raise Unavailable("NATS is not connected; retry later", ErrorCode.NATS_UNAVAILABLE)
    timeout = ingress.config.forwarder.timeout + TEST_GRACE_S
    started = time.monotonic()
    try:
        reply = await ingress.nc.request(
            contracts.HOOK_TEST_SUBJECT, json.dumps({"host": host}).encode(), timeout=timeout
        )
    except nats.errors.NoRespondersError:
        raise Unavailable(
            "no forwarder is running to make the test send", ErrorCode.NO_FORWARDER
        ) from None
    except (TimeoutError, nats.errors.TimeoutError):
        raise Unavailable(
            f"no forwarder answered the test send within {timeout:g}s", ErrorCode.NO_FORWARDER
        ) from None
    try:
        result = msgspec.json.decode(reply.data, type=TestSend)
    except msgspec.DecodeError as exc:
        raise Unavailable(
            f"a forwarder answered the test send oddly: {exc}", ErrorCode.BAD_REPLY
        ) from exc
    log.info(
        "event=hook_tested host=%s status=%s duration_ms=%.1f wall_ms=%.1f",
        host, result.status, result.duration_ms, (time.monotonic() - started) * 1000,
    )  # fmt: skip
    return result
