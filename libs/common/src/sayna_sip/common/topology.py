"""The NATS topology: streams, consumers and KV buckets, defined once.

The provisioner creates and updates these; every service checks them at start
(`check_topology`) and fails with a clear error when something is missing.

`streams()`, `buckets()` and `consumers()` are the table of every resource. With SIP
off (no `sip:` section, no SIP_* variable) only the rows named in WITHOUT_SIP apply:
nothing is routed, so the provisioner creates no SIP_* stream and no sip_* bucket and
no service checks for them. A new row is SIP's unless added to WITHOUT_SIP (a consumer
as `STREAM/durable`).
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from sayna_sip.common import contracts, records
from sayna_sip.common.config import RecordsConfig, ServerConfig

LK_EVENTS = "LK_EVENTS"
SIP_DELIVERIES = "SIP_DELIVERIES"
SIP_DEAD = "SIP_DEAD"
SIP_ATTEMPTS = "SIP_ATTEMPTS"
SIP_AUDIT = "SIP_AUDIT"
HOOKS_BUCKET = "sip_hooks"
ROOMS_BUCKET = "sip_rooms"
ACCESS_BUCKET = "sip_access"
LANES_BUCKET = "sip_lanes"
ROUTER_CONSUMER = "router"  # previous-release messages (`lk.events.<event>`), unordered
FORWARDER_CONSUMER = "forwarders"

DUPLICATE_WINDOW = 10 * 60.0  # LiveKit retries for well under this; design asks >= 5 min
ATTEMPTS_DUPLICATE_WINDOW = 60.0  # records carry no Nats-Msg-Id; keep the dedupe table small
DEAD_MAX_AGE = 14 * 86400.0
AUDIT_MAX_AGE = 90 * 86400.0
ROOMS_TTL = 24 * 3600.0  # a SIP call's room outlives no call by this much
LANES_TTL = ROOMS_TTL  # a call's ordering lane is forgotten as its room is
# A partition's head waits this long after a router dies holding it (it is redelivered
# then, still the head); routing one event takes at most a few PubAck timeouts.
PARTITION_ACK_WAIT = 10.0
ACK_MARGIN = 20.0  # ack wait = request timeout + margin, so no delivery runs twice at once


# What applies with SIP off: the router still drains LK_EVENTS (events stored while SIP
# was on are acknowledged, counted `disabled`), so its stream and durables stay.
WITHOUT_SIP = frozenset(
    {
        LK_EVENTS,
        f"{LK_EVENTS}/{ROUTER_CONSUMER}",
        *(f"{LK_EVENTS}/{ROUTER_CONSUMER}-p{p:02d}" for p in range(contracts.LK_PARTITIONS)),
    }
)


def applies(name: str, config: ServerConfig | None) -> bool:
    """Whether the resource `name` (a stream, a bucket, or `STREAM/durable`) is part of
    `config`'s topology; None: the whole table."""
    return config is None or config.sip is not None or name in WITHOUT_SIP


class TopologyError(RuntimeError):
    """The NATS topology is missing or incompatible."""


