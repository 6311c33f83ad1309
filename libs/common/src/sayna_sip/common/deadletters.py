"""Dead letters in SIP_DEAD: listed newest first, and redriven by host, time window or
event ids. The `sayna-sip dlq` CLI and the ingress API both call this module.

A redrive publishes a fresh delivery (attempts reset, same event id so the same
`webhook-id`, next redrive generation so the dedupe window does not swallow it), waits
for its PubAck, and only then deletes the dead letter: a crash in between redrives it
twice at worst, and the second publish is deduplicated. It reads only the letters stored
when it began, so a letter that dies again at once is not chased in a loop, and it
reads them a batch at a time: a call that stops before the last one says `truncated`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from contextlib import aclosing
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from sayna_sip.common import contracts, topology
from sayna_sip.common.contracts import Header
from sayna_sip.common.delivery import Delivery
from sayna_sip.common.hosts import normalize_host
from sayna_sip.common.streamscan import MAX_BATCH, StoredMsg, StreamReader

REDRIVE_LIMIT = 1000  # letters redriven by one call at most
SCAN_LIMIT = REDRIVE_LIMIT * 10  # letters one call reads (once it has redriven one)
SCAN_BATCH = MAX_BATCH  # letters read per request
_NO_MESSAGE_FOUND = 10057  # JetStream's err_code for deleting a message that is gone
REDRIVE_BUDGET_S = 2.0  # an API call stops redriving after this long (`truncated`: call again)


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    subject: str
    headers: dict[str, str]
    body: bytes

    def get(self, name: str) -> str:
        return self.headers.get(name, "")

    @property
    def host(self) -> str:
        return self.get(Header.HOOK)

    @property
    def event_id(self) -> str:
        return self.get(Header.EVENT_ID)

    @property
    def dead_at(self) -> float | None:
        try:
            return float(self.get(Header.DEAD_AT))
        except ValueError:
            return None


@dataclass(frozen=True)
class Redriven:
    redriven: int = 0
    skipped: int = 0
    truncated: bool = False


def subject_for(host: str | None) -> str:
    return contracts.dead_subject(normalize_host(host)) if host else contracts.DEAD_SUBJECTS


def _letter(msg: StoredMsg) -> DeadLetter:
    return DeadLetter(msg.seq, msg.subject, msg.headers, msg.data)


async def page(
    reader: StreamReader,
    last_seq: Callable[[], Awaitable[int]],
    *,
    host: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
    cursor: int | None = None,
) -> tuple[list[DeadLetter], int | None]:
    """Dead letters, newest first, and the cursor of the next page."""
    floor, below = 1, await last_seq() + 1
    if since is not None:
        first = await reader.seq_at(since)
        if first is None:
            return [], None
        floor = first
    if until is not None:
        at = await reader.seq_at(until)
        below = at if at is not None else below
    if cursor is not None:
        below = min(below, cursor)
    msgs, next_seq = await reader.newest(subject_for(host), limit, below=below, floor=floor)
    return [_letter(m) for m in msgs], next_seq


async def oldest_first(
    reader: StreamReader,
    last: int,
    host: str | None = None,
    since: float | None = None,
    limit: int = SCAN_LIMIT,
) -> list[DeadLetter]:
    """The first `limit` letters (of `host`) stored from `since` up to sequence `last`."""
    out: list[DeadLetter] = []
    async with aclosing(_scan(reader, last, host, since)) as letters:
        async for letter in letters:
            if len(out) >= limit:
                break
            out.append(letter)
    return out


async def _scan(
    reader: StreamReader, last: int, host: str | None, since: float | None
) -> AsyncGenerator[DeadLetter]:
    """Every letter (of `host`) stored from `since` up to sequence `last`, oldest first,
    read a batch at a time."""
    lo = 1
    if since is not None:
        first = await reader.seq_at(since)
        if first is None:
            return
        lo = first
    while lo <= last:
        msgs, complete = await reader.range(subject_for(host), lo, last, cap=SCAN_BATCH)
        for msg in msgs:
            yield _letter(msg)
        if complete or not msgs:
            return
        lo = msgs[-1].seq + 1


async def redrive(
    js: JetStreamContext,
    reader: StreamReader,
    *,
    host: str | None = None,
    since: float | None = None,
    until: float | None = None,
    event_ids: Collection[str] | None = None,
    limit: int = REDRIVE_LIMIT,
    budget: float | None = None,
    scan: int = SCAN_LIMIT,
) -> Redriven:
    """Redrive the letters matching every filter given, up to `limit` of them, reading
    `scan` letters at most and, with a `budget`, for about that many seconds; each bound
    holds once one letter is redriven (or found gone), so every call makes progress.
    Redriven letters leave SIP_DEAD, so a truncated call is continued by the same call."""
    last = (await js.stream_info(topology.SIP_DEAD)).state.last_seq
    wanted = set(event_ids) if event_ids is not None else None
    deadline = time.monotonic() + budget if budget is not None else None
    done = skipped = read = 0
    async with aclosing(_scan(reader, last, host, since)) as letters:
        async for letter in letters:  # a letter this call has not looked at yet
            out_of_time = deadline is not None and time.monotonic() > deadline
            if done + skipped > 0 and (read >= scan or out_of_time):
                return Redriven(done, skipped, truncated=True)
            read += 1
            if wanted is not None and letter.event_id not in wanted:
                continue
            if until is not None and (letter.dead_at or 0) > until:
                continue
            if done >= limit:
                return Redriven(done, skipped, truncated=True)
            if await redrive_one(js, letter):
                done += 1
            else:
                skipped += 1
    return Redriven(done, skipped)


async def redrive_one(js: JetStreamContext, letter: DeadLetter) -> bool:
    """Back into SIP_DELIVERIES, then out of SIP_DEAD; False if it was gone already."""
    await js.publish(
        contracts.delivery_subject(letter.host),
        letter.body,
        stream=topology.SIP_DELIVERIES,
        headers=Delivery.from_headers(letter.headers).redrive_headers(),
    )
    try:
        await js.delete_msg(topology.SIP_DEAD, letter.seq)
    except (NotFoundError, APIError) as exc:
        # The server says "no message found" as a 500 with its own error code.
        if not isinstance(exc, NotFoundError) and exc.err_code != _NO_MESSAGE_FOUND:
            raise
        return False  # redriven meanwhile by another caller; our copy was deduplicated
    return True
