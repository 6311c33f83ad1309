"""The audit log: one record per accepted change (API or CLI) in stream SIP_AUDIT.

A record says who (`admin`, a tenant token id, or `anonymous` with auth off), what
(action, host, endpoint, the names of the fields changed and a few safe values), when,
and the request id. Values pass an allow-list and URLs lose their query, so a secret or a
header value never reaches the stream. Records are versioned (`v`): a reader takes a
record without `v` as version 1 and ignores fields it does not know, so what an older
release stored still reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from sayna_sip.common import contracts, topology
from sayna_sip.common.deliveries import rfc3339
from sayna_sip.common.logs import quote
from sayna_sip.common.streamscan import StreamReader

log = logging.getLogger("sayna_sip.audit")

AUDIT_VERSION = 1
PUBLISH_TIMEOUT_S = 2.0
MAX_FIELDS = 32
MAX_TEXT = 512  # characters of one recorded value
MAX_LIST = 50  # items of one recorded list (event names, event ids)
# Values a record may carry. Anything else a caller passes is dropped, so a secret, a
# header value or a body is never recorded by mistake.
SAFE_VALUES = frozenset(
    {
        "url", "events", "enabled", "ttl", "expires_at", "token_id", "generation",
        "fingerprint", "since", "until", "event_ids", "redriven", "skipped", "replayed",
        "expired", "truncated", "ordering", "rate_limit", "status", "hosts", "count",
    }
)  # fmt: skip

Value = str | int | float | bool | list[str] | None


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One accepted change, as stored in SIP_AUDIT (JSON)."""

    v: int = AUDIT_VERSION
    at: str  # RFC 3339 UTC
    actor: str  # admin | tok_… | anonymous
    action: str  # e.g. hooks.upsert, hook.rotate_secret, access_tokens.mint
    host: str | None = None
    endpoint: str | None = None
    request_id: str | None = None
    via: str = "api"  # api | cli
    fields: list[str] = msgspec.field(default_factory=list)
    values: dict[str, Value] = msgspec.field(default_factory=dict)
    truncated: bool = False  # values dropped to fit the server's max_payload


class StoredRecord(msgspec.Struct, frozen=True):
    seq: int
    record: AuditRecord


def _safe(name: str, value: Any) -> Value:
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [str(x)[:MAX_TEXT] for x in list(value)[:MAX_LIST]]
    text = str(value)
    if name == "url":
        text = strip_query(text)
    return text[:MAX_TEXT]


def strip_query(url: str) -> str:
    """A URL without its query and fragment (a tenant may put a token there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def record(
    *,
    actor: str,
    action: str,
    host: str | None = None,
    endpoint: str | None = None,
    request_id: str | None = None,
    via: str = "api",
    fields: Iterable[str] = (),
    values: dict[str, Any] | None = None,
    now: float | None = None,
) -> AuditRecord:
    """A record with its fields bounded and its values through the allow-list."""
    kept = {k: _safe(k, v) for k, v in (values or {}).items() if k in SAFE_VALUES}
    return AuditRecord(
        at=rfc3339(time.time() if now is None else now) or "",
        actor=actor[:MAX_TEXT],
        action=action[:MAX_TEXT],
        host=host,
        endpoint=endpoint,
        request_id=request_id,
        via=via,
        fields=sorted({str(f)[:MAX_TEXT] for f in fields})[:MAX_FIELDS],
        values=kept,
    )


def encode(rec: AuditRecord, max_payload: int) -> bytes:
    """The record as stored; its values are dropped when the whole would not fit."""
    data = msgspec.json.encode(rec)
    if contracts.message_size(data) > max_payload:
        slim = msgspec.structs.replace(rec, values={}, truncated=True)
        data = msgspec.json.encode(slim)
    return data


def decode(data: bytes) -> AuditRecord:
    return msgspec.json.decode(data, type=AuditRecord)


class AuditLog:
    """Publishes records to SIP_AUDIT and waits for the PubAck (bounded)."""

    def __init__(self, nc: Client, js: JetStreamContext) -> None:
        self._nc = nc
        self._js = js

    async def publish(self, rec: AuditRecord) -> bool:
        """True when stored. A failure is logged, never raised: the change it records is
        already made, and answering an error would invite a second one."""
        try:
            await self._js.publish(
                contracts.audit_subject(rec.host),
                encode(rec, self._nc.max_payload),
                stream=topology.SIP_AUDIT,
                timeout=PUBLISH_TIMEOUT_S,
            )
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            log.error(
                "event=audit_failed action=%s host=%s request_id=%s error=%s",
                rec.action, rec.host, rec.request_id, quote(repr(exc)),
            )  # fmt: skip
            return False
        return True


async def page(
    reader: StreamReader,
    last_seq: int,
    *,
    host: str | None,
    since_seq: int | None = None,
    limit: int = 100,
    cursor: int | None = None,
) -> tuple[list[StoredRecord], int | None]:
    """Records newest first (of `host`, or all), and the cursor of the next page."""
    subject = contracts.audit_subject(host) if host else contracts.AUDIT_SUBJECTS
    below = last_seq + 1 if cursor is None else min(last_seq + 1, cursor)
    msgs, next_seq = await reader.newest(subject, limit, below=below, floor=since_seq or 1)
    out: list[StoredRecord] = []
    for msg in msgs:
        try:
            out.append(StoredRecord(msg.seq, decode(msg.data)))
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("event=audit_unreadable seq=%d", msg.seq)
    return out, next_seq
