"""Forwarder throughput and latency, measured on real servers (not collected by pytest).

    .venv/bin/python -m bench.forwarder_backlog --events 2000 --processes 1 --hosts 4

Starts a nats-server with the topology, the HTTPS sink (answers 200 at once), puts the
hooks in KV, publishes a backlog, then starts N forwarder *processes* and times from
their start to the last arrival. Latency per event = arrival at the sink - publish time
of a second, paced run (`--rate` events/s) so it measures the pipeline, not the backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import nats
import trustme

from tests.fixtures.https_sink import HttpsSink
from tests.fixtures.nats import NatsServer, apply_topology
from tests.forwarder.conftest import forwarder_env, publish, put_hook
from tests.forwarder.test_resilience import SAYNA_SIP


async def publish_backlog(js: object, hosts: list[str], count: int) -> dict[str, float]:
    sent: dict[str, float] = {}
    for start in range(0, count, 200):
        now = time.time()
        batch = [publish(js, hosts[i % len(hosts)], received_at=now)  # type: ignore[arg-type]
                 for i in range(start, min(count, start + 200))]  # fmt: skip
        sent.update((eid, now) for eid, _ in await asyncio.gather(*batch))
    return sent


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (load-independent cost measure)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp())
    server = NatsServer(tmp / "nats")
    server.start()
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    sink = HttpsSink(ca, tmp / "ca.pem")
    await sink.start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await apply_topology(js)
    hosts = [f"h{i}.example.com" for i in range(args.hosts)]
    for host in hosts:
        await put_hook(js, host, sink.url("/bench"))
    env = forwarder_env(server.url, sink, LOG_LEVEL="WARNING")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await publish_backlog(js, hosts, args.events)
        t0 = time.monotonic()
        for _ in range(args.processes):
            cmd = os.environ.get("BENCH_FORWARDER_CMD", f"{SAYNA_SIP} forwarder").split()
            procs.append(subprocess.Popen(cmd, env={**os.environ, **env}))  # noqa: ASYNC220  # noqa: ASYNC220
        await sink.wait_for(args.events, "/bench", timeout=300)
        elapsed = time.monotonic() - t0  # includes process start (~0.5 s), reported apart
        cpu = sum(cpu_seconds(p.pid) for p in procs)
        first = min(r.at for r in sink.received("/bench"))
        last = max(r.at for r in sink.received("/bench"))
        print(f"backlog {args.events} events, {args.processes} process(es), {args.hosts} hosts: "
              f"{args.events / (last - first):.0f} deliveries/s between first and last arrival "
              f"({elapsed:.2f} s incl. start); forwarder CPU {cpu * 1000 / args.events:.2f} ms"
              " per delivery")  # fmt: skip
        await paced(js, hosts, sink, args)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(15)
        await nc.close()
        await sink.stop()
        server.stop()


async def paced(js: object, hosts: list[str], sink: HttpsSink, args: argparse.Namespace) -> None:
    """Latency at a steady rate: rate/10 events every 100 ms, arrival - publish time."""
    sink.requests.clear()
    sent: dict[str, float] = {}
    for _ in range(args.paced_seconds * 10):
        sent.update(await publish_backlog(js, hosts, args.rate // 10))
        await asyncio.sleep(0.1)
    got = await sink.wait_for(len(sent), "/bench", timeout=60)
    lat = sorted(r.at - sent[r.headers["webhook-id"]] for r in got)
    p99 = lat[max(0, int(len(lat) * 0.99) - 1)]
    print(f"paced {args.rate}/s for {args.paced_seconds}s: latency p50 "
          f"{statistics.median(lat) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--paced-seconds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
