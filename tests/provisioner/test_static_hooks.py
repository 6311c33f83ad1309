"""Static hooks in `sip_hooks`: written as config, stable on re-run, stale removed, runtime kept."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from sayna_sip.common import topology
from sayna_sip.common.hook import Hook, HookEntry
from sayna_sip.common.hosts import host_token
from sayna_sip.provisioner.static_hooks import sync_static_hooks

A = HookEntry(host="a.example.com", url="https://a.example.com/hook")
B = HookEntry(host="*.b.example.com", url="https://hooks.b.example.com/in")


@pytest.fixture
async def hooks_kv(jetstream: JetStreamContext) -> KeyValue:
    """The `sip_hooks` bucket on a server with the topology applied."""
    return await jetstream.key_value(topology.HOOKS_BUCKET)


async def stored(kv: KeyValue, host: str) -> Hook:
    return Hook.decode((await kv.get(host_token(host))).value or b"")


async def test_config_hooks_are_written_with_source_config(hooks_kv: KeyValue) -> None:
    summary = await sync_static_hooks(hooks_kv, [A, B])

    assert summary.names("created") == ["hook:a.example.com", "hook:*.b.example.com"]
    record = await stored(hooks_kv, "*.b.example.com")
    assert (record.host, record.url, record.source) == (B.host, B.url, "config")
    assert record.updated_at.endswith("Z")


async def test_rerun_writes_nothing_so_history_stays_stable(hooks_kv: KeyValue) -> None:
    await sync_static_hooks(hooks_kv, [A, B])
    revision = (await hooks_kv.get(host_token(A.host))).revision

    again = await sync_static_hooks(hooks_kv, [A, B])

    assert not again.changed
    assert (await hooks_kv.get(host_token(A.host))).revision == revision
    assert len(await hooks_kv.history(host_token(A.host))) == 1


async def test_changed_url_is_updated(hooks_kv: KeyValue) -> None:
    await sync_static_hooks(hooks_kv, [A])
    moved = HookEntry(host=A.host, url="https://new.example.com/hook")

    summary = await sync_static_hooks(hooks_kv, [moved])

    assert summary.names("updated") == ["hook:a.example.com"]
    assert (await stored(hooks_kv, A.host)).url == moved.url


async def test_stale_config_hooks_removed_runtime_hooks_kept(hooks_kv: KeyValue) -> None:
    await sync_static_hooks(hooks_kv, [A, B])
    runtime = Hook.new("rt.example.net", "https://rt.example.net/h", "runtime")
    await hooks_kv.put(runtime.key, runtime.encode())

    summary = await sync_static_hooks(hooks_kv, [A])

    assert summary.names("removed") == ["hook:*.b.example.com"]
    assert await hooks_kv.keys() == [host_token(A.host), runtime.key]
    assert await stored(hooks_kv, "rt.example.net") == runtime


async def test_no_hooks_in_config_removes_only_config_entries(hooks_kv: KeyValue) -> None:
    await sync_static_hooks(hooks_kv, [A])
    runtime = Hook.new("rt.example.net", "https://rt.example.net/h", "runtime")
    await hooks_kv.put(runtime.key, runtime.encode())

    await sync_static_hooks(hooks_kv, [])

    assert await hooks_kv.keys() == [runtime.key]


async def test_static_hook_overrides_runtime_hook_and_says_so(
    hooks_kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = Hook.new(A.host, "https://runtime.example.org/h", "runtime")
    await hooks_kv.put(runtime.key, runtime.encode())
    caplog.set_level(logging.INFO, logger="sayna_sip.provisioner")

    summary = await sync_static_hooks(hooks_kv, [A])

    assert summary.names("updated") == ["hook:a.example.com"]
    record = await stored(hooks_kv, A.host)
    assert (record.url, record.source) == (A.url, "config")
    assert any(
        "event=static_hook_overrides_runtime host=a.example.com" in r.getMessage()
        for r in caplog.records
    )


async def test_undecodable_entry_under_a_config_host_is_replaced(hooks_kv: KeyValue) -> None:
    await hooks_kv.put(host_token(A.host), json.dumps({"nonsense": 1}).encode())

    await sync_static_hooks(hooks_kv, [A])

    assert (await stored(hooks_kv, A.host)).source == "config"


async def test_concurrent_runs_write_each_hook_once(hooks_kv: KeyValue) -> None:
    # Both passes read an empty bucket; the loser's create fails its revision check,
    # re-reads, and finds the hook already in place.
    first, second = await asyncio.gather(
        sync_static_hooks(hooks_kv, [A, B]), sync_static_hooks(hooks_kv, [A, B])
    )

    assert sorted(first.names("created") + second.names("created")) == sorted(
        ["hook:a.example.com", "hook:*.b.example.com"]
    )
    assert len(await hooks_kv.history(host_token(A.host))) == 1