def streams(replicas: int = 1, retention: RecordsConfig | None = None) -> list[StreamConfig]:
    retention = retention or RecordsConfig()
    return [
        StreamConfig(
            name=LK_EVENTS,
            description="Verified LiveKit webhook bodies, as received",
            subjects=[contracts.LK_EVENTS_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=retention.events_max_age,
            duplicate_window=DUPLICATE_WINDOW,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=SIP_DELIVERIES,
            description="One message per (event, hook) awaiting delivery",
            subjects=[contracts.DELIVERY_SUBJECTS],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=SIP_DEAD,
            description="Deliveries that failed for good, with reason; see `sayna-sip dlq`",
            subjects=[contracts.DEAD_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=DEAD_MAX_AGE,
            duplicate_window=DUPLICATE_WINDOW,
            num_replicas=replicas,
            allow_direct=True,  # the dead-letter API reads with batched direct gets
        ),
        StreamConfig(
            name=SIP_ATTEMPTS,
            description="Routing decisions and delivery attempts; see GET /sip/deliveries",
            subjects=list(records.STREAM_SUBJECTS),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=retention.max_age,
            max_bytes=retention.max_bytes,
            duplicate_window=ATTEMPTS_DUPLICATE_WINDOW,
            num_replicas=replicas,
            allow_direct=True,
        ),
        StreamConfig(
            name=SIP_AUDIT,
            description="Every change through the API or CLI: who, what, when; see GET /sip/audit",
            subjects=[contracts.AUDIT_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=AUDIT_MAX_AGE,
            duplicate_window=ATTEMPTS_DUPLICATE_WINDOW,
            num_replicas=replicas,
            allow_direct=True,  # GET /sip/audit reads with batched direct gets
        ),
    ]


def buckets(replicas: int = 1) -> list[KeyValueConfig]:
    return [
        KeyValueConfig(
            bucket=HOOKS_BUCKET,
            description="Tenant hooks by host: {host, url, source, updated_at}",
            history=10,
            storage=StorageType.FILE,
            replicas=replicas,
        ),
        KeyValueConfig(
            bucket=ROOMS_BUCKET,
            description="SIP room name -> matched hook host",
            history=1,
            ttl=ROOMS_TTL,
            storage=StorageType.FILE,
            replicas=replicas,
        ),
        KeyValueConfig(
            bucket=ACCESS_BUCKET,
            description="Tenant token generation per hook host: a revoke bumps it",
            history=1,
            storage=StorageType.FILE,
            replicas=replicas,
        ),
        KeyValueConfig(
            bucket=LANES_BUCKET,
            description="Ordered delivery per call: (hook, endpoint, room) -> how far it got",
            history=1,
            ttl=LANES_TTL,
            storage=StorageType.FILE,
            replicas=replicas,
        ),
    ]


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    config: ConsumerConfig


def router_partition_consumer(partition: int) -> str:
    return f"{ROUTER_CONSUMER}-p{partition:02d}"


ROUTER_CONSUMERS = (
    ROUTER_CONSUMER,
    *(router_partition_consumer(p) for p in range(contracts.LK_PARTITIONS)),
)


def router_consumers() -> list[ConsumerSpec]:
    """The legacy durable (the previous release's `lk.events.<event>` messages, many in
    flight) and one durable per partition with ONE message in flight across all routers:
    the head of a partition is acked (or redelivered, still the head) before the next is
    given out, so each room's events are routed in LK_EVENTS order."""
    legacy = ConsumerSpec(
        LK_EVENTS,
        ConsumerConfig(
            durable_name=ROUTER_CONSUMER,
            description="sayna-sip router: messages of the previous release (unpartitioned)",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30.0,
            max_deliver=-1,
            max_ack_pending=10_000,
            filter_subject=contracts.LK_EVENTS_LEGACY,
        ),
    )
    partitions = [
        ConsumerSpec(
            LK_EVENTS,
            ConsumerConfig(
                durable_name=router_partition_consumer(p),
                description=f"sayna-sip router: partition {p} of LK_EVENTS, in order",
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=PARTITION_ACK_WAIT,
                max_deliver=-1,
                max_ack_pending=1,
                filter_subject=contracts.lk_partition_subjects(p),
            ),
        )
        for p in range(contracts.LK_PARTITIONS)
    ]
    return [legacy, *partitions]


def consumers(config: ServerConfig) -> list[ConsumerSpec]:
    """Durable pull consumers; every replica of a service shares its durables."""
    return [
        *router_consumers(),
        ConsumerSpec(
            SIP_DELIVERIES,
            ConsumerConfig(
                durable_name=FORWARDER_CONSUMER,
                description="sayna-sip forwarders",
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=config.forwarder.timeout + ACK_MARGIN,
                # Retries are counted in the Sayna-Attempt header, not by redelivery.
                max_deliver=-1,
                # Messages waiting for a retry or a busy host stay pending here. Any cap
                # would let one dead tenant's backlog stall every tenant once reached,
                # so there is none (-1); watch num_ack_pending instead.
                max_ack_pending=-1,
                filter_subject=contracts.DELIVERY_SUBJECTS,
            ),
        ),
    ]


async def check_topology(js: JetStreamContext, config: ServerConfig | None = None) -> None:
    """Raise TopologyError naming what of `config`'s topology (None: all of it) is
    missing; run `sayna-sip provision` to fix."""
    wanted = [(f"stream {s.name}", s.name or "") for s in streams()]
    wanted += [(f"KV bucket {b.bucket}", f"KV_{b.bucket}") for b in buckets()]
    missing: list[str] = []
    for label, stream in wanted:
        if not applies(stream.removeprefix("KV_"), config):
            continue
        try:
            await js.stream_info(stream)
        except NotFoundError:
            missing.append(label)
    if missing:
        # Exactly SIP's part missing: SIP was switched on after a provision with it off.
        sip_part = [label for label, s in wanted if s.removeprefix("KV_") not in WITHOUT_SIP]
        was_off = config is not None and config.sip is not None and missing == sip_part
        why = " (SIP is on now; NATS was provisioned with it off)" if was_off else ""
        raise TopologyError(
            f"NATS topology incomplete (missing {', '.join(missing)}){why}: "
            "run `sayna-sip provision`"
        )


async def check_router_consumers(js: JetStreamContext) -> None:
    """Raise TopologyError unless the router's durables are all there, each partition's
    with one message in flight (more would route a room's events out of order)."""
    missing: list[str] = []
    for spec in router_consumers():
        name = spec.config.durable_name or ""
        try:
            info = await js.consumer_info(spec.stream, name)
        except NotFoundError:
            missing.append(f"consumer {spec.stream}/{name}")
            continue
        if spec.config.max_ack_pending == 1 and info.config.max_ack_pending != 1:
            missing.append(f"consumer {spec.stream}/{name} with max_ack_pending=1")
    if missing:
        raise TopologyError(
            f"NATS topology incomplete (missing {', '.join(missing)}): run `sayna-sip provision`"
        )
