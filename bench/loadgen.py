"""Load generator (its own process): signed LiveKit webhooks over raw HTTP/1.1 keep-alive.

`python -m bench.loadgen --port P --mode closed|open ...` writes a JSON result to --out.
closed: N connections each send the next request as soon as the last is answered (max
rate); latency is request -> response. open: a fixed offered rate whatever the server
does; latency counts from the *scheduled* send time, so a stalled server cannot hide
its queueing (no coordinated omission). Requests are pre-signed before the clock starts
and written by a minimal asyncio protocol, so the generator uses little CPU per request;
its own CPU use is reported so a run can show it was not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import uvloop

from bench import calls, events
from bench.stats import summary_ms

clock = time.perf_counter  # uvloop's loop.time() has only millisecond resolution


class _Conn(asyncio.Protocol):
    """One keep-alive connection; `request()` writes bytes and returns the status code."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buf[:end]).lower()
        length = 0
        at = head.find(b"content-length:")
        if at >= 0:
            eol = head.find(b"\r\n", at)
            length = int(head[at + 15 : eol if eol >= 0 else len(head)])
        total = end + 4 + length
        if len(self._buf) < total:
            return
        del self._buf[:total]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def request(self, data: bytes) -> int:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return await self._waiter


async def _connect(port: int) -> _Conn:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(_Conn, "127.0.0.1", port)
    return proto


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # request indices without a 200

    def add(self, index: int, status: int | str, latency: float) -> None:
        self.statuses[str(status)] += 1
        if status == 200:
            self.latencies.append(latency)
        else:
            self.failed.append(index)


async def closed_loop(
    port: int, requests: list[bytes], conns: int, duration: float, warmup: float
) -> tuple[Tally, float, int]:
    """Max-rate run; returns the tally, the measured seconds and all requests issued
    (warm-up included; more than len(requests) means event ids were reused)."""
    tally = Tally()
    counter = iter(range(10**12))
    measure_from = clock() + warmup
    stop_at = measure_from + duration

    async def worker() -> None:
        conn = await _connect(port)
        while (now := clock()) < stop_at:
            i = next(counter)
            try:
                status: int | str = await conn.request(requests[i % len(requests)])
            except ConnectionError:
                status, conn = "conn_error", await _connect(port)
            if now >= measure_from:
                tally.add(i, status, clock() - now)

    await asyncio.gather(*(worker() for _ in range(conns)))
    return tally, duration, next(counter)


async def open_loop(
    port: int, requests: list[bytes], conns: int, rate: float
) -> tuple[Tally, float, float, float]:
    """Fixed offered rate; returns tally, wall clock of request 0, seconds, max send lag."""
    tally = Tally()
    idle: asyncio.Queue[_Conn] = asyncio.Queue()
    for conn in await asyncio.gather(*(_connect(port) for _ in range(conns))):
        idle.put_nowait(conn)
    lag = 0.0

    async def send(i: int, due: float) -> None:
        nonlocal lag
        conn = await idle.get()
        lag = max(lag, clock() - due)
        try:
            status: int | str = await conn.request(requests[i])
        except ConnectionError:
            status, conn = "conn_error", await _connect(port)
        tally.add(i, status, clock() - due)
        idle.put_nowait(conn)

    start, wall0 = clock(), time.time()
    tasks: list[asyncio.Task[None]] = []
    for i in range(len(requests)):
        due = start + i / rate
        if due > clock():
            await asyncio.sleep(due - clock())
        tasks.append(asyncio.create_task(send(i, due)))
    await asyncio.gather(*tasks)
    return tally, wall0, clock() - start, lag


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(args: argparse.Namespace) -> dict[str, Any]:
    host = f"127.0.0.1:{args.port}"
    count = args.count if args.mode == "closed" else int(args.rate * args.duration)
    if args.calls:
        requests = calls.signed_requests(args.run, count, args.calls, host, args.path)
    else:
        requests = events.signed_requests(args.run, count, host, args.path)
    cpu0, wall_start = _cpu_seconds(), time.perf_counter()
    result: dict[str, Any] = {"mode": args.mode, "conns": args.conns}
    if args.mode == "closed":
        tally, seconds, issued = await closed_loop(
            args.port, requests, args.conns, args.duration, args.warmup
        )
        result |= {"issued": issued, "wrapped": issued // len(requests)}
    else:
        tally, wall0, seconds, lag = await open_loop(args.port, requests, args.conns, args.rate)
        result |= {"wall0": wall0, "offered_rate": args.rate, "max_send_lag_ms": lag * 1000}
        result["failed_indices"] = tally.failed
    cpu = _cpu_seconds() - cpu0
    ok = len(tally.latencies)
    result |= {
        "sent": sum(tally.statuses.values()),
        "ok": ok,
        "statuses": dict(tally.statuses),
        "seconds": round(seconds, 3),
        "rate": round(ok / seconds, 1) if seconds else 0.0,
        "latency": summary_ms(tally.latencies),
        "cpu_seconds": round(cpu, 3),
        "cpu_util": round(cpu / (time.perf_counter() - wall_start), 3),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/livekit/webhook")
    parser.add_argument("--run", required=True, help="run id: makes event ids unique")
    parser.add_argument("--mode", choices=["closed", "open"], required=True)
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--count", type=int, default=60_000, help="closed: pre-signed events")
    parser.add_argument(
        "--calls", type=int, default=0, help="events of N interleaved calls (bench/calls.py)"
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = uvloop.run(run(args))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
