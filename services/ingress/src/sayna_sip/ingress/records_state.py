"""The ingress's readers of SIP_ATTEMPTS and SIP_DEAD, built in its lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.deliveries import Deliveries
from sayna_sip.common.hook import DEFAULT_ENDPOINT
from sayna_sip.common.replay import Replayer
from sayna_sip.common.streamscan import StreamReader
from sayna_sip.ingress.hooks import HookStore


@dataclass
class Records:
    js: JetStreamContext
    deliveries: Deliveries
    dead_reader: StreamReader
    replayer: Replayer
    hooks: HookStore
    audit_reader: StreamReader

    @classmethod
    async def start(cls, nc: Client, js: JetStreamContext, hooks: HookStore) -> Records:
        attempts = StreamReader(nc, topology.SIP_ATTEMPTS)
        dead = StreamReader(nc, topology.SIP_DEAD)
        audit = StreamReader(nc, topology.SIP_AUDIT)
        for reader in (attempts, dead, audit):
            await reader.start()

        async def attempts_last() -> int:
            return (await js.stream_info(topology.SIP_ATTEMPTS)).state.last_seq

        deliveries = Deliveries(attempts, attempts_last)
        return cls(js, deliveries, dead, Replayer(js, attempts), hooks, audit)

    async def audit_last_seq(self) -> int:
        return (await self.js.stream_info(topology.SIP_AUDIT)).state.last_seq

    async def dead_last_seq(self) -> int:
        return (await self.js.stream_info(topology.SIP_DEAD)).state.last_seq

    async def hook_state(self, host: str, endpoint_id: str = DEFAULT_ENDPOINT) -> str:
        """`enabled`, `disabled` or `removed` (no such hook or endpoint now)."""
        for hook in await self.hooks.all():
            endpoint = hook.endpoint(endpoint_id) if hook.host == host else None
            if endpoint is not None:
                return "enabled" if endpoint.enabled else "disabled"
        return "removed"

    async def rate_limit(self, host: str, endpoint_id: str = DEFAULT_ENDPOINT) -> float | None:
        """The endpoint's `rate_limit` (None: none, or no such endpoint now)."""
        for hook in await self.hooks.all():
            endpoint = hook.endpoint(endpoint_id) if hook.host == host else None
            if endpoint is not None:
                return endpoint.rate_limit
        return None
