"""Questions answered from SIP_ATTEMPTS: what happened to event X, what happened lately
(filtered, newest first, paginated), and how a hook is doing over a window.

Each query is one or a few batched direct gets filtered by subject (see `records`), so
its cost follows the size of the answer, not of the stream. The API and the CLI both
call this module; `view()` is the one JSON shape of a record they show.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec.structs

from sayna_sip.common import records
from sayna_sip.common.durations import parse_duration
from sayna_sip.common.hook import DEFAULT_ENDPOINT
from sayna_sip.common.labels import DeadReason
from sayna_sip.common.logs import shorten
from sayna_sip.common.records import AttemptOutcome, AttemptRecord, Record, RouteRecord
from sayna_sip.common.streamscan import StreamReader

MAX_LIMIT = 500
STATS_WINDOWS = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}
STATS_CAP = 200_000  # attempts read for one stats answer at most
RECENT_WINDOW = 10.0  # seconds the `current_rate` of a hook's stats is taken over


class QueryError(ValueError):
    """A query parameter that cannot be used (the API answers 400)."""


@dataclass
class EventView:
    event_id: str
    event: str
    room: str
    route: RouteRecord | None
    attempts: list[AttemptRecord]


@dataclass
class Page:
    items: list[Record]
    next_cursor: str | None


@dataclass
class Stats:
    attempts: int = 0
    delivered: int = 0
    failed: int = 0
    success_rate: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    last_success_at: float | None = None
    last_failure_at: float | None = None
    truncated: bool = False
    recent: int = 0  # attempts in the last RECENT_WINDOW seconds (the current rate)
    durations: list[float] = field(default_factory=list, repr=False)


class Deliveries:
    def __init__(self, reader: StreamReader, last_seq: Any, stats_cap: int = STATS_CAP) -> None:
        """`last_seq()` -> the stream's last sequence (a stream-info call); `stats_cap`:
        attempts one stats answer reads at most (checked between batches of 1,000)."""
        self._reader = reader
        self._last_seq = last_seq
        self._stats_cap = stats_cap

    async def event(self, event_id: str) -> EventView | None:
        subject = records.filter_subject(event_id=event_id)
        found: list[Record] = []
        seq = 1
        while True:
            batch = await self._reader.batch(subject, seq=seq, size=1000)
            found.extend(_decoded(batch))
            if len(batch) < 1000:
                break
            seq = batch[-1].seq + 1
        if not found:
            return None
        routes = [r for r in found if isinstance(r, RouteRecord)]
        attempts = [r for r in found if isinstance(r, AttemptRecord)]
        attempts.sort(key=lambda a: (a.redrive, a.attempt, a.started_at))
        first = routes[-1] if routes else found[0]
        return EventView(
            event_id, first.event, first.room, routes[-1] if routes else None, attempts
        )

    async def page(
        self,
        *,
        host: str | None = None,
        outcome: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Records matching the filters, newest first, `limit` at a time."""
        subject = records.filter_subject(kind=kind, host=host, outcome=outcome)
        floor, below = 1, await self._last_seq() + 1
        if since is not None:
            first = await self._reader.seq_at(since)
            if first is None:
                return Page([], None)
            floor = first
        if until is not None:
            at = await self._reader.seq_at(until)
            below = at if at is not None else below
        if cursor is not None:
            below = min(below, parse_cursor(cursor))
        msgs, next_seq = await self._reader.newest(subject, limit, below=below, floor=floor)
        return Page(_decoded(msgs), None if next_seq is None else str(next_seq))

    async def stats(
        self, host: str, window: float, now: float | None = None, endpoint: str = DEFAULT_ENDPOINT
    ) -> Stats:
        """The attempts to one endpoint of `host` in the window."""
        now = time.time() if now is None else now
        subject = records.filter_subject(kind="attempt", host=host)
        first = await self._reader.seq_at(now - window)
        out = Stats()
        if first is None:
            return out
        seq = first
        while out.attempts < self._stats_cap:
            batch = await self._reader.batch(subject, seq=seq, size=1000)
            for rec in _decoded(batch):
                if (
                    isinstance(rec, AttemptRecord)
                    and rec.started_at >= now - window
                    and rec.endpoint == endpoint
                ):
                    _count(out, rec, recent=rec.started_at >= now - RECENT_WINDOW)
            if len(batch) < 1000:
                break
            seq = batch[-1].seq + 1
        else:
            out.truncated = True
        _summarize(out)
        return out


