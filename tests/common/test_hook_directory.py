"""The router's and forwarder's view of `sip_hooks` on a real NATS KV: the direct reads
and their revisions, the cache a watch keeps current (puts, deletes, purges, unreadable
values), the KV reads on a miss, and the reload after a reconnect, retried until it works."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from sayna_sip.common import topology
from sayna_sip.common.hook import Hook
from sayna_sip.common.hook_directory import HookDirectory, read_hook, snapshot
from sayna_sip.common.hosts import host_token
from tests.router.helpers import until


def hook(host: str, path: str = "hook") -> Hook:
    return Hook.new(host, f"https://hooks.test/{path}", "runtime")


async def put(kv: KeyValue, *hooks: Hook) -> int:
    revision = 0
    for h in hooks:
        revision = await kv.put(h.key, h.encode())
    return revision


class Changes:
    """Counts the directory's `on_change` calls and lets a test await the next one."""

    def __init__(self) -> None:
        self.count = 0
        self._seen = 0
        self._event = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self._event.set()

    def mark(self) -> None:
        """Every change so far is seen: `next` waits for a later one."""
        self._seen = self.count

    async def next(self) -> None:
        """Wait for the first change not seen yet."""
        async with asyncio.timeout(5):
            while self.count <= self._seen:
                self._event.clear()
                await self._event.wait()
        self._seen += 1


@pytest.fixture
async def kv(jetstream: JetStreamContext) -> KeyValue:
    return await jetstream.key_value(topology.HOOKS_BUCKET)


@pytest.fixture
async def followed(kv: KeyValue) -> AsyncIterator[tuple[HookDirectory, Changes]]:
    await put(kv, hook("a.example.com", "a"), hook("*.example.com", "any"))
    changes = Changes()
    directory = HookDirectory(kv, on_change=changes)
    await directory.start()
    changes.mark()
    yield directory, changes
    await directory.stop()


