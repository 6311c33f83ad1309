"""Baseline for forwarder scaling: raw aiohttp POST rate to the sink from one process.

`python -m bench.raw_rate --url U --ca F --count N --concurrency C --out FILE`. The same
client library, TLS and body size as a forwarder, with none of its work (no NATS, no
signing, no retry bookkeeping): the ceiling for one Python delivery process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import ssl
import time
from pathlib import Path

import aiohttp
import uvloop

from bench import events


async def post_all(url: str, ca: str, count: int, concurrency: int, run: str) -> dict[str, float]:
    bodies = [events.event_body(run, i) for i in range(count)]
    ctx = ssl.create_default_context(cafile=ca)
    connector = aiohttp.TCPConnector(ssl=ctx, limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=10.0)
    ok = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        queue = iter(range(count))

        async def worker() -> None:
            nonlocal ok
            for i in queue:
                headers = {
                    "content-type": "application/json",
                    "webhook-id": events.event_id(run, i),
                }
                async with client.post(url, data=bodies[i], headers=headers) as response:
                    await response.read()
                    ok += response.status == 200

        async with client.post(url, data=b"{}") as warm:  # TLS handshake outside the timing
            await warm.read()
        cpu0 = _cpu()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {
        "ok": ok,
        "seconds": round(seconds, 3),
        "rate": round(ok / seconds, 1),
        "cpu_util": round((_cpu() - cpu0) / seconds, 3),
        "cpu_us_per_delivery": round((_cpu() - cpu0) / max(ok, 1) * 1e6),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_rate")
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--run", default="raw")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = uvloop.run(post_all(args.url, args.ca, args.count, args.concurrency, args.run))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
