"""The delivery message on the wire: parse its headers, and build the headers of the
copies the forwarder publishes (retry, dead letter) and the dlq redrive publishes.

Dedupe ids (`Nats-Msg-Id`) are derived from (event, hook, redrive generation, attempt),
so a crash between publishing a copy and acking the original cannot duplicate it, and a
redriven event gets fresh ids that the stream's duplicate window does not swallow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sayna_sip.common.contracts import Header
from sayna_sip.common.hosts import host_token

MAX_ERROR_LEN = 300


class BadEnvelope(ValueError):
    """A delivery message without the headers needed to deliver it."""


@dataclass(frozen=True)
class Delivery:
    event_id: str
    hook: str  # host of the sip_hooks record to deliver to
    attempt: int  # failed attempts so far
    not_before: float  # unix seconds; 0 = now
    generation: int  # times redriven from SIP_DEAD
    received_at: float | None
    headers: Mapping[str, str]

    @property
    def event(self) -> str:
        return self.headers.get(Header.EVENT, "")

    @property
    def room(self) -> str:
        return self.headers.get(Header.ROOM, "")


def parse(headers: Mapping[str, str] | None) -> Delivery:
    h = dict(headers or {})
    event_id, hook = h.get(Header.EVENT_ID, ""), h.get(Header.HOOK, "")
    if not event_id or not hook:
        raise BadEnvelope(f"missing {Header.EVENT_ID} or {Header.HOOK}")
    try:
        return Delivery(
            event_id=event_id,
            hook=hook.lower(),
            attempt=int(h.get(Header.ATTEMPT) or 0),
            not_before=float(h.get(Header.NOT_BEFORE) or 0),
            generation=int(h.get(Header.REDRIVE) or 0),
            received_at=float(h[Header.RECEIVED_AT]) if h.get(Header.RECEIVED_AT) else None,
            headers=h,
        )
    except ValueError as exc:
        raise BadEnvelope(f"malformed header: {exc}") from None


def _msg_id(event_id: str, hook: str, generation: int, suffix: str) -> str:
    return f"{event_id}:{host_token(hook)}:g{generation}:{suffix}"


def _carried(headers: Mapping[str, str]) -> dict[str, str]:
    """The event's own headers, without JetStream's and the per-copy ones."""
    per_copy = {
        Header.ATTEMPT,
        Header.NOT_BEFORE,
        Header.DEAD_REASON,
        Header.DEAD_AT,
        Header.LAST_STATUS,
        Header.LAST_ERROR,
        Header.HOOK_URL,
    }
    return {k: v for k, v in headers.items() if not k.startswith("Nats-") and k not in per_copy}


def retry_headers(d: Delivery, attempt: int, not_before: float) -> dict[str, str]:
    out = _carried(d.headers)
    out[Header.ATTEMPT] = str(attempt)
    out[Header.NOT_BEFORE] = f"{not_before:.3f}"
    out[Header.MSG_ID] = _msg_id(d.event_id, d.hook, d.generation, f"a{attempt}")
    return out


def clean(text: str) -> str:
    """A single-line, bounded header value (NATS headers cannot hold CR/LF)."""
    return " ".join(text.split())[:MAX_ERROR_LEN]


def dead_headers(
    d: Delivery,
    *,
    reason: str,
    attempts: int,
    last_status: int | None,
    last_error: str,
    hook_url: str,
    dead_at: float,
) -> dict[str, str]:
    out = _carried(d.headers)
    out.update(
        {
            Header.DEAD_REASON: reason,
            Header.DEAD_AT: f"{dead_at:.3f}",
            Header.ATTEMPT: str(attempts),
            Header.LAST_STATUS: "" if last_status is None else str(last_status),
            Header.LAST_ERROR: clean(last_error),
            Header.HOOK: d.hook,
            Header.HOOK_URL: hook_url,
            Header.EVENT_ID: d.event_id,
            Header.EVENT: d.event,
            Header.ROOM: d.room,
            Header.MSG_ID: _msg_id(d.event_id, d.hook, d.generation, "dead"),
        }
    )
    return out


def redrive_headers(dead: Mapping[str, str]) -> dict[str, str]:
    """A dead letter's headers turned back into a fresh delivery: attempts reset, same
    event id (so the same webhook-id), next redrive generation."""
    d = parse(dead)
    out = _carried(dead)
    out[Header.REDRIVE] = str(d.generation + 1)
    out[Header.MSG_ID] = _msg_id(d.event_id, d.hook, d.generation + 1, "redrive")
    return out
