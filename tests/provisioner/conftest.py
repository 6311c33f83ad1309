"""Helpers shared by the provisioner tests: a config pointing at the test servers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sayna_sip.common.config import ServerConfig
from tests.fixtures.nats import NatsServer

MakeConfig = Callable[..., ServerConfig]


@pytest.fixture
def make_config(nats_server: NatsServer) -> MakeConfig:
    """Build a ServerConfig on `nats_server`; keyword args are extra environment entries."""

    def build(**env: str) -> ServerConfig:
        return ServerConfig.from_env({"NATS_URL": nats_server.url, **env})

    return build
