"""Messages on the wire, spelled once: the `LK_EVENTS` metadata the ingress writes, and
the `Delivery` envelope of a `SIP_DELIVERIES` message and of its retry, dead-letter and
redrive copies.

`Sayna-Version` names the envelope's format; a message without it is version 1 (what
releases before the header wrote), so messages already in a stream still deliver.
Each endpoint of a hook gets its own copy, named by `Sayna-Endpoint` (absent: the
`default` endpoint, as every message of releases before endpoints). Dedupe ids
(`Nats-Msg-Id`) of the copies derive from (event, hook, endpoint, redrive generation,
attempt): a crash between publishing a copy and acking the original cannot duplicate it,
two endpoints' copies never swallow each other, and a redriven event gets fresh ids that
the stream's duplicate window does not swallow. The `default` endpoint's ids are spelt as
before, so a copy written by the previous release and its retry by this one dedupe alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sayna_sip.common.contracts import Header
from sayna_sip.common.hook import DEFAULT_ENDPOINT
from sayna_sip.common.hosts import host_token

VERSION = 1  # the envelope format this release writes
MAX_ERROR_LEN = 300
# Headers that belong to one copy only: a new copy never inherits them.
_PER_COPY = frozenset(
    {
        Header.ATTEMPT,
        Header.NOT_BEFORE,
        Header.WAITS,
        Header.PACED,
        Header.DEAD_REASON,
        Header.DEAD_AT,
        Header.LAST_STATUS,
        Header.LAST_ERROR,
        Header.HOOK_URL,
    }
)


def header_value(value: str, limit: int | None = None) -> str:
    """A value a NATS header can hold: no CR/LF (they would end the header block).
    With `limit`, also one line of single spaces, at most `limit` characters."""
    if limit is not None:
        return " ".join(value.split())[:limit]
    if "\r" in value or "\n" in value:
        return value.replace("\r", " ").replace("\n", " ")
    return value


def _seconds(value: str | None) -> float | None:
    """The ingress's receive time, if it reads as one (the router passes it on as is)."""
    try:
        return float(value) if value else None
    except ValueError:
        return None


class BadEnvelope(ValueError):
    """A delivery message without the headers needed to deliver it."""


@dataclass(frozen=True)
class EventMeta:
    """Headers of an `LK_EVENTS` message: the event as the ingress received it."""

    event_id: str
    event: str
    room: str
    received_at: float  # unix seconds

    def to_headers(self) -> dict[str, str]:
        return {
            Header.MSG_ID: header_value(self.event_id),  # LiveKit's retries stored once
            Header.EVENT_ID: header_value(self.event_id),
            Header.EVENT: header_value(self.event),
            Header.ROOM: header_value(self.room),
            Header.RECEIVED_AT: f"{self.received_at:.6f}",
        }


