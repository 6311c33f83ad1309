"""The system under a fault: nats (one server or a 3-node cluster), `sayna-sip provision`,
ingress, router and N forwarders as real processes, each one killable and restartable
on its own port; hooks at the bench sink (healthy tenants) or a black hole.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from bench import events, procs
from bench.cluster import NatsCluster
from bench.harness import Bench, Sink
from bench.procs import Proc
from sayna_sip.common import config, config_load, natsconn
from sayna_sip.provisioner.provision import provision_nats

HEALTHY_HOST = events.TENANT_HOST
OTHER_HOST = "other.bench.test"  # a second healthy tenant (the black hole's baseline)
HOLE_HOST = "hole.bench.test"


@dataclass(frozen=True)
class Hook:
    host: str
    url: str


class Stack:
    """One pipeline; `nats_url` may be a comma-separated cluster list."""

    def __init__(
        self,
        b: Bench,
        nats_url: str,
        hooks: list[Hook],
        forwarders: int = 1,
        env: dict[str, str] | None = None,
        replicas: int = 1,
    ) -> None:
        self.b = b
        self.env = self._env(nats_url, hooks, replicas) | (env or {})
        self.forwarder_count = forwarders
        self.services: dict[str, Proc] = {}
        self.ports: dict[str, int] = {}

    def _env(self, nats_url: str, hooks: list[Hook], replicas: int) -> dict[str, str]:
        return {
            "NATS_URL": nats_url,
            "NATS_REPLICAS": str(replicas),
            "LIVEKIT_API_KEY": events.API_KEY,
            "LIVEKIT_API_SECRET": events.API_SECRET,
            "SIP_ROOM_PREFIX": events.ROOM_PREFIX,
            "SIP_ALLOWED_ADDRESSES": "127.0.0.1",
            "SIP_HOOKS_JSON": json.dumps([{"host": h.host, "url": h.url} for h in hooks]),
            "SIP_HOOK_SECRET": events.HOOK_SECRET,
            "SIP_HOOK_ALLOW_NETWORKS": "127.0.0.0/8",
            "SIP_HOOK_CA_BUNDLE": str(self.b.ca_path),
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "INFO",
        }

    def start(self) -> None:
        asyncio.run(_provision(config_load.load({}, self.env)))
        names = ["ingress", "router"] + [f"forwarder-{i + 1}" for i in range(self.forwarder_count)]
        for name in names:
            self.ports[name] = procs.free_port()
            self.restart(name)

    @property
    def ingress_port(self) -> int:
        return self.ports["ingress"]

    def restart(self, name: str) -> None:
        """Start `name` (again) on its own port and wait until it is ready."""
        command = name.split("-")[0]
        port_var = {"ingress": "PORT", "router": "ROUTER_PORT", "forwarder": "FORWARDER_PORT"}
        env = self.env | {port_var[command]: str(self.ports[name])}
        self.services[name] = self.b.start_service(name, command, env, self.ports[name])

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hook runs, nothing in flight is handed back."""
        proc = self.services.pop(name)
        proc.popen.kill()
        proc.popen.wait()
        self.b.stop(proc)

    def forwarders(self) -> list[Proc]:
        return [p for n, p in self.services.items() if n.startswith("forwarder")]

    def close(self) -> None:
        """SIGKILL what is left: the row is measured, a clean stop would only add the
        forwarders' shutdown grace (up to 5 s each, with a black hole in flight)."""
        for name in list(self.services):
            self.kill(name)


def start_black_hole(b: Bench) -> tuple[Proc, str]:
    """A TCP server that accepts and never answers; its hook URL."""
    port = procs.free_port()
    proc = b.track(
        procs.python_module("blackhole", "bench.blackhole", ["--port", str(port)], b.logs, {})
    )
    procs.wait_tcp(proc, port)
    return proc, f"https://127.0.0.1:{port}/hook"


def start_cluster(b: Bench, label: str) -> NatsCluster:
    cluster = NatsCluster(b.dir / f"cluster-{label}", b.logs)
    cluster.start()
    return cluster


def sink_hooks(sink: Sink, *hosts: str) -> list[Hook]:
    return [Hook(h, sink.url(f"/{h}")) for h in hosts]


async def _provision(cfg: config.ServerConfig) -> None:
    """What `sayna-sip provision` does to NATS (LiveKit is not part of these runs)."""
    nc = await natsconn.connect(cfg.nats, name="bench-faults")
    try:
        await provision_nats(nc, cfg)
    finally:
        await natsconn.close(nc)  # on purpose: not logged as a lost connection
