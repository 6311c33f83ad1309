"""What every scenario needs: a run directory, the test CA, the sink, nats-server with
the topology, the services' environment, and the load generator as a child process.

`Bench` owns every child process it starts and stops them all in `close()`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import nats
import trustme

from bench import events, procs
from bench.procs import Proc
from bench.profiling import Profiles
from sayna_sip.common import topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.hook import Endpoint, Hook


def service_available(name: str) -> bool:
    """True once a service's package has landed (`sayna_sip.<name>.main`)."""
    try:
        return importlib.util.find_spec(f"sayna_sip.{name}.main") is not None
    except ModuleNotFoundError:
        return False


class Sink:
    """Client side of bench.sink: counts and arrival times per event id."""

    def __init__(self, proc: Proc, port: int, ca_path: Path) -> None:
        self.proc, self.port = proc, port
        ctx = ssl.create_default_context(cafile=str(ca_path))
        self._client = httpx.Client(verify=ctx, timeout=30.0)

    def url(self, path: str = "/hook") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def stats(self) -> dict[str, int]:
        return dict(self._client.get(self.url("/_count")).json())

    def arrivals(self) -> dict[str, float]:
        return dict(self._client.get(self.url("/_arrivals")).json())

    def seqs(self) -> dict[str, int]:
        """`Sayna-Call-Seq` of each first arrival that had one."""
        return dict(self._client.get(self.url("/_seqs")).json())

    def fail_once(self, event_ids: list[str]) -> None:
        """Answer 500 to the next request of each of these ids (not recorded)."""
        self._client.post(self.url("/_fail_once"), json=event_ids).raise_for_status()

    def reset(self) -> None:
        self._client.post(self.url("/_reset"))

    def wait_for(self, count: int, timeout: float, idle: float = 5.0) -> int:
        """Wait until `count` distinct ids arrived, or nothing new came for `idle` s."""
        deadline = time.monotonic() + timeout
        seen, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            now_count = self.stats()["count"]
            if now_count >= count:
                return now_count
            if now_count != seen:
                seen, last_change = now_count, time.monotonic()
            elif time.monotonic() - last_change > idle:
                break
            time.sleep(0.05)
        return max(seen, 0)

    def close(self) -> None:
        self._client.close()


