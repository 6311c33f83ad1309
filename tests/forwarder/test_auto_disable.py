"""Automatic disabling (endpoint_health.py) on a real KV bucket, the hook read back from
KV before each attempt as the forwarder's cache would show it: SIP_HOOK_DISABLE_AFTER
decides when, and hooks from the config are never touched."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from sayna_sip.common import contracts, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.hook import DEFAULT_ENDPOINT, Endpoint, Hook, parse_stamp, utc_stamp
from sayna_sip.forwarder.endpoint_health import FailureWatch, OpsPost
from tests.fixtures.https_sink import HttpsSink
from tests.forwarder.conftest import forwarder_env

HOST = "failing.example.com"


async def _no_post(url: str, body: bytes, event_id: str) -> int | None:
    raise AssertionError("SIP_OPS_WEBHOOK_URL is not set: nothing may be posted")


async def _setup(
    js: JetStreamContext,
    nc: Client,
    sink: HttpsSink,
    disable_after: str,
    hook: Hook | None,
    post: OpsPost = _no_post,
    **env: str,
) -> tuple[FailureWatch, KeyValue, list[str]]:
    settings = forwarder_env("nats://127.0.0.1:1", sink, SIP_HOOK_DISABLE_AFTER=disable_after)
    sip = ServerConfig.from_env({**settings, **env}).sip
    assert sip is not None
    kv = await js.key_value(topology.HOOKS_BUCKET)
    if hook is not None:
        await kv.put(hook.key, hook.encode())
    disabled: list[str] = []
    return FailureWatch(sip, kv, nc, post, disabled.append), kv, disabled


async def _fail(watch: FailureWatch, kv: KeyValue, key: str, times: int) -> Hook:
    """`times` failed attempts, each seeing the record as KV holds it by then."""
    for _ in range(times):
        entry = await kv.get(key)
        assert entry.value is not None
        hook = Hook.decode(entry.value)
        watch.observe(hook, _default(hook), delivered=False)
        await watch.stop()  # its KV writes, done before the next attempt
    entry = await kv.get(key)
    assert entry.value is not None
    return Hook.decode(entry.value)


def _default(hook: Hook) -> Endpoint:
    endpoint = hook.endpoint(DEFAULT_ENDPOINT)
    assert endpoint is not None
    return endpoint


def _failing_for(seconds: float, source: str = "runtime") -> Hook:
    hook = Hook.new(HOST, f"https://{HOST}/hook", source)  # type: ignore[arg-type]
    return hook.changed(failing_since=utc_stamp(time.time() - seconds))


@pytest.mark.parametrize(("disable_after", "disabled"), [("3h", False), ("1h", True)])
async def test_a_hook_is_disabled_only_once_failing_for_sip_hook_disable_after(
    jetstream: JetStreamContext,
    nats_client: Client,
    https_sink: HttpsSink,
    disable_after: str,
    disabled: bool,
) -> None:
    hook = _failing_for(2 * 3600)  # every attempt has failed for two hours
    watch, kv, told = await _setup(jetstream, nats_client, https_sink, disable_after, hook)
    notices = await nats_client.subscribe(contracts.OPS_HOOK_DISABLED)
    await nats_client.flush()

    after = await _fail(watch, kv, hook.key, 12)

    assert after.enabled is not disabled
    assert told == ([HOST] if disabled else [])
    if disabled:  # at the tenth failure seen here
        reason = f"failing since {hook.failing_since} (10+ attempts failed)"
        assert (after.disabled_reason, after.failing_since) == (reason, hook.failing_since)
        notice = json.loads((await notices.next_msg(timeout=5)).data)
        at = notice.pop("at")
        assert abs(parse_stamp(at) - time.time()) < 60
        assert notice == {
            "event": "hook_disabled", "host": HOST, "endpoint": DEFAULT_ENDPOINT, "url": hook.url,
            "reason": reason,
            "failing_since": hook.failing_since, "attempts": 10,
        }  # fmt: skip


async def test_a_hook_with_fewer_than_ten_failures_here_stays_enabled(
    jetstream: JetStreamContext, nats_client: Client, https_sink: HttpsSink
) -> None:
    hook = _failing_for(2 * 3600)
    watch, kv, told = await _setup(jetstream, nats_client, https_sink, "1h", hook)
    assert (await _fail(watch, kv, hook.key, 9)).enabled and not told
    assert not (await _fail(watch, kv, hook.key, 1)).enabled and told == [HOST]


async def test_a_hook_from_the_config_is_never_marked_failing_nor_disabled(
    jetstream: JetStreamContext, nats_client: Client, https_sink: HttpsSink
) -> None:
    static = Hook.new(HOST, f"https://{HOST}/hook", "config")
    watch, kv, told = await _setup(jetstream, nats_client, https_sink, "1s", static)
    before = (await kv.get(static.key)).revision

    after = await _fail(watch, kv, static.key, 15)

    assert (await kv.get(static.key)).revision == before  # not written at all
    assert after.enabled and after.failing_since is None and told == []


async def test_a_success_clears_failing_since(
    jetstream: JetStreamContext, nats_client: Client, https_sink: HttpsSink
) -> None:
    hook = Hook.new(HOST, f"https://{HOST}/hook", "runtime")
    watch, kv, _ = await _setup(jetstream, nats_client, https_sink, "1h", hook)
    assert (await _fail(watch, kv, hook.key, 1)).failing_since is not None
    entry = await kv.get(hook.key)
    assert entry.value is not None
    failing = Hook.decode(entry.value)
    watch.observe(failing, _default(failing), delivered=True)
    await watch.stop()
    entry = await kv.get(hook.key)
    assert entry.value is not None and Hook.decode(entry.value).failing_since is None


async def test_the_ops_webhook_gets_the_notice_and_the_transition_is_logged(
    jetstream: JetStreamContext,
    nats_client: Client,
    https_sink: HttpsSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What the forwarder posts (signed, like a delivery: the pipeline test checks that).
    posted: list[tuple[str, bytes, str]] = []

    async def post(url: str, body: bytes, event_id: str) -> int | None:
        posted.append((url, body, event_id))
        return 204

    caplog.set_level(logging.INFO, "sayna_sip.forwarder")
    hook = _failing_for(2 * 3600)
    ops = "https://ops.example.com/notices"
    watch, kv, _ = await _setup(
        jetstream, nats_client, https_sink, "1h", hook, post, SIP_OPS_WEBHOOK_URL=ops
    )
    notices = await nats_client.subscribe(contracts.OPS_HOOK_DISABLED)
    await nats_client.flush()
    await _fail(watch, kv, hook.key, 10)

    ((url, body, event_id),) = posted
    assert url == ops and body == (await notices.next_msg(timeout=5)).data
    assert re.fullmatch(r"ops_[0-9a-f]{16}", event_id)
    lines = [r.getMessage() for r in caplog.records]
    assert (
        f"event=hook_disabled host={HOST} endpoint={DEFAULT_ENDPOINT} by=forwarder"
        f" failing_since={hook.failing_since}"
        " attempts=10"
    ) in lines
    assert f"event=ops_webhook_sent host={HOST} status=204" in lines
    assert {r.name for r in caplog.records} == {"sayna_sip.forwarder"}


async def test_failing_since_is_written_again_at_every_tenth_failure_while_it_is_missing(
    jetstream: JetStreamContext, nats_client: Client, https_sink: HttpsSink
) -> None:
    # Another replica's success cleared it while this one keeps failing: the mark comes
    # back, or this replica would never disable the hook.
    hook = Hook.new(HOST, f"https://{HOST}/hook", "runtime")
    watch, kv, _ = await _setup(jetstream, nats_client, https_sink, "1h", hook)
    assert (await _fail(watch, kv, hook.key, 1)).failing_since is not None
    await kv.put(hook.key, hook.encode())  # cleared by the other replica
    assert (await _fail(watch, kv, hook.key, 8)).failing_since is None  # seen: 9
    assert (await _fail(watch, kv, hook.key, 1)).failing_since is not None  # seen: 10
    await kv.put(hook.key, hook.encode())
    assert (await _fail(watch, kv, hook.key, 9)).failing_since is None  # seen: 19
    assert (await _fail(watch, kv, hook.key, 1)).failing_since is not None  # seen: 20


async def test_a_hook_deleted_meanwhile_is_left_alone_quietly(
    jetstream: JetStreamContext,
    nats_client: Client,
    https_sink: HttpsSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "sayna_sip.forwarder")
    watch, kv, told = await _setup(jetstream, nats_client, https_sink, "1h", None)
    cached = _failing_for(2 * 3600)  # what the cache still shows; KV has no record
    fresh = Hook.new(HOST, f"https://{HOST}/hook", "runtime")
    for _ in range(12):
        watch.observe(cached, _default(cached), delivered=False)
    watch.observe(fresh, _default(fresh), delivered=False)  # would mark it failing
    watch.observe(cached, _default(cached), delivered=True)  # would clear the mark
    await watch.stop()
    assert told == [] and caplog.records == []
    with pytest.raises(KeyNotFoundError):
        await kv.get(cached.key)


async def test_a_failed_state_write_is_logged_and_never_raised(
    jetstream: JetStreamContext,
    nats_client: Client,
    https_sink: HttpsSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "sayna_sip.forwarder")
    hook = Hook.new(HOST, f"https://{HOST}/hook", "runtime")
    watch, _, _ = await _setup(jetstream, nats_client, https_sink, "1h", hook)
    await nats_client.close()  # NATS gone: the write fails, the delivery must not
    watch.observe(hook, _default(hook), delivered=False)
    await watch.stop()
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("event=hook_state_write_failed error=")


async def test_a_replica_behind_on_the_state_writes_nothing_and_warns_of_nothing(
    jetstream: JetStreamContext,
    nats_client: Client,
    https_sink: HttpsSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # KV already holds what another replica wrote: failing for 2 h, then disabled. This
    # replica's cache still shows the hook enabled (and, a moment earlier, not failing).
    caplog.set_level(logging.WARNING, "sayna_sip.forwarder")
    stored = _failing_for(2 * 3600).changed(enabled=False, disabled_reason="by the other")
    watch, kv, told = await _setup(jetstream, nats_client, https_sink, "1h", stored)
    before = (await kv.get(stored.key)).revision
    not_yet_failing = Hook.new(HOST, f"https://{HOST}/hook", "runtime")
    watch.observe(not_yet_failing, _default(not_yet_failing), delivered=False)
    enabled_view = stored.changed(enabled=True, disabled_reason=None)
    for _ in range(12):
        watch.observe(enabled_view, _default(enabled_view), delivered=False)
    await watch.stop()
    assert (await kv.get(stored.key)).revision == before and told == []
    assert caplog.records == []
