"""Routing throughput of one router process: drain a backlog of SIP events.

Usage: .venv/bin/python -m bench.router_backlog [--events 5000] [--nats-url URL]

Without --nats-url it starts a throwaway nats-server (JetStream, temp store). It creates
the topology, stores N `participant_joined` events of SIP rooms in LK_EVENTS the way the
ingress does, puts one wildcard hook, then starts `sayna-sip router` as its own process
and times from the first to the last delivery stored in SIP_DELIVERIES (startup excluded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
import yaml
from nats.js import JetStreamContext

from sayna_sip.common import contracts, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.contracts import Header
from sayna_sip.common.hook import Hook
from sayna_sip.common.hosts import host_token


def start_nats(store: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or "nats-server"
    ports = store / "ports"
    ports.mkdir(parents=True)
    cmd = [binary, "-js", "-a", "127.0.0.1", "-p", "-1", "-sd", str(store / "js")]
    proc = subprocess.Popen([*cmd, "--ports_file_dir", str(ports)], stderr=subprocess.DEVNULL)
    for _ in range(200):
        files = list(ports.glob("*.ports"))
        if files and files[0].read_text().strip():
            return proc, json.loads(files[0].read_text())["nats"][0]
        time.sleep(0.05)
    raise RuntimeError("nats-server did not start")


async def setup(js: JetStreamContext, n: int, rooms: int) -> None:
    for stream in topology.streams():
        await js.add_stream(stream)
    for bucket in topology.buckets():
        await js.create_key_value(bucket)
    for spec in topology.consumers(ServerConfig()):
        await js.add_consumer(spec.stream, spec.config)
    kv = await js.key_value(topology.HOOKS_BUCKET)
    await kv.put(
        host_token("*.example.com"),
        Hook.new("*.example.com", "https://h.test/", "runtime").encode(),
    )
    attrs = {"sip.callID": "SCL_x", "sip.trunkID": "ST_x", "sip.phoneNumber": "+15557654321"}
    pending = []
    for i in range(n):
        event = {
            "event": "participant_joined",
            "id": f"EV_{i:07d}",
            "room": {"sid": "RM_x", "name": f"sip-bench-{i % rooms}", "creationTime": "1700000000"},
            "participant": {
                "sid": "PA_x",
                "identity": "sip_+15557654321",
                "kind": "SIP",
                "attributes": {**attrs, "sip.h.to": f"sip:+1555@t{i % 50}.example.com"},
            },
            "createdAt": "1700000000",
        }
        headers = {
            Header.MSG_ID: event["id"],
            Header.EVENT_ID: event["id"],
            Header.EVENT: "participant_joined",
            Header.ROOM: event["room"]["name"],  # type: ignore[index]
            Header.RECEIVED_AT: f"{time.time():.6f}",
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        subject = contracts.lk_event_subject("participant_joined", event["room"]["name"])  # type: ignore[index]
        pending.append(js.publish(subject, body, headers=headers, stream=topology.LK_EVENTS))
        if len(pending) == 200:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


async def wait_stored(js: JetStreamContext, at_least: int) -> int:
    """Poll SIP_DELIVERIES' message count (JetStream has no event for it)."""
    while True:
        count = (await js.stream_info(topology.SIP_DELIVERIES)).state.messages
        if count >= at_least:
            return count
        await asyncio.sleep(0.01)


def spawn(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env)


async def run(url: str, n: int, rooms: int, workdir: Path) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await setup(js, n, rooms)
    config = workdir / "router.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "nats": {"url": url},
                "sip": {"room_prefix": "sip-", "allowed_addresses": ["10.0.0.1"]},
                "server": {"host": "127.0.0.1"},
                "router": {"port": 0},
                "logging": {"level": "WARNING"},
            }
        )
    )
    cli = Path(sys.executable).parent / "sayna-sip"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIP_", "NATS_"))}
    router = spawn([str(cli), "router", "--config", str(config)], env)
    try:
        first = await wait_stored(js, 1)
        t0, cpu0 = time.perf_counter(), cpu_seconds(router.pid)
        done = await wait_stored(js, n)
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(router.pid) - cpu0
    finally:
        router.terminate()
        router.wait(20)
        await nc.close()
    routed = done - first
    print(
        f"routed {routed} events in {elapsed:.2f}s: {routed / elapsed:,.0f} events/s; "
        f"router CPU {cpu:.2f}s: {routed / cpu:,.0f} events per CPU-second"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to see past a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--nats-url")
    parser.add_argument(
        "--rooms", type=int, default=50, help="distinct rooms (calls); each costs one KV put"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = None
        url = args.nats_url
        if url is None:
            server, url = start_nats(workdir / "nats")
        try:
            asyncio.run(run(url, args.events, args.rooms, workdir))
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)


if __name__ == "__main__":
    main()
