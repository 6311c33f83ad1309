"""Read a stream with batched direct gets: no consumer, filtered by subject on the server.

`$JS.API.DIRECT.GET.<stream>` with `batch` answers with up to that many stored
messages matching `next_by_subj`, then a `204 EOB` status (nats-server ≥ 2.11; the
stream needs `allow_direct`). nats-server keeps a per-block index of subjects, so a
selective filter skips whole blocks instead of reading every message. One reply
subscription (`<inbox>.*`) serves every request of a reader.

`newest()` pages backwards (newest first) over sequence windows sized from the
filter's density (the server counts the matches); a window with few matches makes the
next, older one larger, and one too dense to read whole is narrowed from the top, so a
page costs a few requests and about its own size in transfer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

MAX_BATCH = 1000
_EOB, _NOT_FOUND = "204", "404"


class ScanError(RuntimeError):
    """The stream could not be read (missing, not direct-readable, or NATS trouble)."""


@dataclass(frozen=True)
class StoredMsg:
    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes
    pending: int = 0  # matches of the request's filter stored after this one


class StreamReader:
    def __init__(self, nc: Client, stream: str, timeout: float = 5.0) -> None:
        self._nc = nc
        self._stream = stream
        self._timeout = timeout
        self._prefix = ""
        self._counter = itertools.count()
        self._queues: dict[str, asyncio.Queue[Msg]] = {}
        self._sub: Any = None

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_reply)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_reply(self, msg: Msg) -> None:
        queue = self._queues.get(msg.subject)
        if queue is not None:
            queue.put_nowait(msg)

    async def batch(
        self, filter_subject: str, *, seq: int = 0, start_time: float | None = None, size: int
    ) -> list[StoredMsg]:
        """Up to `size` messages matching `filter_subject` from `seq` (or `start_time`)."""
        req: dict[str, Any] = {"next_by_subj": filter_subject, "batch": min(size, MAX_BATCH)}
        if start_time is not None:
            req["start_time"] = _rfc3339(start_time)
        else:
            req["seq"] = max(1, seq)
        reply = f"{self._prefix}{next(self._counter)}"
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._queues[reply] = queue
        out: list[StoredMsg] = []
        try:
            subject = f"$JS.API.DIRECT.GET.{self._stream}"
            await self._nc.publish(subject, json.dumps(req).encode(), reply=reply)
            async with asyncio.timeout(self._timeout):
                while (msg := await queue.get()) is not None:
                    if _status(msg) is not None:
                        _check_end(msg, self._stream)
                        return out
                    out.append(_stored(msg))
        except TimeoutError:
            raise ScanError(f"reading stream {self._stream} timed out") from None
        except nats.errors.Error as exc:
            raise ScanError(f"reading stream {self._stream} failed: {exc!r}") from exc
        finally:
            self._queues.pop(reply, None)
        return out

    async def range(
        self, filter_subject: str, lo: int, hi: int, cap: int
    ) -> tuple[list[StoredMsg], bool]:
        """Every match with lo <= seq <= hi, ascending; (partial, False) past `cap`."""
        out: list[StoredMsg] = []
        seq = lo
        while seq <= hi:
            size = min(MAX_BATCH, cap + 1 - len(out))
            got = await self.batch(filter_subject, seq=seq, size=size)
            out.extend(m for m in got if m.seq <= hi)
            if len(out) > cap:
                return out, False
            if len(got) < size or got[-1].seq >= hi:
                break
            seq = got[-1].seq + 1
        return out, True

    async def newest(
        self, filter_subject: str, limit: int, *, below: int, floor: int = 1
    ) -> tuple[list[StoredMsg], int | None]:
        """Up to `limit` matches with floor <= seq < below, newest first, and the cursor
        of the next page (the seq to read below), or None when there is none."""
        # One probe counts the matches from `floor` on (Nats-Num-Pending): a sparse filter
        # is then read in one pass, a dense one in windows sized to hold about a page.
        probe = await self.batch(filter_subject, seq=floor, size=1)
        if not probe or probe[0].seq >= below:
            return [], None
        floor, total = probe[0].seq, probe[0].pending + 1
        cap = 4 * limit + 256
        span = below - floor
        window = span if total <= cap else max(256, span * 2 * limit // total)
        out: list[StoredMsg] = []
        hi = below - 1
        while hi >= floor and len(out) <= limit:
            lo = max(floor, hi - window + 1)
            chunk, complete = await self.range(filter_subject, lo, hi, cap)
            if not complete:  # too dense to read whole: a narrower window from the top
                window = max(1, (hi - lo + 1) // 8)
                continue
            out.extend(reversed(chunk))
            hi = lo - 1
            if len(chunk) < limit:
                window *= 4
        page = out[:limit]
        more = len(out) > limit or (len(page) == limit and hi >= floor)
        return page, (page[-1].seq if more and page else None)

    async def seq_at(self, when: float) -> int | None:
        """Sequence of the first message stored at or after `when`; None if none is."""
        got = await self.batch(">", start_time=when, size=1)
        return got[0].seq if got else None


def _status(msg: Msg) -> str | None:
    return msg.headers.get("Status") if msg.headers else None


def _check_end(msg: Msg, stream: str) -> None:
    status = _status(msg)
    if status in (_EOB, _NOT_FOUND):
        return
    assert msg.headers is not None
    detail = msg.headers.get("Description", "")
    raise ScanError(f"reading stream {stream} failed: {status} {detail}".rstrip())


def _stored(msg: Msg) -> StoredMsg:
    headers = dict(msg.headers or {})
    return StoredMsg(
        seq=int(headers.pop("Nats-Sequence", "0")),
        pending=int(headers.get("Nats-Num-Pending") or 0),
        subject=headers.pop("Nats-Subject", ""),
        headers={k: v for k, v in headers.items() if not k.startswith("Nats-")},
        data=msg.data,
    )


def _rfc3339(when: float) -> str:
    return datetime.fromtimestamp(max(0.0, when), UTC).isoformat().replace("+00:00", "Z")
