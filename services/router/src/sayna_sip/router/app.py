"""Composition root of the router: broker, subscriber, hook cache, room memory, HTTP.

`RouterService(config)` builds everything without I/O; `start()` connects, checks the
topology, loads the hooks and starts consuming; `stop()` undoes it. Tests run it
in-process with any ServerConfig; `main` runs it until a signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import nats.errors
from faststream import AckPolicy
from faststream.exceptions import IncorrectState
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsMessage
from faststream.nats.subscriber.usecases.basic import LogicSubscriber
from nats.js.errors import NotFoundError

from sayna_sip.common import contracts, natsconn, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.contracts import Header
from sayna_sip.common.health import HealthServer, NotReady, health_app
from sayna_sip.common.hook_directory import HookDirectory
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.metrics import new_registry
from sayna_sip.common.puback import AckedPublisher
from sayna_sip.common.recorder import Recorder, RecorderMetrics
from sayna_sip.router.copies import Oversized, Stored
from sayna_sip.router.metrics import RouterMetrics
from sayna_sip.router.ordered import Rooms
from sayna_sip.router.rooms import ROOMS_STREAM, RoomMemory, RoomRecord, RoomState
from sayna_sip.router.routing import NO_HOST_DELAY, RETRY_DELAY, Action, EventRouter

log = logging.getLogger("sayna_sip.router")

BATCH = 256  # previous-release messages fetched per pull, routed concurrently
# A partition durable gives out one message at a time: a larger fetch only waits out its
# timeout for messages that cannot come (nats-py returns a batch when full or expired).
PARTITION_BATCH = 1
PUBLISH_TIMEOUT = 5.0  # seconds to wait for SIP_DELIVERIES' PubAck before a retry


def _framework_logger() -> logging.Logger:
    """FastStream's lines through our handlers (its default logger prints colored text to
    stdout); below WARNING they are per-message and per-task chatter."""
    logger = logging.getLogger("sayna_sip.router.faststream")
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _IdleFetchTimeout) for f in logger.filters):
        logger.addFilter(_IdleFetchTimeout())
    return logger


class _IdleFetchTimeout(logging.Filter):
    """Drop FastStream's error for an idle pull that timed out. nats-py 2.16's fetch can
    raise the builtin TimeoutError (its deadline path) where FastStream 0.7 expects
    nats.errors.TimeoutError; FastStream's supervisor restarts the pull at once, so
    nothing is lost, but the traceback read as a failure on every quiet stream."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (type(exc) is TimeoutError and "retrying" in record.getMessage())


class _NoRooms:
    """SIP off: nothing is routed, so no room is remembered (and there is no sip_rooms)."""

    async def load(self, room: str, fresh: bool = False) -> RoomState:
        return RoomState(None, 0)

    async def save(self, room: str, base: RoomState, record: RoomRecord) -> RoomState | None:
        return None


_NO_ROOMS = _NoRooms()


async def _message_itself(msg: NatsMessage) -> NatsMessage:
    """Decoder handing the handler the message (raw body, headers, ack) undecoded."""
    return msg


