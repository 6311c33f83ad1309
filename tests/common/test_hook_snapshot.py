"""The hooks list reads every hook written before it, and leaves no consumer behind."""

from __future__ import annotations

from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.hook import Hook
from sayna_sip.common.hook_directory import snapshot


async def test_a_hook_written_just_before_the_list_is_in_it(jetstream: JetStreamContext) -> None:
    # A KV watch said "caught up" now and then before the last value reached it: about
    # 2 lists in 300 lacked the hook written just before (POST /sip/hooks answered
    # without the hook it had created).
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    short = []
    for i in range(300):
        hook = Hook.new(f"h{i}.example.com", f"https://h{i}.example.com/hook", "runtime")
        await kv.put(hook.key, hook.encode())
        if len(await snapshot(kv)) != i + 1:
            short.append(i)
    assert short == []
    info = await jetstream.stream_info(f"KV_{topology.HOOKS_BUCKET}")
    assert info.state.consumer_count == 0  # each list removed its consumer


async def test_deleted_hooks_are_not_listed(jetstream: JetStreamContext) -> None:
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    assert await snapshot(kv) == []
    for host in ("a.example.com", "b.example.com"):
        hook = Hook.new(host, f"https://{host}/hook", "runtime")
        await kv.put(hook.key, hook.encode())
    await kv.delete(Hook.new("a.example.com", "https://a.example.com/hook", "runtime").key)

    assert [h.host for h in await snapshot(kv)] == ["b.example.com"]
