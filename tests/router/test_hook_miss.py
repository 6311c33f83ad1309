"""A hook the cache does not know yet (its watch update still on the way, or a reload
after a reconnect under way) is read from `sip_hooks` before an event counts unmatched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats.errors
import pytest
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.contracts import Header
from sayna_sip.common.hook import Hook
from sayna_sip.common.hook_directory import HookDirectory
from sayna_sip.router.app import RouterService
from tests.fixtures.livekit import sip_event
from tests.router.helpers import (
    headers_of,
    publish_event,
    put_hook,
    router_backlog,
    take_deliveries,
    until,
)


def counted(service: RouterService, outcome: str) -> float:
    value = service.registry.get_sample_value("sayna_sip_router_events_total", {"outcome": outcome})
    return value or 0.0


@pytest.fixture
async def stale_router(
    jetstream: JetStreamContext, router_config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RouterService]:
    """A router whose hook cache loads once and then never hears of a change."""

    async def watch_never_delivers(
        directory: HookDirectory, watcher: KeyValue.KeyWatcher, hooks: dict[str, Hook]
    ) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(HookDirectory, "_follow", watch_never_delivers)
    service = RouterService(router_config)
    await service.start()
    yield service
    await service.stop()


async def test_hook_missing_from_the_cache_is_read_from_kv_most_specific_first(
    jetstream: JetStreamContext, stale_router: RouterService
) -> None:
    for host in ("*.example.com", "*.eu.example.com", "a.eu.example.com"):
        await put_hook(jetstream, host)
    assert len(stale_router.hooks or ()) == 0  # the cache really missed them
    expect = {"a.eu.example.com": "a.eu.example.com", "x.eu.example.com": "*.eu.example.com"}
    expect["y.example.com"] = "*.example.com"
    for i, host in enumerate(expect):
        await publish_event(jetstream, sip_event(room=f"sip-m{i}", to=f"sip:b@{host}"))

    got = await take_deliveries(jetstream, len(expect))

    hooks = {headers_of(m)[Header.SIP_HOST]: headers_of(m)[Header.HOOK] for m in got}
    assert hooks == expect
    assert counted(stale_router, "unmatched") == 0


async def test_kv_error_on_a_miss_is_a_retry_not_a_drop(
    jetstream: JetStreamContext, stale_router: RouterService, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(kv: KeyValue, key: str, *args: object, **kwargs: object) -> None:
        raise nats.errors.TimeoutError

    monkeypatch.setattr(KeyValue, "get", unavailable)
    await publish_event(jetstream, sip_event(to="sip:b@new.example.com"))

    await until(lambda: counted(stale_router, "retry") > 0)
    ack_pending, pending, _ = await router_backlog(jetstream)
    assert ack_pending + pending == 1  # held for redelivery, not acked
    assert counted(stale_router, "unmatched") == 0
