"""Names that cross process boundaries: subjects, headers, dead-letter reasons.

Every producer and consumer imports these; nothing spells a subject or header by hand.
"""

from __future__ import annotations

import re
import zlib

from sayna_sip.common.hosts import host_token
from sayna_sip.common.labels import DeadReason

__all__ = ["DeadReason"]  # re-exported: its values are also metric labels (labels.py)

# Subjects
LK_EVENTS_SUBJECTS = "lk.events.>"
# LK_EVENTS is partitioned by room (design: "Ordered delivery per call"): the ingress
# stores each event on `lk.events.<event>.p<NN>`, NN = lk_partition(room), and each
# partition has its own router durable with one message in flight, so a room's events
# are routed in stream order by any number of routers. Fixed: a changed count would move
# rooms between partitions while their events are in flight.
LK_PARTITIONS = 16
# What the previous release stored: `lk.events.<event>` (three tokens, no partition).
LK_EVENTS_LEGACY = "lk.events.*"
DELIVERY_SUBJECTS = "sip.deliver.>"
DEAD_SUBJECTS = "sip.dead.>"
AUDIT_SUBJECTS = "sip.audit.>"
# A change that names no host (an admin's redrive across hosts) is filed here; no hook
# host has this token (a host never starts with a dot).
AUDIT_NO_HOST = "sip.audit._all"

_SUBJECT_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def lk_partition(room: str) -> int:
    """The room's LK_EVENTS partition: stable across processes and releases (CRC-32 of
    the UTF-8 name, not Python's salted hash)."""
    return zlib.crc32(room.encode("utf-8", "surrogatepass")) % LK_PARTITIONS


def lk_event_subject(event: str, room: str) -> str:
    """`lk.events.<event>.p<NN>`; an empty or odd event name becomes a safe single token."""
    token = _SUBJECT_UNSAFE.sub("_", event) or "unknown"
    return f"lk.events.{token}.p{lk_partition(room):02d}"


def lk_partition_subjects(partition: int) -> str:
    """The filter of one partition's events, whatever their type."""
    return f"lk.events.*.p{partition:02d}"


def delivery_subject(hook_host: str) -> str:
    return f"sip.deliver.{host_token(hook_host)}"


def dead_subject(hook_host: str) -> str:
    return f"sip.dead.{host_token(hook_host)}"


def audit_subject(hook_host: str | None) -> str:
    return f"sip.audit.{host_token(hook_host)}" if hook_host else AUDIT_NO_HOST


# LiveKit's webhook event names (livekit-protocol WebhookEvent): what a hook's `events`
# filter may list. `sip_hook_test` is ours: the synthetic event of a test send.
LIVEKIT_EVENTS = (
    "room_started",
    "room_finished",
    "participant_joined",
    "participant_left",
    "participant_connection_aborted",
    "track_published",
    "track_unpublished",
    "egress_started",
    "egress_updated",
    "egress_ended",
    "ingress_started",
    "ingress_ended",
)
TEST_EVENT = "sip_hook_test"

# Operator events (core NATS, not stored) and the test-send request subject.
OPS_HOOK_DISABLED = "sip.ops.hook_disabled"
OPS_HOOK_ENABLED = "sip.ops.hook_enabled"
HOOK_TEST_SUBJECT = "sip.ops.hook_test"  # request/reply, served by the forwarders
HOOK_TEST_QUEUE = "forwarders"
# Every forwarder answers a ping here (no queue group): the live count that rate limits
# are shared by (forwarder/peers.py).
FORWARDER_PING = "sip.ops.forwarder_ping"
# A call's lane moved on (`sip.lane.<lane key>`, core NATS, empty): forwarders wake the
# copies waiting for it at once (forwarder/order_lanes.py).
LANE_NOTICE = "sip.lane"


class Header:
    """NATS message headers written by sayna-sip services."""

    MSG_ID = "Nats-Msg-Id"  # JetStream dedupe key
    EVENT_ID = "Sayna-Event-Id"  # LiveKit event id (webhook-id at the hook)
    EVENT = "Sayna-Event"  # LiveKit event type, e.g. participant_joined
    ROOM = "Sayna-Room"  # LiveKit room name ('' for events without a room)
    RECEIVED_AT = "Sayna-Received-At"  # unix seconds (float) when the ingress stored it
    HOOK = "Sayna-Hook"  # host of the matched hook (its sip_hooks entry), e.g. *.example.com
    ENDPOINT = "Sayna-Endpoint"  # the hook's endpoint this copy is for; absent = `default`
    SIP_HOST = "Sayna-Sip-Host"  # host parsed from the call's To header
    ATTEMPT = "Sayna-Attempt"  # failed delivery attempts so far (0 on first delivery)
    NOT_BEFORE = "Sayna-Not-Before"  # unix seconds; do not attempt before this time
    # Copies put back without spending an attempt (egress proxy down) since the last
    # attempt; part of the copy's dedupe id. Absent = 0.
    WAITS = "Sayna-Waits"
    # Seconds this copy waited for a rate-limit slot; set on the copy put back due at its
    # slot, which is then attempted without taking another one. Absent = not paced.
    PACED = "Sayna-Paced"
    # The copy's place among its room's copies for its endpoint (1, 2, ... no gaps), set
    # by the router; the forwarder keeps that order (design: "Ordered delivery per call").
    # Absent (a copy of a release before ordering, or not of a room) = 0, not ordered.
    CALL_SEQ = "Sayna-Call-Seq"
    REDRIVE = "Sayna-Redrive"  # times redriven from SIP_DEAD (part of the copies' dedupe ids)
    DEAD_REASON = "Sayna-Dead-Reason"
    DEAD_AT = "Sayna-Dead-At"
    LAST_STATUS = "Sayna-Last-Status"  # HTTP status of the last attempt, if any
    LAST_ERROR = "Sayna-Last-Error"
    HOOK_URL = "Sayna-Hook-Url"
    VERSION = "Sayna-Version"  # delivery envelope format; absent = 1 (see common.delivery)


# Size bounds. nats-server closes a client for good (nats-py does not reconnect after an
# -ERR) when a message exceeds its announced max_payload (headers included) or a control
# line exceeds 4 KiB (the subject is in it), so every value that reaches a subject,
# header or KV entry is bounded here and every publish is checked against max_payload.
MAX_EVENT_NAME = 64  # LiveKit's event names are ~20 characters
MAX_EVENT_ID = 256
MAX_ROOM_BYTES = 256  # UTF-8; its KV key (room_key) stays under 768 characters
# Bytes of a max_payload kept free for the headers the router and forwarder add to the
# webhook body on its way (their values are bounded; this is a generous ceiling).
HEADER_HEADROOM = 16 * 1024


def message_size(body: bytes, headers: dict[str, str] | None = None) -> int:
    """What nats-server counts against max_payload: the body plus the header block."""
    if not headers:
        return len(body)
    block = sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())
    return len(body) + block + len(b"NATS/1.0\r\n\r\n")


def body_limit(max_payload: int, configured: int) -> int:
    """The largest webhook body that still fits the router's and forwarder's copies."""
    return max(0, min(configured, max_payload - HEADER_HEADROOM))