class RouterService:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.registry = new_registry()
        self.metrics = RouterMetrics(self.registry)
        self.record_metrics = RecorderMetrics(self.registry)
        self.recorder: Recorder | None = None
        self._deliveries: AckedPublisher | None = None  # after start()
        self._start_watch = natsconn.StartWatch(config.nats)
        self.broker = NatsBroker(
            config.nats.servers,
            name="sayna-sip-router",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            error_cb=self._start_watch.on_error,
            closed_cb=self._on_closed,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            logger=_framework_logger(),
            log_level=logging.DEBUG,
            # No dependency injection: fast_depends resolves each `Context` parameter in a
            # worker thread, a thread hop per event that halved throughput. The handler
            # gets the message itself from `_message_itself` instead.
            apply_types=False,
            graceful_timeout=PUBLISH_TIMEOUT + 1,
        )
        self.subscribers = [self._subscribe(None)] + [
            self._subscribe(p) for p in range(contracts.LK_PARTITIONS)
        ]
        self.hooks: HookDirectory | None = None  # while running with SIP enabled
        self.port: int | None = None  # bound HTTP port, after start()
        self._router: EventRouter | None = None
        self._stopping = False  # our own stop(): its disconnect is not worth a warning
        self.failed = asyncio.Event()  # set when NATS closed the connection for good
        self._lost_task: asyncio.Task[None] | None = None
        self._http: HealthServer | None = None

    def _subscribe(self, partition: int | None) -> LogicSubscriber[Any]:
        """An LK_EVENTS handler bound to a provisioned durable (never declared here): one
        partition's (`partition`, in order), or the previous release's messages (None)."""
        if partition is None:
            subject, durable, batch = contracts.LK_EVENTS_LEGACY, topology.ROUTER_CONSUMER, BATCH
        else:
            subject = contracts.lk_partition_subjects(partition)
            durable, batch = topology.router_partition_consumer(partition), PARTITION_BATCH
        ordered = partition is not None
        subscriber = self.broker.subscriber(
            subject,
            stream=JStream(topology.LK_EVENTS, declare=False),
            durable=durable,
            pull_sub=PullSub(batch_size=batch, timeout=1.0),
            ack_policy=AckPolicy.MANUAL,
            decoder=_message_itself,
            include_in_schema=False,
        )

        @subscriber
        async def on_event(msg: NatsMessage) -> None:
            meta = msg.raw_message.metadata
            action = await self._require_router().handle(
                msg.body, msg.headers, meta.num_delivered, meta.sequence.stream, ordered
            )
            if action is Action.ACK:
                await msg.ack()
            elif action is Action.TERM:
                await msg.reject()
            elif action is Action.WAIT:
                await msg.nack(delay=NO_HOST_DELAY)
            else:
                await msg.nack(delay=RETRY_DELAY)

        return subscriber

    async def _on_disconnected(self) -> None:
        if self._router is not None and not self._stopping:
            log.warning("event=nats_disconnected")

    async def _on_closed(self) -> None:
        if self.lost():
            natsconn.log_lost(self.broker.config.connection_state.connection.last_error)
            # FastStream's pull loop would retry the dead connection in a hot loop.
            self._lost_task = asyncio.create_task(self._stop_consuming(), name="router-lost")
            self.failed.set()

    async def _stop_consuming(self) -> None:
        for subscriber in self.subscribers:
            with contextlib.suppress(nats.errors.Error):  # cancels the pull, cannot unsubscribe
                await subscriber.stop()

    def lost(self) -> bool:
        """Connected once, then closed by the server (nats-py does not reconnect then)."""
        if self._router is None or self._stopping:
            return False
        try:
            return bool(self.broker.config.connection_state.connection.is_closed)
        except IncorrectState:
            return False

    async def _on_reconnected(self) -> None:
        log.info("event=nats_reconnected")
        if self._router is not None and not self._stopping and self.hooks is not None:
            self.hooks.on_reconnected()

    def _require_router(self) -> EventRouter:
        if self._router is None:
            raise RuntimeError("router not started")
        return self._router

    async def start(self) -> None:
        await self._connect()
        js = self.broker.config.connection_state.stream
        await topology.check_topology(js, self.config)
        # bind to the provisioner's durables; never let a subscribe create another
        await topology.check_router_consumers(js)
        rooms: Rooms = _NO_ROOMS
        record = None
        if self.config.sip is not None:  # SIP off: none of this exists (topology.WITHOUT_SIP)
            rooms = await self._start_sip()
            record = self.recorder.record if self.recorder and self.config.records.enabled else None
        self._router = EventRouter(
            self.config.sip, self.hooks, rooms, self._publish, self.metrics, record,
            read_event=self._read_event, check_size=self._check_size,
        )  # fmt: skip
        await self.broker.start()
        await self._start_http()
        log.info("event=router_started port=%s", self.port)
        if self.config.sip is not None:
            log.info(
                "event=sip_routing_enabled room_prefix=%s hooks=%d",
                self.config.sip.room_prefix,
                len(self.hooks or ()),
            )

    async def _start_sip(self) -> RoomMemory:
        """The hook cache, the SIP_DELIVERIES publisher, room memory and the records."""
        kv = await self.broker.key_value(topology.HOOKS_BUCKET, declare=False)
        self.hooks = HookDirectory(kv)
        await self.hooks.start()
        nc = self.broker.config.connection_state.connection
        self._deliveries = AckedPublisher(nc, topology.SIP_DELIVERIES)
        await self._deliveries.start()
        room_puts = AckedPublisher(nc, ROOMS_STREAM)
        await room_puts.start()
        kv = await self.broker.key_value(topology.ROOMS_BUCKET, declare=False)
        self.recorder = Recorder(nc, self.record_metrics)
        await self.recorder.start()
        return RoomMemory(kv, room_puts)

    async def _connect(self) -> None:
        await self._start_watch.wait(self.broker.connect())

    def _check_size(self, body: bytes, headers: dict[str, str]) -> None:
        limit = self.broker.config.connection_state.connection.max_payload
        if contracts.message_size(body, headers) + 64 > limit:  # + Nats-Expected-Stream
            raise Oversized(f"delivery larger than NATS max_payload ({limit} bytes)")

    async def _read_event(self, seq: int) -> Stored | None:
        """An LK_EVENTS message by sequence (a held event); None when it is gone."""
        js = self.broker.config.connection_state.stream
        try:
            raw = await js.get_msg(topology.LK_EVENTS, seq=seq)
        except NotFoundError:
            return None
        headers = dict(raw.headers or {})
        return Stored(
            seq, headers.get(Header.EVENT_ID, ""), headers.get(Header.EVENT, ""),
            headers.get(Header.ROOM, ""), raw.data or b"", headers,
        )  # fmt: skip

    async def _publish(self, body: bytes, subject: str, headers: dict[str, str]) -> bool:
        """Store one delivery in SIP_DELIVERIES; True when it was there already."""
        if self._deliveries is None:
            raise RuntimeError("router not started")
        self._check_size(body, headers)
        # Our own PubAck wait (common.puback): FastStream's publish goes through
        # `js.publish`, ~15 µs of CPU more per event for the same semantics.
        return await self._deliveries.publish(subject, body, headers, PUBLISH_TIMEOUT)

    async def _start_http(self) -> None:
        app = health_app(self.registry, self.readiness, lambda: not self.lost())
        self._http = HealthServer(app, self.config.host, self.config.router_port, "router-http")
        await self._http.start()
        self.port = self._http.port

    async def readiness(self) -> NotReady | None:
        if self._router is None or self._stopping:
            return NotReady(ErrorCode.NOT_READY, "stopping" if self._stopping else "starting")
        try:
            nc = self.broker.config.connection_state.connection
        except IncorrectState:  # not connected yet, or stopped
            return NotReady(ErrorCode.NATS_UNAVAILABLE, "NATS is not connected")
        if not nc.is_connected:
            return NotReady(ErrorCode.NATS_UNAVAILABLE, "NATS is not connected")
        try:
            await asyncio.wait_for(
                topology.check_topology(self.broker.config.connection_state.stream, self.config),
                2.0,
            )
        except topology.TopologyError as exc:
            return NotReady(ErrorCode.TOPOLOGY_MISSING, str(exc))
        except (nats.errors.Error, TimeoutError) as exc:
            return NotReady(ErrorCode.NATS_UNAVAILABLE, f"NATS check failed: {exc!r}")
        return None

    async def stop(self) -> None:
        """Broker first: it stops fetching and lets the handlers in flight finish (up to
        graceful_timeout) with the hook cache and room memory still in place; stopping
        those first made a handler in flight miss its hook and ack the event unrouted."""
        self._stopping = True
        try:
            if self.failed.is_set():  # nothing to drain on a closed connection
                with contextlib.suppress(Exception):
                    await self.broker.stop()
            else:
                await self.broker.stop()
        finally:
            if self.hooks is not None:
                await self.hooks.stop()
                self.hooks = None
            if self.recorder is not None:
                await self.recorder.stop()
            self._router = None
            if self._http is not None:
                await self._http.stop()
        log.info("event=router_stopped")