# Dead letters made without a request (the hook was disabled or removed): not attempts,
# so a hook that answered every request 200 is not shown failing once disabled.
_NOTHING_SENT = frozenset({DeadReason.HOOK_DISABLED, DeadReason.HOOK_REMOVED})


def _count(out: Stats, rec: AttemptRecord, *, recent: bool) -> None:
    if rec.reason in _NOTHING_SENT and rec.status is None:
        return
    if rec.outcome == AttemptOutcome.PROXY_ERROR:
        return  # the operator's proxy failed: no request reached the endpoint
    out.attempts += 1
    out.recent += recent
    if rec.outcome == AttemptOutcome.DELIVERED:
        out.delivered += 1
        out.last_success_at = max(out.last_success_at or 0.0, rec.started_at)
    else:
        out.failed += 1
        out.last_failure_at = max(out.last_failure_at or 0.0, rec.started_at)
    if rec.status is not None or rec.duration_ms:
        out.durations.append(rec.duration_ms)


def _summarize(out: Stats) -> None:
    if out.attempts:
        out.success_rate = round(out.delivered / out.attempts, 4)
    if out.durations:
        ordered = sorted(out.durations)
        out.p50_ms = _quantile(ordered, 0.5)
        out.p99_ms = _quantile(ordered, 0.99)


def _quantile(ordered: list[float], q: float) -> float:
    index = max(0, math.ceil(q * len(ordered)) - 1)
    return round(ordered[index], 1)


def _decoded(msgs: list[Any]) -> list[Record]:
    out: list[Record] = []
    for msg in msgs:
        try:
            out.append(records.decode(msg.data))
        except records.BadRecord:
            continue  # a record this release cannot read is skipped, not fatal
    return out


def parse_cursor(cursor: str) -> int:
    # ASCII digits only: `²` is a digit to str.isdigit() but not to int().
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 19) or int(cursor) < 1:
        raise QueryError(f"cursor '{shorten(cursor)}' is not one this API returned")
    return int(cursor)


def parse_when(text: str, now: float | None = None) -> float:
    """Unix seconds from RFC 3339 (`2026-12-01T10:00:00Z`) or a duration back (`1h`)."""
    now = time.time() if now is None else now
    value = text.strip()
    try:
        back = parse_duration(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(back):
            raise QueryError(f"'{shorten(text)}' is too long ago")
        return now - back
    try:
        stamp = datetime.fromisoformat(value.replace("z", "Z"))  # 3.11 reads Z, not z
    except ValueError:
        raise QueryError(
            f"'{shorten(text)}' is neither an RFC 3339 time nor a duration like 1h"
        ) from None
    if stamp.tzinfo is None:
        raise QueryError(f"'{shorten(text)}' has no time zone: add Z or an offset")
    return stamp.timestamp()


_PENDING = frozenset((AttemptOutcome.FAILED, AttemptOutcome.PROXY_ERROR))


def next_retry(attempts: Sequence[AttemptRecord]) -> float | None:
    """When the earliest pending retry of these attempts is due: each copy's (host,
    endpoint, redrive generation) latest attempt that failed with a try scheduled."""
    latest: dict[tuple[str, str, int], AttemptRecord] = {}
    for a in attempts:
        key = (a.host, a.endpoint, a.redrive)
        last = latest.get(key)
        if last is None or (a.attempt, a.started_at) >= (last.attempt, last.started_at):
            latest[key] = a
    due = [a.retry_at for a in latest.values() if a.outcome in _PENDING and a.retry_at > 0]
    return min(due) if due else None


def rfc3339(when: float | None) -> str | None:
    if when is None or when <= 0:
        return None
    stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


_TIMES = ("at", "started_at", "received_at", "retry_at")


def view(record: Record) -> dict[str, Any]:
    """A record as the API and CLI show it: every field, times in RFC 3339 UTC."""
    out: dict[str, Any] = {"kind": record.kind, **msgspec.structs.asdict(record)}
    out.pop("v", None)
    for name in _TIMES:
        if name in out:
            out[name] = rfc3339(out[name])
    return out