@dataclass(frozen=True)
class Delivery:
    event_id: str
    hook: str  # host of the sip_hooks record to deliver to
    endpoint: str = DEFAULT_ENDPOINT  # id of that hook's endpoint
    attempt: int = 0  # failed attempts so far
    not_before: float = 0.0  # unix seconds; 0 = now
    generation: int = 0  # times redriven from SIP_DEAD
    waits: int = 0  # copies put back without an attempt since the last one
    paced: float | None = None  # seconds waited for a rate-limit slot (this copy holds one)
    received_at: float | None = None
    call_seq: int = 0  # place among its room's copies for its endpoint; 0 = not ordered
    version: int = VERSION
    headers: Mapping[str, str] = field(default_factory=dict)  # as read, or as to be written

    @property
    def event(self) -> str:
        return self.headers.get(Header.EVENT, "")

    @property
    def room(self) -> str:
        return self.headers.get(Header.ROOM, "")

    @property
    def lane(self) -> str:
        """What isolates this copy from others: its hook and endpoint (per-host
        concurrency, breaker and hold are per lane, so one endpoint never slows another)."""
        return self.hook if self.endpoint == DEFAULT_ENDPOINT else f"{self.hook}#{self.endpoint}"

    @classmethod
    def first(
        cls,
        *,
        event_id: str,
        event: str,
        room: str,
        hook: str,
        sip_host: str,
        received_at: str | None,
        endpoint: str = DEFAULT_ENDPOINT,
        call_seq: int = 0,
    ) -> Delivery:
        """The router's first copy for one endpoint. `received_at` is passed on as the
        ingress wrote it; `call_seq` > 0 is its `Sayna-Call-Seq`."""
        default = endpoint == DEFAULT_ENDPOINT
        headers = {
            # a redelivered event is dropped by the stream's dedupe; each endpoint's apart
            Header.MSG_ID: event_id if default else f"{event_id}:{endpoint}",
            Header.EVENT_ID: event_id,
            Header.EVENT: event,
            Header.ROOM: room,
            Header.HOOK: hook,
            Header.SIP_HOST: sip_host,
        }
        if received_at:
            headers[Header.RECEIVED_AT] = received_at
        if not default:
            headers[Header.ENDPOINT] = endpoint
        if call_seq > 0:
            headers[Header.CALL_SEQ] = str(call_seq)
        headers = {name: header_value(value) for name, value in headers.items()}
        headers[Header.VERSION] = str(VERSION)
        return cls(
            event_id=headers[Header.EVENT_ID],
            hook=headers[Header.HOOK].lower(),
            endpoint=endpoint,
            received_at=_seconds(received_at),
            call_seq=max(call_seq, 0),
            headers=headers,
        )

    def to_headers(self) -> dict[str, str]:
        return dict(self.headers)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | None) -> Delivery:
        h = dict(headers or {})
        event_id, hook = h.get(Header.EVENT_ID, ""), h.get(Header.HOOK, "")
        if not event_id or not hook:
            raise BadEnvelope(f"missing {Header.EVENT_ID} or {Header.HOOK}")
        try:
            return cls(
                event_id=event_id,
                hook=hook.lower(),
                endpoint=h.get(Header.ENDPOINT) or DEFAULT_ENDPOINT,
                attempt=int(h.get(Header.ATTEMPT) or 0),
                not_before=float(h.get(Header.NOT_BEFORE) or 0),
                generation=int(h.get(Header.REDRIVE) or 0),
                waits=int(h.get(Header.WAITS) or 0),
                paced=float(h[Header.PACED]) if h.get(Header.PACED) else None,
                received_at=float(h[Header.RECEIVED_AT]) if h.get(Header.RECEIVED_AT) else None,
                call_seq=int(h.get(Header.CALL_SEQ) or 0),
                version=int(h.get(Header.VERSION) or 1),
                headers=h,
            )
        except ValueError as exc:
            raise BadEnvelope(f"malformed header: {exc}") from None

    def _msg_id(self, generation: int, suffix: str) -> str:
        target = host_token(self.hook)
        if self.endpoint != DEFAULT_ENDPOINT:
            target = f"{target}:{self.endpoint}"
        return f"{self.event_id}:{target}:g{generation}:{suffix}"

    def _carried(self) -> dict[str, str]:
        """The event's own headers, without JetStream's and the per-copy ones."""
        return {
            k: v
            for k, v in self.headers.items()
            if not k.startswith("Nats-") and k not in _PER_COPY
        }

    def retry_headers(
        self, attempt: int, not_before: float, last_status: int | None = None
    ) -> dict[str, str]:
        out = self._carried()
        out[Header.ATTEMPT] = str(attempt)
        out[Header.NOT_BEFORE] = f"{not_before:.3f}"
        if last_status is not None:  # the answer that caused this retry, for a later dead letter
            out[Header.LAST_STATUS] = str(last_status)
        out[Header.MSG_ID] = self._msg_id(self.generation, f"a{attempt}")
        return out

    def wait_headers(self, not_before: float, paced: float | None = None) -> dict[str, str]:
        """The copy put back to wait without spending an attempt (the failure was ours,
        e.g. the egress proxy; or a rate-limit slot later on, `paced` = the wait): same
        attempt count, its own dedupe id, so the stream's duplicate window cannot swallow
        the second such copy of one attempt."""
        out = self._carried()
        if paced is not None:
            out[Header.PACED] = f"{paced:.3f}"
        out[Header.ATTEMPT] = str(self.attempt)
        out[Header.NOT_BEFORE] = f"{not_before:.3f}"
        out[Header.WAITS] = str(self.waits + 1)
        if self.headers.get(Header.LAST_STATUS):  # the last real answer, kept for a dead letter
            out[Header.LAST_STATUS] = self.headers[Header.LAST_STATUS]
        out[Header.MSG_ID] = self._msg_id(self.generation, f"a{self.attempt}w{self.waits + 1}")
        return out

    def dead_headers(
        self,
        *,
        reason: str,
        attempts: int,
        last_status: int | None,
        last_error: str,
        hook_url: str,
        dead_at: float,
    ) -> dict[str, str]:
        out = self._carried()
        out.update(
            {
                Header.DEAD_REASON: reason,
                Header.DEAD_AT: f"{dead_at:.3f}",
                Header.ATTEMPT: str(attempts),
                Header.LAST_STATUS: self._last_status(last_status),
                Header.LAST_ERROR: header_value(last_error, MAX_ERROR_LEN),
                Header.HOOK: self.hook,
                Header.HOOK_URL: hook_url,
                Header.EVENT_ID: self.event_id,
                Header.EVENT: self.event,
                Header.ROOM: self.room,
                Header.MSG_ID: self._msg_id(self.generation, "dead"),
            }
        )
        return out

    def _last_status(self, now: int | None) -> str:
        """This attempt's status, else (nothing sent: hook disabled or removed) the last
        real answer, carried by the retry copy."""
        return str(now) if now is not None else self.headers.get(Header.LAST_STATUS, "")

    def redrive_headers(self) -> dict[str, str]:
        """This dead letter turned back into a fresh delivery: attempts reset, same event
        id (so the same webhook-id), next redrive generation."""
        out = self._carried()
        out[Header.REDRIVE] = str(self.generation + 1)
        out[Header.MSG_ID] = self._msg_id(self.generation + 1, "redrive")
        return out