class Bench:
    """One benchmark run's directory, CA and child processes."""

    def __init__(
        self,
        run_dir: Path,
        run_id: str,
        profile_dir: Path | None = None,
        uvloop_services: tuple[str, ...] = (),
        extra_env: dict[str, str] | None = None,
        endpoints: int = 1,
    ) -> None:
        self.dir = run_dir
        self.endpoints = endpoints  # experiment: endpoints of the tenant's hook (its copies)
        self.extra_env = extra_env or {}  # experiment: on top of every service's environment
        self.uvloop_services = uvloop_services  # experiment: run these commands on uvloop
        self.profiles = Profiles(profile_dir)
        self.run_id = run_id
        self.logs = run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []
        ca = trustme.CA()
        self.ca_path = run_dir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_path))
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.cert_path, self.key_path = run_dir / "sink.pem", run_dir / "sink.key"
        cert.cert_chain_pems[0].write_to_path(str(self.cert_path))
        cert.private_key_pem.write_to_path(str(self.key_path))
        self._serial = 0

    def track(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def unique(self, label: str) -> str:
        """A fresh event-id prefix (JetStream deduplicates ids within 10 minutes)."""
        self._serial += 1
        return f"{self.run_id}{label}{self._serial}"

    def start_sink(self) -> Sink:
        port = procs.free_port()
        args = ["--port", str(port), "--cert", str(self.cert_path), "--key", str(self.key_path)]
        proc = self.track(procs.python_module("sink", "bench.sink", args, self.logs, {}))
        sink = Sink(proc, port, self.ca_path)
        procs.wait_http(proc, sink.url("/_count"), cafile=str(self.ca_path))
        return sink

    def start_nats(self, label: str, monitor: int | None = None) -> tuple[Proc, str]:
        proc, url = procs.start_nats(self.logs, self.dir / f"nats-{label}", monitor)
        return self.track(proc), url

    def provision(self, nats_url: str, sink: Sink) -> None:
        """The topology and the tenant hook in KV, as `sayna-sip provision` leaves them."""
        asyncio.run(_provision(nats_url, sink.url(), self.endpoints))

    def service_env(self, nats_url: str, sink: Sink) -> dict[str, str]:
        hooks = [{"host": events.TENANT_HOST, "url": sink.url()}]
        return {
            "NATS_URL": nats_url,
            "LIVEKIT_API_KEY": events.API_KEY,
            "LIVEKIT_API_SECRET": events.API_SECRET,
            "SIP_ROOM_PREFIX": events.ROOM_PREFIX,
            "SIP_ALLOWED_ADDRESSES": "127.0.0.1",
            "SIP_HOOKS_JSON": json.dumps(hooks),
            "SIP_HOOK_SECRET": events.HOOK_SECRET,
            "SIP_HOOK_ALLOW_NETWORKS": "127.0.0.0/8",
            "SIP_HOOK_CA_BUNDLE": str(self.ca_path),
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "INFO",
        } | self.extra_env

    def start_service(self, name: str, command: str, env: dict[str, str], port: int) -> Proc:
        [proc] = self.start_services([(name, command, env, port)])
        return proc

    def start_services(self, specs: list[tuple[str, str, dict[str, str], int]]) -> list[Proc]:
        """Launch every (name, command, env, port) at once, then wait until all are ready:
        forwarders started together begin consuming within moments of each other."""
        started = []
        for name, command, env, port in specs:
            if command in self.uvloop_services:
                proc = procs.python_module(name, "bench.uvloop_run", [command], self.logs, env)
            else:
                proc = procs.sayna_sip(name, command, self.logs, env)
            self.track(proc)
            proc.port = port
            started.append(proc)
        for proc, (_, _, _, port) in zip(started, specs, strict=True):
            _wait_ready(proc, port)
        return started

    def start_baseline(self, kind: str, extra: list[str]) -> tuple[Proc, int]:
        port = procs.free_port()
        args = [kind, "--port", str(port), *extra]
        proc = self.track(procs.python_module(kind, "bench.baselines", args, self.logs, {}))
        procs.wait_tcp(proc, port)
        return proc, port

    def loadgen(self, port: int, label: str, args: list[str]) -> dict[str, Any]:
        """Run the load generator to completion in its own process; its JSON result."""
        out = self.dir / f"loadgen-{label}.json"
        cmd = [procs.PYTHON, "-m", "bench.loadgen", "--port", str(port), "--out", str(out)]
        cmd += ["--run", self.unique(label), *args]
        with (self.logs / "loadgen.log").open("ab") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
        result: dict[str, Any] = json.loads(out.read_text())
        result["run"] = cmd[cmd.index("--run") + 1]
        return result

    def raw_rate(self, sink: Sink, count: int, concurrency: int) -> dict[str, Any]:
        """The raw aiohttp POST rate to `sink` from one process (forwarder baseline)."""
        out = self.dir / "raw-rate.json"
        cmd = [procs.PYTHON, "-m", "bench.raw_rate", "--url", sink.url(), "--ca"]
        cmd += [str(self.ca_path), "--count", str(count), "--concurrency", str(concurrency)]
        cmd += ["--run", self.unique("raw"), "--out", str(out)]
        with (self.logs / "raw-rate.log").open("ab") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
        result: dict[str, Any] = json.loads(out.read_text())
        result["concurrency"] = concurrency
        return result

    def stop(self, *stopping: Proc) -> None:
        for proc in stopping:
            proc.stop()
            if proc in self.procs:
                self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(5.0)
        self.procs.clear()


def _wait_ready(proc: Proc, port: int, timeout: float = 30.0) -> None:
    """A service is ready when /readyz (else /healthz, for services without one) says 200."""
    procs.wait_tcp(proc, port, timeout)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(timeout=1.0) as client:
        if client.get(base + "/readyz").status_code == 404:
            procs.wait_http(proc, base + "/healthz", timeout=timeout)
            return
    procs.wait_http(proc, base + "/readyz", timeout=timeout)


def endpoint_ids(count: int) -> list[str]:
    """The tenant hook's endpoint ids: `default`, then `ep1`, `ep2`, ..."""
    return ["default", *(f"ep{i}" for i in range(1, count))]


async def _provision(nats_url: str, hook_url: str, endpoints: int = 1) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        config = ServerConfig()
        for stream in topology.streams(config.nats.replicas, config.records):
            await js.add_stream(stream)
        for bucket in topology.buckets(config.nats.replicas):
            await js.create_key_value(bucket)
        for spec in topology.consumers(config):
            await js.add_consumer(spec.stream, spec.config)
        kv = await js.key_value(topology.HOOKS_BUCKET)
        record = Hook.new(events.TENANT_HOST, hook_url, "config")
        extra = tuple(Endpoint(id=e, url=hook_url) for e in endpoint_ids(endpoints)[1:])
        record = record.changed(endpoints=extra)
        await kv.put(record.key, record.encode())
    finally:
        await nc.close()
