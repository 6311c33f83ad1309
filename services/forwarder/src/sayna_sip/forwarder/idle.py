"""The forwarder with SIP off: nothing can be routed, so nothing is delivered and none
of the delivery topology exists (the provisioner creates none of it). The process still
runs as `up` and compose start it: connected to NATS (so /healthz means what it always
means), serving /readyz and /metrics, consuming nothing and logging nothing more."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.aio.client import Client

from sayna_sip.common import natsconn
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.health import HealthServer, NotReady, health_app
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.metrics import new_registry

log = logging.getLogger("sayna_sip.forwarder")


@dataclass(eq=False)
class IdleForwarder:
    nc: Client
    health: HealthServer

    @property
    def port(self) -> int:
        return self.health.port

    @classmethod
    async def start(cls, config: ServerConfig) -> IdleForwarder:
        nc = await natsconn.connect(config.nats, name="sayna-sip-forwarder")
        try:

            async def readiness() -> NotReady | None:
                if not nc.is_connected:
                    return NotReady(ErrorCode.NATS_UNAVAILABLE, "NATS is not connected")
                return None

            app = health_app(new_registry(), readiness, lambda: not natsconn.lost(nc))
            health = HealthServer(app, config.host, config.forwarder.port, "forwarder-health")
            await health.start()
        except BaseException:
            await natsconn.close(nc)
            raise
        log.info("event=forwarder_started port=%d idle=true", health.port)
        return cls(nc, health)

    async def stop(self) -> None:
        await self.health.stop()
        await natsconn.close(self.nc)
        log.info("event=forwarder_stopped")
