"""A nats-server restart drops the KV watch: the forwarder rebuilds its hook cache, so a
hook deleted after the restart is not delivered to from a stale cache."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext

from sayna_sip.common.contracts import DeadReason, Header
from tests.fixtures.https_sink import HttpsSink
from tests.fixtures.nats import NatsServer
from tests.forwarder.conftest import StartForwarder, delete_hook, publish, put_hook, wait_dead
from tests.router.helpers import until


async def test_hook_cache_follows_changes_after_a_nats_restart(
    nats_server: NatsServer,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    start_forwarder: StartForwarder,
) -> None:
    await put_hook(jetstream, "r.example.com", https_sink.url("/before"))
    fwd = await start_forwarder()
    await publish(jetstream, "r.example.com")
    await https_sink.wait_for(1, "/before")

    await asyncio.to_thread(nats_server.restart)
    async with asyncio.timeout(10):  # the reconnect is noticed within about a second
        await fwd.hooks.reloaded.wait()
    await delete_hook(jetstream, "r.example.com")
    await until(lambda: fwd.hooks.get("r.example.com") is None)  # the new watch saw it
    await publish(jetstream, "r.example.com")

    (dead,) = await wait_dead(jetstream, 1)
    assert (dead.headers or {})[Header.DEAD_REASON] == DeadReason.HOOK_REMOVED
    assert len(https_sink.received("/before")) == 1
