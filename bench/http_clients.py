"""Micro-benchmark behind docs/performance.md finding 1: `python -m bench.http_clients`.

CPU per HTTPS POST from one process to the bench sink, at several numbers of requests in
flight: httpx on its own httpcore transport, httpx on the `httpx-aiohttp` transport
(httpx's API, aiohttp's connection handling), and aiohttp directly. Chose the
forwarder's transport (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop
from httpx_aiohttp import AiohttpTransport

from bench import events
from bench.harness import Bench

Post = Callable[[int], Awaitable[None]]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(post: Post, count: int, in_flight: int) -> tuple[float, float]:
    """(CPU µs per POST, POSTs per second) for `count` POSTs, `in_flight` at a time."""
    todo = iter(range(count))

    async def worker() -> None:
        for i in todo:
            await post(i)

    await post(-1)  # TLS handshake outside the measurement
    cpu0, start = _cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    seconds = time.perf_counter() - start
    return (_cpu() - cpu0) / count * 1e6, count / seconds


async def with_httpx(
    url: str, ctx: ssl.SSLContext, count: int, in_flight: int
) -> tuple[float, float]:
    body = events.event_body("httpx", 0)
    limits = httpx.Limits(max_connections=in_flight)
    async with httpx.AsyncClient(verify=ctx, limits=limits) as client:

        async def post(i: int) -> None:
            headers = {"content-type": "application/json", "webhook-id": f"hx{i}"}
            await client.post(url, content=body, headers=headers)

        return await _measure(post, count, in_flight)


async def with_httpx_aiohttp(
    url: str, ctx: ssl.SSLContext, count: int, in_flight: int
) -> tuple[float, float]:
    body = events.event_body("httpx-aiohttp", 0)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=in_flight))
    transport = AiohttpTransport(client=session)
    async with httpx.AsyncClient(transport=transport) as client:

        async def post(i: int) -> None:
            headers = {"content-type": "application/json", "webhook-id": f"hxa{i}"}
            await client.post(url, content=body, headers=headers)

        return await _measure(post, count, in_flight)


async def with_aiohttp(
    url: str, ctx: ssl.SSLContext, count: int, in_flight: int
) -> tuple[float, float]:
    body = events.event_body("aiohttp", 0)
    connector = aiohttp.TCPConnector(ssl=ctx, limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(i: int) -> None:
            headers = {"content-type": "application/json", "webhook-id": f"ah{i}"}
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

        return await _measure(post, count, in_flight)


CLIENTS = (
    ("httpx", with_httpx),
    ("httpx-aiohttp", with_httpx_aiohttp),
    ("aiohttp", with_aiohttp),
)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="sayna-bench-clients-"))
    bench = Bench(work, "clients")
    try:
        sink = bench.start_sink()
        ctx = ssl.create_default_context(cafile=str(bench.ca_path))
        print(f"{'in flight':>9}  {'client':13} {'CPU us/POST':>11} {'POST/s':>7}")
        for in_flight in (1, 4, 10, 32):
            for name, run in CLIENTS:
                cpu, rate = uvloop.run(run(sink.url(), ctx, 2_000, in_flight))
                print(f"{in_flight:>9}  {name:13} {cpu:>11.0f} {rate:>7.0f}")
        sink.close()
    finally:
        bench.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
