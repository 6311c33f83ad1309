"""What the router did with one LK_EVENTS message: the `outcome` label of its metrics,
mapped to an ack/nak decision and a route record in `routing`."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What the router did with one LK_EVENTS message (the `outcome` label)."""

    ROUTED = "routed"  # published to SIP_DELIVERIES, input acked
    UNMATCHED = "unmatched"  # SIP host found, no hook for it
    FILTERED = "filtered"  # the hook's events filter leaves this event type out
    NO_HOST = "no_host"  # SIP room, no host in the event nor in room memory: gave up
    DEFERRED = "deferred"  # no host yet: nak'd briefly, the caller's join may be in flight
    NON_SIP = "non_sip"  # room name without the SIP prefix, or no room
    DISABLED = "disabled"  # SIP not configured: everything is acked unread
    MALFORMED = "malformed"  # unreadable body: terminated
    RETRY = "retry"  # NATS failed while routing: nak'd with a delay
