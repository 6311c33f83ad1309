"""Webhooks at a fixed rate, retried the way LiveKit retries them, with every answer kept.

Each event is sent at its scheduled time (open loop); a non-200 answer or a broken
connection is retried after a short pause until `retry_budget` seconds have passed
since the first try (LiveKit gives up after about 15 s). `Traffic` records, per
event, when it was first sent and whether it was acked (200), and every failed try as
an interval, so a scenario can tell the longest stretch of non-200 answers.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench import events, loadgen

if TYPE_CHECKING:
    from bench.harness import Sink

RETRY_PAUSE = 0.2
ANSWER_TIMEOUT = 10.0  # one try: a stalled ingress counts as a failed try after this


class _Conn(loadgen._Conn):
    """A keep-alive connection that knows when the server closed it while idle (uvicorn
    does after 5 s): writing a request on it would wait for an answer that never comes."""

    closed = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        super().connection_lost(exc)


async def _connect(port: int) -> _Conn:
    _, conn = await asyncio.get_running_loop().create_connection(_Conn, "127.0.0.1", port)
    return conn


@dataclass
class Traffic:
    run: str
    hosts: tuple[str, ...]  # event i goes to hosts[i % len(hosts)]
    rate: float
    count: int
    retry_budget: float = 15.0
    sent_at: list[float] = field(default_factory=list)  # wall clock of each first try
    acked: set[int] = field(default_factory=set)
    failures: list[tuple[float, float]] = field(default_factory=list)  # (start, end) wall
    oks: list[float] = field(default_factory=list)  # wall clock of each 200
    non_200: int = 0
    slowest: float = 0.0  # the longest wait for one answer (seconds)
    statuses: Counter[int] = field(default_factory=Counter)  # of failed tries; 0 = no answer

    def event_id(self, i: int) -> str:
        return events.event_id(self.run, i)

    def host(self, i: int) -> str:
        return self.hosts[i % len(self.hosts)]

    def ready(self, i: int) -> float:
        """When event `i` could first be delivered (its latency counts from then)."""
        return self.sent_at[i]

    def order(self, sink: Sink) -> dict[str, Any]:
        """What the sink says of the events' order (calls: bench/order_faults.py)."""
        return {}

    def longest_outage(self) -> float:
        """The longest stretch of failed tries with no 200 answered in between: from the
        first failed try's start to the last one's end (seconds)."""
        longest, start, end = 0.0, None, 0.0
        ends = sorted([(b, a, True) for a, b in self.failures] + [(t, t, False) for t in self.oks])
        for at, began, failed in ends:
            if failed:
                start = began if start is None else min(start, began)
                end = at
            elif start is not None:
                longest, start = max(longest, end - start), None
        return max(longest, end - start) if start is not None else longest

    async def send(self, port: int) -> None:
        """Send every event; returns when each one was acked or ran out of budget."""
        requests = [self._request(i, port) for i in range(self.count)]
        pool: list[_Conn] = []
        t0, wall0 = time.perf_counter(), time.time()
        self.sent_at = [wall0 + i / self.rate for i in range(self.count)]
        tasks = []
        for i, request in enumerate(requests):
            delay = t0 + i / self.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._deliver(i, request, port, pool)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for conn in pool:
                conn.close()

    def _request(self, i: int, port: int) -> bytes:
        body = events.event_body(self.run, i, self.host(i))
        return events.http_request(f"127.0.0.1:{port}", "/livekit/webhook", body, events.sign(body))

    async def _deliver(self, i: int, request: bytes, port: int, pool: list[_Conn]) -> None:
        give_up = time.time() + self.retry_budget
        while True:
            started = time.time()
            status = await _try(request, port, pool)
            self.slowest = max(self.slowest, time.time() - started)
            if status == 200:
                self.acked.add(i)
                self.oks.append(time.time())
                return
            self.non_200 += 1
            self.statuses[status] += 1
            self.failures.append((started, time.time()))
            if time.time() > give_up:
                return
            await asyncio.sleep(RETRY_PAUSE)


async def _try(request: bytes, port: int, pool: list[_Conn]) -> int:
    """One POST on an idle keep-alive connection (a new one if none); 0 = no answer."""
    while pool and pool[-1].closed:
        pool.pop()
    try:
        conn = pool.pop() if pool else await _connect(port)
    except OSError:
        return 0
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            status = await conn.request(request)
    except (ConnectionError, OSError, TimeoutError):
        return 0  # the connection is dropped with the failed try
    pool.append(conn)
    return status