async def test_a_read_gives_the_hook_and_its_revision_for_a_writer_to_compare(
    kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    key = host_token("a.example.com")
    assert await read_hook(kv, key) == (None, 0)  # never written: create from revision 0

    first = hook("a.example.com")
    written = await put(kv, first)
    assert await read_hook(kv, key) == (first, written)

    emptied = await kv.put(key, b"")
    assert await read_hook(kv, key) == (None, emptied)

    with caplog.at_level(logging.WARNING, "sayna_sip.hooks"):
        garbled = await kv.put(key, b"{not json")
        assert await read_hook(kv, key) == (None, garbled)  # a writer may overwrite it
    assert [r.getMessage() for r in caplog.records] == [f"event=hook_record_invalid key={key}"]

    await kv.delete(key)
    assert await read_hook(kv, key) == (None, garbled + 1)  # the delete marker's revision


async def test_a_record_under_another_hosts_key_reads_as_none_and_says_where(
    kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    key = host_token("b.example.com")
    revision = await kv.put(key, hook("*.example.com").encode())
    with caplog.at_level(logging.WARNING, "sayna_sip.hooks"):
        assert await read_hook(kv, key) == (None, revision)
    assert [r.getMessage() for r in caplog.records] == [
        f"event=hook_record_misplaced key={key} host=*.example.com"
    ]


async def test_the_list_holds_every_hook_by_host_without_deleted_or_purged_ones(
    kv: KeyValue, jetstream: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    # More hooks than one fetch takes (256), written out of order.
    hosts = [f"h{i:03}.example.com" for i in range(300)]
    for host in reversed(hosts):
        await put(kv, hook(host))
    await put(kv, hook("h000.example.com", "changed"))
    await kv.delete(host_token("h001.example.com"))
    await kv.purge(host_token("h002.example.com"))

    with caplog.at_level(logging.WARNING, "sayna_sip.hooks"):
        listed = await snapshot(kv)

    assert [h.host for h in listed] == [hosts[0], *hosts[3:]]
    assert caplog.records == []  # a delete or purge marker is no broken record
    assert listed[0].url == "https://hooks.test/changed"  # the last value per key
    info = await jetstream.stream_info(f"KV_{topology.HOOKS_BUCKET}")
    assert info.state.consumer_count == 0


async def test_the_cache_loads_every_hook_and_matches_case_blind(
    followed: tuple[HookDirectory, Changes],
) -> None:
    directory, changes = followed
    assert directory.generation == 1 and changes.count == 1  # one complete load
    assert len(directory) == 2 and set(directory.hooks) == {"a.example.com", "*.example.com"}
    found = directory.get("A.Example.COM")
    assert found is not None and found.url == "https://hooks.test/a"
    assert directory.get("b.example.com") is None  # `get` is the exact host only
    wildcard = directory.match("B.example.com")
    assert wildcard is not None and wildcard.host == "*.example.com"


async def test_the_watch_applies_puts_deletes_and_purges_to_that_key_only(
    kv: KeyValue, followed: tuple[HookDirectory, Changes], caplog: pytest.LogCaptureFixture
) -> None:
    directory, changes = followed
    await put(kv, hook("a.example.com", "a2"))
    await changes.next()
    assert directory.hooks["a.example.com"].url == "https://hooks.test/a2"

    await put(kv, hook("b.example.com", "b"))
    await changes.next()
    assert set(directory.hooks) == {"a.example.com", "b.example.com", "*.example.com"}

    await kv.delete(host_token("a.example.com"))
    await changes.next()
    assert set(directory.hooks) == {"b.example.com", "*.example.com"}

    await kv.purge(host_token("b.example.com"))
    await changes.next()
    assert set(directory.hooks) == {"*.example.com"}

    # An emptied value is no hook (and no broken record: nothing is logged).
    with caplog.at_level(logging.WARNING, "sayna_sip.hooks"):
        await kv.put(host_token("*.example.com"), b"")
        await changes.next()
    assert len(directory) == 0 and caplog.records == []
    assert changes.count == 6


async def test_an_unreadable_value_drops_the_hook_its_key_held_and_is_logged(
    kv: KeyValue, followed: tuple[HookDirectory, Changes], caplog: pytest.LogCaptureFixture
) -> None:
    directory, changes = followed
    key = host_token("a.example.com")
    with caplog.at_level(logging.WARNING, "sayna_sip.hooks"):
        await kv.put(key, b"\xff garbage")
        await changes.next()
    assert set(directory.hooks) == {"*.example.com"}
    assert [r.getMessage() for r in caplog.records] == [f"event=hook_record_invalid key={key}"]


async def test_a_miss_reads_kv_most_specific_first(kv: KeyValue) -> None:
    directory = HookDirectory(kv)  # never started: every read is a miss
    await put(kv, hook("*.example.com", "any"), hook("*.eu.example.com", "eu"))
    await put(kv, hook("a.eu.example.com", "a"))

    found = {h: await directory.lookup(h) for h in ("A.eu.example.com", "x.EU.example.com")}
    found["y.example.com"] = await directory.lookup("y.example.com")
    assert {h: f.url if f else None for h, f in found.items()} == {
        "A.eu.example.com": "https://hooks.test/a",
        "x.EU.example.com": "https://hooks.test/eu",
        "y.example.com": "https://hooks.test/any",
    }
    assert await directory.lookup("example.org") is None

    # `resolve` is the hook stored under exactly that host, never a wildcard's.
    resolved = await directory.resolve("*.eu.example.com")
    assert resolved is not None and resolved.url == "https://hooks.test/eu"
    assert await directory.resolve("b.eu.example.com") is None


async def test_a_cached_hook_is_answered_without_reading_kv(
    followed: tuple[HookDirectory, Changes], jetstream: JetStreamContext
) -> None:
    directory, _ = followed
    await jetstream.delete_key_value(topology.HOOKS_BUCKET)  # any KV read would fail now
    looked_up = await directory.lookup("x.example.com")
    resolved = await directory.resolve("a.example.com")
    assert looked_up is not None and looked_up.host == "*.example.com"
    assert resolved is not None and resolved.url == "https://hooks.test/a"


async def test_a_reload_loads_afresh_and_the_new_watch_follows(
    kv: KeyValue, followed: tuple[HookDirectory, Changes]
) -> None:
    directory, changes = followed
    await directory.reload()
    assert directory.generation == 2 and changes.count == 2 and len(directory) == 2
    changes.mark()

    await put(kv, hook("c.example.com", "c"))
    await changes.next()
    assert "c.example.com" in directory.hooks and changes.count == 3  # seen once, not twice


async def test_a_reconnect_reloads_once_and_says_so(
    kv: KeyValue, followed: tuple[HookDirectory, Changes], caplog: pytest.LogCaptureFixture
) -> None:
    directory, _ = followed
    with caplog.at_level(logging.INFO, "sayna_sip.hooks"):
        directory.on_reconnected()
        directory.on_reconnected()  # a newer reconnect restarts the reload
        await asyncio.wait_for(directory.reloaded.wait(), 5)
    assert directory.generation == 2
    assert [r.getMessage() for r in caplog.records] == ["event=hooks_reloaded hooks=2"]


async def test_a_reconnect_before_start_or_after_stop_loads_nothing(kv: KeyValue) -> None:
    await put(kv, hook("a.example.com"))
    directory = HookDirectory(kv)
    directory.on_reconnected()
    assert directory.generation == 0 and len(directory) == 0

    await directory.start()
    await directory.stop()
    directory.on_reconnected()
    await directory.stop()  # a second stop is harmless
    assert directory.generation == 1 and not directory.reloaded.is_set()


async def test_a_failed_reload_keeps_the_old_view_and_is_retried_until_it_works(
    jetstream: JetStreamContext,
    followed: tuple[HookDirectory, Changes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory, _ = followed
    await jetstream.delete_key_value(topology.HOOKS_BUCKET)  # the watch cannot start
    with caplog.at_level(logging.INFO, "sayna_sip.hooks"):
        directory.on_reconnected()
        await until(lambda: "event=hooks_reload_failed" in caplog.text, timeout=5)
        assert len(directory) == 2 and directory.generation == 1  # the old view stays

        [bucket] = [b for b in topology.buckets() if b.bucket == topology.HOOKS_BUCKET]
        kv = await jetstream.create_key_value(bucket)
        await put(kv, hook("new.example.com"))
        await asyncio.wait_for(directory.reloaded.wait(), 5)  # the retry, a second later
    assert set(directory.hooks) == {"new.example.com"} and directory.generation == 2
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("event=hooks_reload_failed error=")
    assert messages[-1] == "event=hooks_reloaded hooks=1"


async def bound_watches(js: JetStreamContext, expected: int) -> int:
    """The `sip_hooks` consumers a subscriber still listens on (a watch not stopped),
    once `expected` or after 5 s: the server drops a consumer's interest a moment after
    its unsubscribe (no event says when)."""
    async with asyncio.timeout(5):
        while True:
            await js._nc.flush()  # our unsubscribes reach the server first
            infos = await js.consumers_info(f"KV_{topology.HOOKS_BUCKET}")
            bound = sum(bool(i.push_bound) for i in infos)
            if bound == expected:
                return bound
            await asyncio.sleep(0.05)


async def test_a_reload_and_a_stop_leave_no_watch_listening(
    jetstream: JetStreamContext, followed: tuple[HookDirectory, Changes]
) -> None:
    directory, _ = followed
    assert await bound_watches(jetstream, 1) == 1
    await directory.reload()
    assert await bound_watches(jetstream, 1) == 1  # the old watch stopped
    await directory.stop()
    assert await bound_watches(jetstream, 0) == 0


async def test_a_stop_during_a_reload_or_after_one_completes(
    kv: KeyValue, followed: tuple[HookDirectory, Changes]
) -> None:
    directory, _ = followed
    directory.on_reconnected()
    await directory.stop()  # the reload cancelled before it ran
    assert directory.generation == 1

    await directory.start()
    directory.on_reconnected()
    await asyncio.wait_for(directory.reloaded.wait(), 5)
    await directory.stop()
    await directory.stop()
    assert directory.generation == 3
