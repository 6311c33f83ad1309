"""Reaching NATS: a cluster's URL list, a bounded start, reconnecting forever after."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest
from nats.js import JetStreamContext

from sayna_sip.common import natsconn
from sayna_sip.common.config import NatsConfig, ServerConfig, SipConfig
from sayna_sip.router.app import RouterService
from tests.fixtures.nats import NatsServer


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cluster_url(nats_server: NatsServer) -> str:
    """A cluster list as the docs write it: one dead member, spaces after the commas."""
    return f"nats://127.0.0.1:{closed_port()}, {nats_server.url}"


async def test_connect_takes_a_comma_separated_cluster_list(nats_server: NatsServer) -> None:
    nats = ServerConfig.from_env({"NATS_URL": cluster_url(nats_server)}).nats

    nc = await natsconn.connect(nats, name="test")
    try:
        assert nc.connected_url is not None and nc.connected_url.port == nats_server.port
    finally:
        await nc.close()


async def test_router_broker_takes_a_cluster_list(
    jetstream: JetStreamContext, nats_server: NatsServer
) -> None:
    config = ServerConfig(
        sip=SipConfig(room_prefix="sip-", allowed_addresses=("10.0.0.1",)),
        nats=ServerConfig.from_env({"NATS_URL": cluster_url(nats_server)}).nats,
        host="127.0.0.1",
        router_port=0,
    )
    service = RouterService(config)
    await service.start()
    try:
        assert await service.readiness() is None
    finally:
        await service.stop()


async def test_unreachable_nats_fails_within_the_budget_logging_each_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    urls = f"nats://127.0.0.1:{closed_port()},nats://u:pw@127.0.0.1:{closed_port()}"
    nats = NatsConfig(url=urls, start_timeout=1.5)
    caplog.set_level(logging.WARNING, "sayna_sip.nats")

    started = time.monotonic()
    with pytest.raises(natsconn.NatsUnavailable) as err:
        await natsconn.connect(nats, name="test")
    elapsed = time.monotonic() - started

    assert 1.4 < elapsed < 3.0
    assert nats.display in str(err.value) and "NATS_START_TIMEOUT" in str(err.value)
    failures = [r.getMessage() for r in caplog.records if "nats_connect_failed" in r.getMessage()]
    assert len(failures) >= 2 and "attempt=2 " in failures[1]
    assert all("pw" not in line for line in failures) and "pw" not in str(err.value)


async def test_router_start_is_bounded_too() -> None:
    nats = NatsConfig(url=f"nats://127.0.0.1:{closed_port()}", start_timeout=1.0)
    service = RouterService(ServerConfig(nats=nats, host="127.0.0.1", router_port=0))

    with pytest.raises(natsconn.NatsUnavailable):
        await asyncio.wait_for(service.start(), 5)
    await service.stop()


async def test_once_connected_an_outage_longer_than_the_budget_is_ridden_out(
    nats_server: NatsServer,
) -> None:
    nc = await natsconn.connect(NatsConfig(url=nats_server.url, start_timeout=0.5), name="t")
    try:
        nats_server.stop()
        await asyncio.sleep(1.5)  # the outage itself is the point: three budgets long
        nats_server.start()
        for _ in range(200):
            if nc.is_connected:
                break
            await asyncio.sleep(0.05)
        assert nc.is_connected
        await nc.flush(timeout=2)
    finally:
        await nc.close()
