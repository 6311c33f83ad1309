"""The NATS topology: streams, consumers and KV buckets, defined once.

The provisioner creates and updates these; every service checks them at start
(`check_topology`) and fails with a clear error when something is missing.
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
ROUTER_CONSUMER = "router"
FORWARDER_CONSUMER = "forwarders"

DUPLICATE_WINDOW = 10 * 60.0  # LiveKit retries for well under this; design asks >= 5 min
ATTEMPTS_DUPLICATE_WINDOW = 60.0  # records carry no Nats-Msg-Id; keep the dedupe table small
DEAD_MAX_AGE = 14 * 86400.0
AUDIT_MAX_AGE = 90 * 86400.0
ROOMS_TTL = 24 * 3600.0  # a SIP call's room outlives no call by this much
ACK_MARGIN = 20.0  # ack wait = request timeout + margin, so no delivery runs twice at once


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
    ]


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    config: ConsumerConfig


def consumers(config: ServerConfig) -> list[ConsumerSpec]:
    """Durable pull consumers; every replica of a service shares its one durable."""
    return [
        ConsumerSpec(
            LK_EVENTS,
            ConsumerConfig(
                durable_name=ROUTER_CONSUMER,
                description="sayna-sip router",
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=30.0,
                max_deliver=-1,
                max_ack_pending=10_000,
                filter_subject=contracts.LK_EVENTS_SUBJECTS,
            ),
        ),
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


async def check_topology(js: JetStreamContext) -> None:
    """Raise TopologyError naming what is missing; run `sayna-sip provision` to fix."""
    missing: list[str] = []
    for stream in (LK_EVENTS, SIP_DELIVERIES, SIP_DEAD, SIP_ATTEMPTS, SIP_AUDIT):
        try:
            await js.stream_info(stream)
        except NotFoundError:
            missing.append(f"stream {stream}")
    for bucket in (HOOKS_BUCKET, ROOMS_BUCKET, ACCESS_BUCKET):
        try:
            await js.stream_info(f"KV_{bucket}")
        except NotFoundError:
            missing.append(f"KV bucket {bucket}")
    if missing:
        raise TopologyError(
            f"NATS topology incomplete (missing {', '.join(missing)}): run `sayna-sip provision`"
        )
