"""HookDirectory follows the sip_hooks bucket on a real NATS server; hookstore's one CAS
write path (create, change, delete) and its conversion of a written hook."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from sayna_sip.common import topology
from sayna_sip.common.hook import Hook
from sayna_sip.common.hook_directory import HookDirectory
from sayna_sip.common.hookstore import DELETE, _delete_if_unchanged, modify
from tests.fixtures.nats import NatsServer

T = TypeVar("T")


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
        await _delete_if_unchanged(kv, record.key, first)
    await _delete_if_unchanged(kv, record.key, first + 1)
    with pytest.raises(KeyNotFoundError):
        await kv.get(record.key)


async def _hook(jetstream: JetStreamContext, host: str, **fields: object) -> tuple[KeyValue, Hook]:
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    hook = Hook.new(host, f"https://{host}/v1", "runtime").changed(**fields)
    await kv.put(hook.key, hook.encode())
    return kv, hook


async def _stored(kv: KeyValue, hook: Hook) -> Hook:
    return Hook.decode((await kv.get(hook.key)).value or b"")


async def test_modify_stores_the_change_and_returns_it(jetstream: JetStreamContext) -> None:
    kv, hook = await _hook(jetstream, "cas.example.com")
    done = await modify(
        kv, hook.host, lambda h: h.changed(url="https://cas.example.com/v2") if h else None
    )
    assert done.wrote and done.before == hook
    assert done.after is not None and done.after.url == "https://cas.example.com/v2"
    assert await _stored(kv, hook) == done.after


async def test_modify_creates_a_missing_hook_and_deletes_one(jetstream: JetStreamContext) -> None:
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    new = Hook.new("fresh.example.com", "https://fresh.example.com/h", "runtime")
    created = await modify(kv, new.host, lambda h: new if h is None else None)
    assert (created.before, created.after, created.wrote) == (None, new, True)
    assert await _stored(kv, new) == new
    removed = await modify(kv, new.host, lambda h: DELETE)
    assert (removed.before, removed.after, removed.wrote) == (new, None, True)
    with pytest.raises(KeyNotFoundError):
        await kv.get(new.key)
    again = await modify(kv, new.host, lambda h: new if h is None else None)  # on the tombstone
    assert again.wrote and await _stored(kv, new) == new


async def test_modify_writes_nothing_without_a_hook_or_without_a_change(
    jetstream: JetStreamContext,
) -> None:
    kv, hook = await _hook(jetstream, "same.example.com")
    seen: list[Hook | None] = []

    def change(current: Hook | None) -> Hook | None:
        seen.append(current)
        return current.changed(enabled=False) if current is not None else None

    nothing = await modify(kv, "none.example.com", change)
    assert (nothing.before, nothing.wrote) == (None, False)
    assert await modify(kv, "none.example.com", lambda h: DELETE) == nothing  # nothing to delete
    revision = (await kv.get(hook.key)).revision
    same = await modify(kv, hook.host, lambda h: None)  # "no change": as stored
    assert (same.before, same.after, same.wrote) == (hook, hook, False)
    assert (await kv.get(hook.key)).revision == revision
    await kv.delete(hook.key)
    assert not (await modify(kv, hook.host, change)).wrote
    assert seen == [None, None]


async def test_concurrent_changes_each_land_once_on_the_latest_record(
    jetstream: JetStreamContext,
) -> None:
    # Eight writers read the same revision; each conflict re-reads and re-applies, so no
    # change is lost and none is applied to a stale record.
    kv, hook = await _hook(jetstream, "busy.example.com", events=())
    names = [f"event_{i}" for i in range(8)]

    def adding(name: str) -> Callable[[Hook | None], Hook | None]:
        return lambda h: h.changed(events=(*(h.events or ()), name)) if h else None

    await asyncio.gather(*(modify(kv, hook.host, adding(n)) for n in names))
    assert sorted((await _stored(kv, hook)).events or ()) == names


class OtherWriter:
    """Another process's writes: its own connection, on its own thread and loop, so a
    write can land between modify's read and its compare-and-set."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._nc = self._run(nats.connect(url))
        self._kv = self._run(self._nc.jetstream().key_value(topology.HOOKS_BUCKET))

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    def put(self, hook: Hook) -> None:
        self._run(self._kv.put(hook.key, hook.encode()))

    def delete(self, hook: Hook) -> None:
        self._run(self._kv.delete(hook.key))

    def close(self) -> None:
        self._run(self._nc.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def test_a_hook_that_keeps_changing_is_never_overwritten(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    kv, hook = await _hook(jetstream, "churn.example.com")
    other = OtherWriter(nats_server.url)
    theirs = hook.changed(url="https://churn.example.com/theirs")

    def change(current: Hook | None) -> Hook | None:
        other.put(theirs)  # lands after this read, before this write
        return current.changed(url="https://churn.example.com/mine") if current else None

    try:
        with pytest.raises(KeyWrongLastSequenceError) as gave_up:
            await modify(kv, hook.host, change)
    finally:
        other.close()
    assert gave_up.value.description == "hook churn.example.com kept changing during the update"
    assert (await _stored(kv, hook)).url == "https://churn.example.com/theirs"
