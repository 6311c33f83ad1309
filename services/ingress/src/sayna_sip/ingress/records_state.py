"""The ingress's readers of SIP_ATTEMPTS and SIP_DEAD, built in its lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.deliveries import Deliveries
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

    @classmethod
    async def start(cls, nc: Client, js: JetStreamContext, hooks: HookStore) -> Records:
        attempts = StreamReader(nc, topology.SIP_ATTEMPTS)
        dead = StreamReader(nc, topology.SIP_DEAD)
        await attempts.start()
        await dead.start()

        async def attempts_last() -> int:
            return (await js.stream_info(topology.SIP_ATTEMPTS)).state.last_seq

        return cls(js, Deliveries(attempts, attempts_last), dead, Replayer(js, attempts), hooks)

    async def dead_last_seq(self) -> int:
        return (await self.js.stream_info(topology.SIP_DEAD)).state.last_seq

    async def hook_state(self, host: str) -> str:
        """`enabled`, `disabled` or `removed` (no such hook now)."""
        for hook in await self.hooks.all():
            if hook.host == host:
                return "disabled" if getattr(hook, "enabled", True) is False else "enabled"
        return "removed"
