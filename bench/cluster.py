"""A 3-node JetStream cluster of nats-servers from the wheel, on loopback, for the fault
suite and its short variants in `make test`.

Each node has a fixed client port, route port and store directory, so a node that was
SIGKILLed restarts as the same server and catches up from its peers. `leader()` names
a stream's current leader (the node to kill), `wait_current()` waits until every
replica of a stream is back and caught up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
from nats.js.api import StreamInfo

from bench import procs
from bench.procs import Proc

CLUSTER_NAME = "sayna-faults"


class Node:
    def __init__(self, name: str, port: int, route_port: int, store: Path) -> None:
        self.name, self.port, self.route_port, self.store = name, port, route_port, store
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


class NatsCluster:
    """Three JetStream nodes routed to each other; `url` is the comma-separated list."""

    def __init__(self, work: Path, logs: Path, size: int = 3) -> None:
        self._logs = logs
        self.nodes = [
            Node(f"n{i + 1}", procs.free_port(), procs.free_port(), work / f"n{i + 1}")
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            self._spawn(node)
        asyncio.run(self._wait_meta(timeout))

    def _spawn(self, node: Node) -> None:
        routes = ",".join(f"nats://127.0.0.1:{n.route_port}" for n in self.nodes if n is not node)
        cmd = [str(procs.BIN / "nats-server"), "-js", "-a", "127.0.0.1", "-p", str(node.port)]
        cmd += ["-sd", str(node.store), "--server_name", node.name]
        cmd += ["--cluster_name", CLUSTER_NAME, "--cluster", f"nats://127.0.0.1:{node.route_port}"]
        cmd += ["--routes", routes]
        node.proc = Proc(f"nats-{node.name}", cmd, self._logs, {})
        procs.wait_tcp(node.proc, node.port)

    async def _wait_meta(self, timeout: float) -> None:
        """Until JetStream answers through every node (a meta leader was elected)."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while True:
                try:
                    nc = await nats.connect(node.url, allow_reconnect=False, connect_timeout=1)
                    try:
                        await nc.jetstream().account_info()
                        break
                    finally:
                        await nc.close()
                except (nats.errors.Error, OSError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster node {node.name} not ready") from None
                    await asyncio.sleep(0.2)

    def kill(self, name: str) -> None:
        """SIGKILL one node (no clean shutdown, no leadership hand-over)."""
        node = self.node(name)
        assert node.proc is not None
        node.proc.popen.kill()
        node.proc.popen.wait()
        node.proc.stop()

    def restart(self, name: str) -> None:
        self._spawn(self.node(name))

    async def leader(self, stream: str, timeout: float = 30.0) -> str:
        """The name of `stream`'s leader, once it has one."""
        info = await self._info(stream, timeout, lambda i: bool(i.cluster and i.cluster.leader))
        assert info.cluster is not None and info.cluster.leader is not None
        return info.cluster.leader

    async def wait_current(self, stream: str, timeout: float = 60.0) -> None:
        """Until `stream` has a leader and every replica is current (caught up)."""

        def current(info: StreamInfo) -> bool:
            cluster = info.cluster
            if cluster is None or not cluster.leader:
                return False
            replicas = cluster.replicas or []
            return len(replicas) == len(self.nodes) - 1 and all(r.current for r in replicas)

        await self._info(stream, timeout, current)

    async def _info(
        self, stream: str, timeout: float, ok: Callable[[StreamInfo], bool]
    ) -> StreamInfo:
        deadline = time.monotonic() + timeout
        nc = await nats.connect(self.url.split(","), max_reconnect_attempts=-1, error_cb=_quiet)
        try:
            js = nc.jetstream(timeout=2.0)
            while True:
                try:
                    info = await js.stream_info(stream)
                    if ok(info):
                        return info
                except (nats.errors.Error, nats.js.errors.Error):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"stream {stream}: no leader or replicas not current")
                await asyncio.sleep(0.2)
        finally:
            await nc.close()

    def close(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                node.proc.stop(5.0)
                node.proc = None


async def _quiet(exc: Exception) -> None:
    """The suite's own connection: a killed node's refusals are expected, not news."""
