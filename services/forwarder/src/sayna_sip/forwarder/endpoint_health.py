"""Automatic disabling of runtime endpoints that keep failing, and the operator's notice.

Each forwarder watches the outcome of its attempts per endpoint of a hook. The shared
state lives in the endpoint's part of the hook's KV record, written only on transitions
(compare-and-set, so replicas agree and a restart keeps it): `failing_since` when
attempts start failing, cleared on a success; the hook disabled once every attempt has
failed for SIP_HOOK_DISABLE_AFTER and this forwarder has seen at least
MIN_FAILED_ATTEMPTS of them. The transition is logged, counted, published on
`sip.ops.hook_disabled` and, when SIP_OPS_WEBHOOK_URL is set, POSTed there signed like a
delivery. Static (config) hooks are never disabled automatically: they are read-only at
runtime.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets as _random
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.js.kv import KeyValue

from sayna_sip.common import contracts
from sayna_sip.common.config import SipConfig
from sayna_sip.common.hook import Endpoint, Hook, parse_stamp, utc_stamp
from sayna_sip.common.hookstore import modify
from sayna_sip.common.logs import quote

log = logging.getLogger("sayna_sip.forwarder")

MIN_FAILED_ATTEMPTS = 10

# post(url, body, event_id) -> HTTP status or None; signs like a delivery
OpsPost = Callable[[str, bytes, str], Awaitable[int | None]]


class FailureWatch:
    def __init__(
        self,
        sip: SipConfig,
        kv: KeyValue,
        nc: Client,
        post: OpsPost,
        on_disabled: Callable[[str], None],
    ) -> None:
        self._sip = sip
        self._kv = kv
        self._nc = nc
        self._post = post
        self._on_disabled = on_disabled
        # failed attempts seen here since the last success, per (host, endpoint id)
        self._failures: dict[tuple[str, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def observe(self, hook: Hook, endpoint: Endpoint, delivered: bool) -> None:
        """Note one attempt's outcome; any KV write runs in the background."""
        if hook.source != "runtime":
            return
        key = (hook.host, endpoint.id)
        if delivered:
            self._failures.pop(key, None)
            if endpoint.failing_since is not None:
                self._spawn(self._recovered(*key))
            return
        seen = self._failures[key] = self._failures.get(key, 0) + 1
        if endpoint.failing_since is None:
            if seen == 1 or seen % MIN_FAILED_ATTEMPTS == 0:  # the cache may lag our write
                self._spawn(self._failing(*key))
            return
        failing_for = time.time() - parse_stamp(endpoint.failing_since)
        due = failing_for >= self._sip.hook_disable_after and seen >= MIN_FAILED_ATTEMPTS
        if endpoint.enabled and due:
            self._spawn(self._disable(hook.host, endpoint.id, seen))

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(work: Awaitable[None]) -> None:
        try:
            await work
        except Exception as exc:  # never fails a delivery; the next attempt tries again
            log.warning("event=hook_state_write_failed error=%s", quote(repr(exc)))

    async def _failing(self, host: str, endpoint_id: str) -> None:
        stamp = utc_stamp()
        await _change(
            self._kv, host, endpoint_id,
            lambda e: e.changed(failing_since=stamp) if e.failing_since is None else None,
        )  # fmt: skip

    async def _recovered(self, host: str, endpoint_id: str) -> None:
        await _change(
            self._kv, host, endpoint_id,
            lambda e: e.changed(failing_since=None) if e.failing_since is not None else None,
        )  # fmt: skip

    async def _disable(self, host: str, endpoint_id: str, attempts: int) -> None:
        changed: list[Endpoint] = []

        def change(record: Endpoint) -> Endpoint | None:
            changed.clear()  # a CAS retry re-decides: only the write that landed counts
            if not record.enabled or record.failing_since is None:
                return None  # already disabled (by a replica), or it recovered meanwhile
            reason = f"failing since {record.failing_since} ({attempts}+ attempts failed)"
            changed.append(record.changed(enabled=False, disabled_reason=reason))
            return changed[-1]

        await _change(self._kv, host, endpoint_id, change)
        if not changed:
            return
        record = changed[-1]
        self._on_disabled(host)
        log.warning(
            "event=hook_disabled host=%s endpoint=%s by=forwarder failing_since=%s attempts=%d",
            host, endpoint_id, record.failing_since, attempts,
        )  # fmt: skip
        await self._notify(host, record, attempts)

    async def _notify(self, host: str, record: Endpoint, attempts: int) -> None:
        notice = {
            "event": "hook_disabled",
            "host": host,
            "endpoint": record.id,
            "url": record.url,
            "reason": record.disabled_reason,
            "failing_since": record.failing_since,
            "attempts": attempts,
            "at": utc_stamp(),
        }
        body = json.dumps(notice, separators=(",", ":")).encode()
        await self._nc.publish(contracts.OPS_HOOK_DISABLED, body)
        url = self._sip.ops_webhook_url
        if url:
            status = await self._post(url, body, "ops_" + _random.token_hex(8))
            log.info("event=ops_webhook_sent host=%s status=%s", host, status)


async def _change(
    kv: KeyValue, host: str, endpoint_id: str, change: Callable[[Endpoint], Endpoint | None]
) -> None:
    """Compare-and-set `change` on one endpoint of the hook of `host` (nothing when the
    hook or the endpoint is gone)."""

    def on_hook(record: Hook | None) -> Hook | None:
        endpoint = record.endpoint(endpoint_id) if record is not None else None
        updated = change(endpoint) if endpoint is not None else None
        return record.with_endpoint(updated) if record is not None and updated else None

    await modify(kv, host, on_hook)
