"""Write delivery records to SIP_ATTEMPTS without ever holding up a delivery.

`record()` is synchronous and never raises: it queues the record (bounded) and
returns. One background task publishes queued records pipelined, up to `window`
awaiting their PubAck at once, through one reply subscription. A record that cannot
be written (queue full, NATS down, no ack within `timeout`, a JetStream error) is
counted in `sayna_sip_records_failed_total{reason}` and logged at most every
LOG_EVERY seconds; the delivery it describes is not affected.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import Header as JsHeader
from prometheus_client import CollectorRegistry, Counter

from sayna_sip.common import contracts, records
from sayna_sip.common.labels import RECORD_FAIL_REASONS
from sayna_sip.common.logs import quote
from sayna_sip.common.metrics import NAMESPACE
from sayna_sip.common.topology import SIP_ATTEMPTS

log = logging.getLogger("sayna_sip.records")

LOG_EVERY = 10.0
FAIL_REASONS = RECORD_FAIL_REASONS


class RecorderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.written = Counter(
            "records_written",
            "Delivery records stored in SIP_ATTEMPTS",
            ["kind"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.failed = Counter(
            "records_failed",
            "Delivery records that could not be stored (the delivery went on regardless)",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        for reason in FAIL_REASONS:
            self.failed.labels(reason)


class Recorder:
    def __init__(
        self,
        nc: Client,
        metrics: RecorderMetrics,
        *,
        queue_size: int = 20_000,
        window: int = 1024,
        timeout: float = 5.0,
    ) -> None:
        self._nc = nc
        self._metrics = metrics
        self._queue: collections.deque[records.Record] = collections.deque()
        self._queue_size = queue_size
        self._window = window
        self._timeout = timeout
        self._wake = asyncio.Event()
        self._slot = asyncio.Event()
        self._drained = asyncio.Event()  # nothing queued, nothing awaiting an ack
        self._drained.set()
        self._pending: dict[str, tuple[float, str]] = {}  # reply -> (sent at, kind)
        self._prefix = ""
        self._counter = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._sub: object = None
        self._last_log = 0.0
        self._unlogged = 0

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_ack)
        self._task = asyncio.create_task(self._run(), name="records")

    def record(self, record: records.Record) -> None:
        if len(self._queue) >= self._queue_size:
            self._failed("queue_full", "record queue full")
            return
        self._queue.append(record)
        self._drained.clear()
        self._wake.set()

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until every queued record is written or failed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._drained.wait()

    async def stop(self, timeout: float = 2.0) -> None:
        await self.flush(timeout)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._pending or self._queue:
            self._failed("timeout", "records unwritten at stop", len(self._pending))
        self._pending.clear()
        self._queue.clear()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if not self._pending:
                    self._drained.set()
                self._wake.clear()
                await self._wait(self._wake)
                continue
            if len(self._pending) >= self._window:
                self._slot.clear()
                await self._wait(self._slot)
                continue
            await self._send(self._queue.popleft())

    async def _wait(self, event: asyncio.Event) -> None:
        """Wait for `event`, expiring overdue acks once a second meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await event.wait()
        self._expire(time.monotonic())

    async def _send(self, record: records.Record) -> None:
        reply = f"{self._prefix}{next(self._counter)}"
        headers: dict[str, str] = {JsHeader.EXPECTED_STREAM.value: SIP_ATTEMPTS}
        try:
            data = records.encode(record)
            if contracts.message_size(data, headers) > self._nc.max_payload:
                raise nats.errors.MaxPayloadError  # the server would close the connection
            self._pending[reply] = (time.monotonic(), record.kind)
            await self._nc.publish(records.subject(record), data, reply=reply, headers=headers)
        except (nats.errors.Error, OSError) as exc:
            self._pending.pop(reply, None)
            self._failed("nats", repr(exc))
            self._wake.set()

    async def _on_ack(self, msg: Msg) -> None:
        entry = self._pending.pop(msg.subject, None)
        self._slot.set()
        if not self._pending:
            self._wake.set()  # the loop notices the last ack (drained); not woken per ack
        if entry is None:
            return  # expired already, and counted then
        if (msg.headers and msg.headers.get(JsHeader.STATUS) == "503") or b'"error"' in msg.data:
            self._failed("rejected", msg.data.decode(errors="replace")[:200])
            return
        self._metrics.written.labels(entry[1]).inc()

    def _expire(self, now: float) -> None:
        late = [r for r, (sent, _) in self._pending.items() if now - sent > self._timeout]
        for reply in late:
            del self._pending[reply]
        if late:
            self._slot.set()
            self._wake.set()
            self._failed("timeout", "no PubAck", len(late))

    def _failed(self, reason: str, detail: str, count: int = 1) -> None:
        self._metrics.failed.labels(reason).inc(count)
        self._unlogged += count
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY:
            log.warning(
                "event=records_failed reason=%s count=%d detail=%s",
                reason,
                self._unlogged,
                quote(detail),
            )
            self._last_log, self._unlogged = now, 0
