"""Router fixtures: a config pointing at the test nats-server, and a running router."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.js import JetStreamContext

from sayna_sip.common.config import NatsConfig, ServerConfig, SipConfig
from sayna_sip.router.app import RouterService
from tests.fixtures.nats import NatsServer

PREFIX = "sip-"


@pytest.fixture
def router_config(nats_server: NatsServer) -> ServerConfig:
    """SIP enabled (rooms `sip-*`), HTTP on a random loopback port, NATS = the test server."""
    return ServerConfig(
        sip=SipConfig(room_prefix=PREFIX, allowed_addresses=("10.0.0.1",)),
        nats=NatsConfig(url=nats_server.url),
        host="127.0.0.1",
        router_port=0,
    )


@pytest.fixture
async def router(
    jetstream: JetStreamContext, router_config: ServerConfig
) -> AsyncIterator[RouterService]:
    """A started in-process router on the full topology."""
    service = RouterService(router_config)
    await service.start()
    yield service
    await service.stop()
