"""HookDirectory follows the sip_hooks bucket on a real NATS server."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from sayna_sip.common import topology
from sayna_sip.common.hook import Hook
from sayna_sip.common.hook_directory import HookDirectory
from sayna_sip.common.hookstore import delete_if_unchanged
from tests.fixtures.nats import NatsServer


async def test_directory_loads_then_follows_puts_and_deletes(jetstream: JetStreamContext) -> None:
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    first = Hook.new("*.example.com", "https://hooks.example.com/a", "config")
    await kv.put(first.key, first.encode())

    changed = asyncio.Event()
    directory = HookDirectory(kv, on_change=changed.set)
    await directory.start()
    try:
        assert directory.match("a.example.com") == first

        changed.clear()
        second = Hook.new("b.example.com", "https://hooks.example.com/b", "runtime")
        await kv.put(second.key, second.encode())
        await asyncio.wait_for(changed.wait(), 5)
        assert directory.match("b.example.com") == second

        changed.clear()
        await kv.delete(first.key)
        await asyncio.wait_for(changed.wait(), 5)
        assert directory.match("a.example.com") is None
        assert list(directory.hooks) == ["b.example.com"]
    finally:
        await directory.stop()


async def test_directory_starts_empty_on_an_empty_bucket(jetstream: JetStreamContext) -> None:
    directory = HookDirectory(await jetstream.key_value(topology.HOOKS_BUCKET))
    await directory.start()
    assert len(directory) == 0
    await directory.stop()


async def test_reload_recovers_the_watch_after_a_nats_server_restart(
    jetstream: JetStreamContext, nats_server: NatsServer
) -> None:
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    nc = await nats.connect(nats_server.url, reconnected_cb=on_reconnect, reconnect_time_wait=0.1)
    kv = await nc.jetstream().key_value(topology.HOOKS_BUCKET)
    directory = HookDirectory(kv)
    await directory.start()
    nats_server.restart()  # forgets the ephemeral consumer behind the watch
    await asyncio.wait_for(reconnected.wait(), 10)

    record = Hook.new("late.example.com", "https://late.example.com/h", "runtime")
    await kv.put(record.key, record.encode())
    await directory.reload()
    assert directory.get("late.example.com") == record
    assert directory.generation == 2

    changed = asyncio.Event()
    directory._on_change = changed.set
    await kv.delete(record.key)
    await asyncio.wait_for(changed.wait(), 5)  # the fresh watch follows changes again
    assert directory.get("late.example.com") is None
    await directory.stop()
    await nc.close()


async def test_delete_if_unchanged_refuses_after_a_concurrent_write(
    jetstream: JetStreamContext,
) -> None:
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    record = Hook.new("race.example.com", "https://race.example.com/a", "runtime")
    first = await kv.put(record.key, record.encode())
    await kv.put(record.key, record.encode())  # another writer got there first
    with pytest.raises(KeyWrongLastSequenceError):
        await delete_if_unchanged(kv, record.key, first)
    await delete_if_unchanged(kv, record.key, first + 1)
    with pytest.raises(KeyNotFoundError):
        await kv.get(record.key)
