"""Micro-benchmark behind docs/performance.md finding 5: `python -m bench.nats_floor`.

The client CPU of draining a JetStream consumer with nats-py and acking every message,
no HTTP: nats-py's `fetch(10)` (what the forwarder did) against pull requests kept open
on one inbox (`forwarder/pull.py`'s way). Messages like the forwarder's: ~700 bytes with
seven headers. One process on the bundled nats-server; best of 3 drains each.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import nats
import uvloop
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from bench import procs

COUNT = 10_000
BATCH = 10  # the forwarder's typical pull while holding (a tenth of its 100 slots)
HEADERS = {f"Sayna-H{i}": "x" * 12 for i in range(7)}


async def _fill(js: JetStreamContext) -> None:
    for _ in range(0, COUNT, 500):
        await asyncio.gather(
            *(js.publish("floor.x", b"x" * 700, headers=HEADERS) for _ in range(500))
        )


async def _consumer(js: JetStreamContext, name: str) -> None:
    config = ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT)
    await js.add_consumer("FLOOR", config)


async def with_fetch(js: JetStreamContext, name: str) -> float:
    sub = await js.pull_subscribe_bind(durable=name, stream="FLOOR")
    got, started = 0, time.process_time()
    while got < COUNT:
        for msg in await sub.fetch(BATCH, timeout=1.0):
            await msg.ack()
            got += 1
    return (time.process_time() - started) / COUNT * 1e6


async def with_open_requests(nc: Client, name: str) -> float:
    inbox, done, got = nc.new_inbox(), asyncio.Event(), [0, 0]  # received, credits
    subject = f"$JS.API.CONSUMER.MSG.NEXT.FLOOR.{name}"
    ask = json.dumps({"batch": 2 * BATCH, "expires": 5_000_000_000}).encode()

    async def receive(msg: Msg) -> None:
        if msg.headers and msg.headers.get("Status"):
            return
        await msg.ack()
        got[0] += 1
        got[1] -= 1
        if got[1] < BATCH:
            await nc.publish(subject, ask, reply=inbox)
            got[1] += 2 * BATCH
        if got[0] >= COUNT:
            done.set()

    await nc.subscribe(inbox, cb=receive)
    started = time.process_time()
    await nc.publish(subject, ask, reply=inbox)
    got[1] = 2 * BATCH
    await done.wait()
    return (time.process_time() - started) / COUNT * 1e6


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="sayna-nats-floor-") as work:
        server, url = procs.start_nats(Path(work), Path(work) / "store")
        try:
            nc = await nats.connect(url)
            js = nc.jetstream()
            await js.add_stream(StreamConfig(name="FLOOR", subjects=["floor.>"]))
            results: dict[str, list[float]] = {"fetch": [], "open": []}
            for round_ in range(3):
                for kind in results:
                    name = f"{kind}{round_}"
                    await _fill(js)
                    await _consumer(js, name)
                    if kind == "fetch":
                        results[kind].append(await with_fetch(js, name))
                    else:
                        results[kind].append(await with_open_requests(nc, name))
                    await js.purge_stream("FLOOR")
            await nc.close()
        finally:
            server.stop()
    print(f"nats-py fetch({BATCH}) + ack: {min(results['fetch']):.1f} us CPU per message")
    print(f"open pull requests + ack: {min(results['open']):.1f} us CPU per message")


if __name__ == "__main__":
    uvloop.run(main())
