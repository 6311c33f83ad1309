"""Composition root: build a running forwarder from a ServerConfig, and take it down.

`Forwarder.start(config)` connects to NATS, checks the topology, loads the hook cache,
binds to the shared durable consumer, builds the one HTTP client and serves health and
metrics; `stop()` undoes it in reverse. Tests start several in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry

from sayna_sip.common import natsconn, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.health import HealthServer, NotReady, Readiness, health_app
from sayna_sip.common.hook_directory import HookDirectory
from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.logs import quote
from sayna_sip.common.metrics import new_registry
from sayna_sip.common.recorder import Recorder, RecorderMetrics
from sayna_sip.forwarder.client import HookClient, build_client
from sayna_sip.forwarder.delivery import Deliverer, warn_if_unsigned
from sayna_sip.forwarder.egress import ProxyHealth
from sayna_sip.forwarder.endpoint_health import FailureWatch
from sayna_sip.forwarder.gate import HostGate
from sayna_sip.forwarder.metrics import ForwarderMetrics
from sayna_sip.forwarder.order_lanes import CallLanes
from sayna_sip.forwarder.peers import PeerCount
from sayna_sip.forwarder.pull import OnMessage, Puller
from sayna_sip.forwarder.sealed import SealedSecrets
from sayna_sip.forwarder.settle import Settlement, retry_schedule
from sayna_sip.forwarder.testsend import TestResponder
from sayna_sip.forwarder.tuning import Tuning
from sayna_sip.forwarder.worker import Worker

log = logging.getLogger("sayna_sip.forwarder")


@dataclass(eq=False)
class Forwarder:
    """A running forwarder: its parts, and the fetch loop started with it."""

    nc: Client
    hooks: HookDirectory
    http: HookClient
    worker: Worker
    health: HealthServer
    responder: TestResponder
    watch: FailureWatch | None
    sealed: SealedSecrets
    recorder: Recorder | None = None
    peers: PeerCount | None = None
    lanes: CallLanes | None = None
    _loop: asyncio.Task[None] = field(init=False)

    def __post_init__(self) -> None:
        self._loop = asyncio.create_task(self.worker.run(), name="forwarder-fetch")

    @property
    def port(self) -> int:
        """The bound health/metrics port."""
        return self.health.port

    @property
    def running(self) -> asyncio.Task[None]:
        """The fetch loop; it ends only on stop() or a bug."""
        return self._loop

    @classmethod
    async def start(cls, config: ServerConfig, tuning: Tuning | None = None) -> Forwarder:
        tuning = tuning or Tuning()
        hooks: HookDirectory | None = None
        worker: Worker | None = None

        def reconnected() -> None:  # the server forgot our pull requests; KV may have moved
            if hooks is not None:
                hooks.on_reconnected()
            if worker is not None:
                worker.puller.forget()

        nc = await natsconn.connect(
            config.nats, name="sayna-sip-forwarder", on_reconnected=reconnected
        )
        async with contextlib.AsyncExitStack() as undo:
            undo.push_async_callback(natsconn.close, nc)
            js = nc.jetstream()
            await topology.check_topology(js, config)
            kv = await js.key_value(topology.HOOKS_BUCKET)
            sealed = SealedSecrets(config.sip.secret_box if config.sip else None)
            hooks = HookDirectory(kv, on_change=sealed.changed)
            sealed.watch(hooks)
            await hooks.start()
            undo.push_async_callback(hooks.stop)
            await _check_consumer(js)
            registry = new_registry()
            metrics = ForwarderMetrics(registry)
            proxy_health = ProxyHealth(
                first=tuning.proxy_backoff, unreachable_after=tuning.proxy_unreachable_after
            )
            http = build_client(
                config, on_proxy_error=metrics.proxy_errors.inc, proxy_health=proxy_health
            )
            undo.push_async_callback(http.close)
            recorder = await _start_recorder(config, nc, registry, undo)
            deliverer = Deliverer(config, http, hooks)
            watch = _failure_watch(config, kv, nc, deliverer, metrics)
            deliverer.watch = watch
            peers = PeerCount(nc) if config.sip is not None else None
            if peers is not None:
                await peers.start()
                undo.push_async_callback(peers.stop)
            lanes = CallLanes(
                nc, await js.key_value(topology.LANES_BUCKET),
                config.sip.order_hold_max if config.sip else 300.0,
                config.forwarder.concurrency // 2, metrics,
            )  # fmt: skip
            await lanes.start()
            undo.push_async_callback(lanes.stop)
            worker = _worker(config, tuning, nc, js, deliverer, metrics, recorder, peers, lanes)
            await worker.puller.start()
            responder = TestResponder(nc, deliverer, worker.grace)
            await responder.start()
            forwarder: Forwarder | None = None
            health = await _start_health(config, nc, registry, lambda: _readiness(forwarder))
            forwarder = cls(
                nc, hooks, http, worker, health, responder, watch, sealed, recorder, peers, lanes
            )
            undo.pop_all()
        warn_if_unsigned(config)
        if sealed.unreadable():
            log.error(
                "event=hook_secrets_unreadable hooks=%d first=%s detail=%s",
                len(sealed.unreadable()), sealed.unreadable()[0],
                quote("no SIP_SECRETS_KEY entry opens their secrets: /readyz is 503 and "
                      "their deliveries wait until the key that sealed them is set"),
            )  # fmt: skip
        log.info(
            "event=forwarder_started port=%d hooks=%d concurrency=%d host_concurrency=%d",
            forwarder.port, len(hooks), config.forwarder.concurrency,
            config.forwarder.host_concurrency,
        )  # fmt: skip
        return forwarder

    async def stop(self) -> None:
        """Graceful: stop pulling, finish or nak in-flight work, close everything.
        A second call does nothing."""
        if self.nc.is_closed:
            return
        # Side by side: a test send and a delivery in flight each get the grace period.
        await asyncio.gather(self.responder.stop(), self.worker.stop(self._loop))
        if self.lanes is not None:
            await self.lanes.stop()
        if self.peers is not None:
            await self.peers.stop()
        if self.watch is not None:
            await self.watch.stop()
        if self.recorder is not None:
            await self.recorder.stop()
        await self.health.stop()
        await self.hooks.stop()
        await self.http.close()
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=2)  # push the last acks/naks out
        await natsconn.close(self.nc)
        log.info("event=forwarder_stopped")


async def _start_recorder(
    config: ServerConfig, nc: Client, registry: CollectorRegistry, undo: contextlib.AsyncExitStack
) -> Recorder | None:
    if not config.records.enabled:
        return None
    recorder = Recorder(nc, RecorderMetrics(registry))
    await recorder.start()
    undo.push_async_callback(recorder.stop)
    return recorder


async def _start_health(
    config: ServerConfig, nc: Client, registry: CollectorRegistry, readiness: Readiness
) -> HealthServer:
    app = health_app(registry, readiness, lambda: not natsconn.lost(nc))
    health = HealthServer(app, config.host, config.forwarder.port, "forwarder-health")
    await health.start()
    return health


async def _readiness(forwarder: Forwarder | None) -> NotReady | None:
    if forwarder is None:
        return NotReady(ErrorCode.NOT_READY, "starting")
    if not forwarder.nc.is_connected:
        return NotReady(ErrorCode.NATS_UNAVAILABLE, "NATS is not connected")
    if forwarder.running.done():
        return NotReady(ErrorCode.NOT_READY, "the fetch loop stopped")
    proxy_problem = forwarder.http.proxy_health.problem(time.monotonic())
    if proxy_problem is not None:  # nothing can be delivered from here until it is back
        return NotReady(ErrorCode.EGRESS_PROXY_UNREACHABLE, proxy_problem)
    unreadable = forwarder.sealed.unreadable()
    if unreadable:
        return NotReady(
            ErrorCode.SECRETS_UNREADABLE,
            f"{len(unreadable)} hook(s) have secrets no SIP_SECRETS_KEY entry opens "
            f"(first: {unreadable[0]}); set the key that sealed them",
        )
    return None


def _worker(
    config: ServerConfig,
    tuning: Tuning,
    nc: Client,
    js: JetStreamContext,
    deliverer: Deliverer,
    metrics: ForwarderMetrics,
    recorder: Recorder | None,
    peers: PeerCount | None = None,
    lanes: CallLanes | None = None,
) -> Worker:
    """The fetch loop with its host gate and settlement; one jitter RNG for all three
    (seeded by `Tuning.seed` in tests)."""
    rng = random.Random(tuning.seed)
    gate = HostGate(config.forwarder.host_concurrency, tuning.breaker, rng)
    record = recorder.record if recorder is not None else None
    settlement = Settlement(
        js, metrics, retry_schedule(config), rng, record, config.records.body_bytes, lanes,
        tuning.unsealed_wait,
    )  # fmt: skip

    def puller(on_message: OnMessage, on_change: Callable[[], None]) -> Puller:
        return Puller(
            nc, topology.SIP_DELIVERIES, topology.FORWARDER_CONSUMER, on_message, on_change,
            tuning.pull_expires, tuning.pull_heartbeat,
        )  # fmt: skip

    count = (lambda: peers.count) if peers is not None else (lambda: 1)
    return Worker(config, tuning, puller, deliverer, gate, settlement, metrics, rng, count, lanes)


def _failure_watch(
    config: ServerConfig, kv: KeyValue, nc: Client, d: Deliverer, metrics: ForwarderMetrics
) -> FailureWatch | None:
    if config.sip is None:
        return None
    return FailureWatch(
        config.sip, kv, nc, d.post_ops, lambda host: metrics.hooks_disabled.labels(host).inc()
    )


async def _check_consumer(js: JetStreamContext) -> None:
    """Pull requests to a missing durable are only refused one by one: without this
    check the fetch loop would only warn while /readyz says ready."""
    try:
        await js.consumer_info(topology.SIP_DELIVERIES, topology.FORWARDER_CONSUMER)
    except NotFoundError:
        raise topology.TopologyError(
            f"NATS topology incomplete (missing consumer {topology.FORWARDER_CONSUMER} on "
            f"stream {topology.SIP_DELIVERIES}): run `sayna-sip provision`"
        ) from None
