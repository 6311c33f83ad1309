"""Hooks as managed endpoints: a host's endpoints added, changed and removed; per
endpoint, rotate a secret, disable/enable, and test sends. The per-host routes act on
the `default` endpoint.

Every change is a compare-and-set write on the hook's KV record (HookStore.change), the
endpoint's settings checked by the config's rules (`hookrules.endpoint`) and converted
by `hookstore.endpoint` (where secrets and header values are sealed); test sends are
NATS requests answered by a forwarder, so they go through the same client, SSRF policy,
signing and custom headers as real deliveries.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import msgspec
import nats.errors

from sayna_sip.common import contracts, hook_secrets, hookstore
from sayna_sip.common.config import SipConfig
from sayna_sip.common.hook import (
    DEFAULT_ENDPOINT,
    Endpoint,
    EndpointEntry,
    Hook,
    HookSecret,
    utc_stamp,
)
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.logs import quote
from sayna_sip.common.secretbox import generate_secret
from sayna_sip.ingress import hookrules
from sayna_sip.ingress.errors import BadRequest, NotFound, Unavailable
from sayna_sip.ingress.hooks import HookStore
from sayna_sip.ingress.schemas import TestSend
from sayna_sip.ingress.state import Ingress

log = logging.getLogger("sayna_sip.ingress")

TEST_GRACE_S = 2.0  # on top of the forwarder's request timeout


def _endpoint_of(record: Hook, endpoint_id: str) -> Endpoint:
    endpoint = record.endpoint(endpoint_id)
    if endpoint is None:
        raise NotFound(
            f"hook '{record.host}' has no endpoint '{endpoint_id}'", ErrorCode.ENDPOINT_NOT_FOUND
        )
    return endpoint


async def get(store: HookStore, host: str, endpoint_id: str) -> tuple[Hook, Endpoint]:
    record = await store.get(host)
    return record, _endpoint_of(record, endpoint_id)


async def add(store: HookStore, sip: SipConfig, host: str, entry: EndpointEntry) -> Endpoint:
    """A new endpoint of an existing runtime hook (400 for a taken id or one too many)."""
    entry = hookrules.endpoint(entry, host, sip)
    made: list[Endpoint] = []

    def change(record: Hook) -> Hook:
        if record.endpoint(entry.id or "") is not None:
            raise BadRequest(
                f"hook '{host}' has an endpoint '{entry.id}' already",
                ErrorCode.DUPLICATE_ENDPOINT,
            )
        hookrules.endpoint_count(len(record.endpoint_list()) + 1, host, sip)
        made.append(hookstore.endpoint(entry, host, "runtime", None, store.box_for(entry)))
        return record.with_endpoint(made[-1])

    await store.change(host, change)
    log.info("event=endpoint_added host=%s endpoint=%s url=%s", host, made[-1].id, made[-1].url)
    return made[-1]


async def patch(
    store: HookStore, sip: SipConfig, host: str, endpoint_id: str, fields: dict[str, Any]
) -> Endpoint:
    """The endpoint with the fields sent replaced (the others as they are), checked as a
    whole: a PATCH that would leave an invalid endpoint is a 400 and changes nothing."""
    made: list[Endpoint] = []

    def change(record: Hook) -> Hook:
        old = _endpoint_of(record, endpoint_id)
        entry = hookrules.endpoint(hookrules.merged(old, fields), host, sip)
        made.append(hookstore.endpoint(entry, host, "runtime", old, store.box_for(entry)))
        return record.with_endpoint(made[-1])

    await store.change(host, change)
    log.info("event=endpoint_changed host=%s endpoint=%s", host, endpoint_id)
    return made[-1]


async def remove(store: HookStore, host: str, endpoint_id: str) -> Hook:
    if endpoint_id == DEFAULT_ENDPOINT:
        raise BadRequest(
            f'the default endpoint goes with its host: DELETE /sip/hooks {{"hosts":["{host}"]}}',
            ErrorCode.DEFAULT_ENDPOINT,
        )

    def change(record: Hook) -> Hook:
        _endpoint_of(record, endpoint_id)
        return record.without_endpoint(endpoint_id)

    record = await store.change(host, change)
    log.info("event=endpoint_removed host=%s endpoint=%s", host, endpoint_id)
    return record


async def rotate(
    store: HookStore,
    sip: SipConfig,
    host: str,
    given: str | None,
    endpoint_id: str = DEFAULT_ENDPOINT,
) -> tuple[str, Hook, Endpoint, tuple[HookSecret, ...]]:
    """Put a new secret first; the newest ones signing until now expire after the overlap,
    older ones at once (returned last, to say so)."""
    box = store.box()
    secret = hookrules.secret(given, host) if given is not None else generate_secret()
    made: list[tuple[Endpoint, tuple[HookSecret, ...]]] = []

    def change(record: Hook) -> Hook:
        endpoint = _endpoint_of(record, endpoint_id)
        made[:] = [  # a CAS retry re-applies: the last try is the one written
            hook_secrets.rotated(endpoint, host, box, secret, sip.secret_overlap, sip.hook_secrets)
        ]
        return record.with_endpoint(made[-1][0])

    record = await store.change(host, change)
    endpoint, early = made[-1]
    log.info(
        "event=hook_secret_rotated host=%s endpoint=%s fingerprint=%s overlap_s=%g "
        "expired_early=%d",
        host, endpoint_id, endpoint.secrets[0].fingerprint, sip.secret_overlap, len(early),
    )  # fmt: skip
    return secret, record, endpoint, early


async def set_enabled(
    ingress: Ingress,
    store: HookStore,
    host: str,
    enabled: bool,
    endpoint_id: str = DEFAULT_ENDPOINT,
) -> tuple[Hook, Endpoint]:
    def change(record: Hook) -> Hook | None:
        endpoint = _endpoint_of(record, endpoint_id)
        if endpoint.enabled == enabled:
            return None  # already so: nothing to write
        if enabled:
            updated = endpoint.changed(enabled=True, disabled_reason=None, failing_since=None)
        else:
            updated = endpoint.changed(enabled=False, disabled_reason="disabled by an operator")
        return record.with_endpoint(updated)

    _, before = await get(store, host, endpoint_id)
    record = await store.change(host, change)
    endpoint = _endpoint_of(record, endpoint_id)
    if before.enabled != enabled:
        log.info(
            "event=hook_%s host=%s endpoint=%s by=operator",
            "enabled" if enabled else "disabled", host, endpoint_id,
        )  # fmt: skip
        if enabled:
            await _ops_event(ingress, contracts.OPS_HOOK_ENABLED, record, endpoint)
    return record, endpoint


async def _ops_event(ingress: Ingress, subject: str, record: Hook, endpoint: Endpoint) -> None:
    """Operator events are best effort on core NATS: the state change is already stored."""
    if ingress.nc is None:
        return
    body = {"event": subject.rsplit(".", 1)[1], "host": record.host, "url": endpoint.url}
    body["endpoint"] = endpoint.id
    body["at"] = utc_stamp()
    try:
        await ingress.nc.publish(subject, json.dumps(body).encode())
    except nats.errors.Error as exc:
        log.warning("event=ops_event_failed subject=%s error=%s", subject, quote(repr(exc)))


async def test_send(
    ingress: Ingress, store: HookStore, host: str, endpoint_id: str = DEFAULT_ENDPOINT
) -> TestSend:
    """Ask a forwarder to make one signed sip_hook_test delivery to an endpoint of `host`."""
    await get(store, host, endpoint_id)  # 404 before asking anyone
    if ingress.nc is None or not ingress.nc.is_connected:
        raise Unavailable("NATS is not connected; retry later", ErrorCode.NATS_UNAVAILABLE)
    timeout = ingress.config.forwarder.timeout + TEST_GRACE_S
    started = time.monotonic()
    try:
        reply = await ingress.nc.request(
            contracts.HOOK_TEST_SUBJECT,
            json.dumps({"host": host, "endpoint": endpoint_id}).encode(),
            timeout=timeout,
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
