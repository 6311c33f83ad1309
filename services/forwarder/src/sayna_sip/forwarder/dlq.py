"""Dead letters in SIP_DEAD: read them, and redrive them into SIP_DEAD's source stream.

Reading uses the stream's direct message API (no consumer is created). A redrive
publishes a fresh delivery (attempts reset, same event id so the same `webhook-id`,
next redrive generation so the dedupe window does not swallow it), waits for its
PubAck, and only then deletes the dead letter: a crash in between redrives it twice
at worst, and the second publish is deduplicated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from sayna_sip.common import contracts, topology
from sayna_sip.common.contracts import Header
from sayna_sip.common.delivery import Delivery
from sayna_sip.common.hosts import normalize_host


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    subject: str
    headers: dict[str, str]
    body: bytes

    def get(self, name: str) -> str:
        return self.headers.get(name, "")

    @property
    def hook(self) -> str:
        return self.get(Header.HOOK)

    @property
    def dead_at(self) -> str:
        try:
            stamp = datetime.fromtimestamp(float(self.get(Header.DEAD_AT)), UTC)
        except ValueError:
            return "?"
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def subject_for(host: str | None) -> str:
    return contracts.dead_subject(normalize_host(host)) if host else contracts.DEAD_SUBJECTS


async def letters(js: JetStreamContext, host: str | None = None) -> AsyncIterator[DeadLetter]:
    """Dead letters in stream order, optionally of one hook host, up to the last one
    stored when the read began: a redrive must not chase letters that die again while
    it runs (a 410 or a removed hook would be redriven endlessly)."""
    subject = subject_for(host)
    info = await js.stream_info(topology.SIP_DEAD)
    last = info.state.last_seq
    seq = 1
    while seq <= last:
        try:
            raw = await js.get_msg(topology.SIP_DEAD, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return
        assert raw.seq is not None
        if raw.seq > last:
            return
        yield DeadLetter(raw.seq, raw.subject or "", dict(raw.headers or {}), raw.data or b"")
        seq = raw.seq + 1


async def redrive(js: JetStreamContext, letter: DeadLetter) -> None:
    """Back into SIP_DELIVERIES, then out of SIP_DEAD."""
    await js.publish(
        contracts.delivery_subject(letter.hook),
        letter.body,
        stream=topology.SIP_DELIVERIES,
        headers=Delivery.from_headers(letter.headers).redrive_headers(),
    )
    await js.delete_msg(topology.SIP_DEAD, letter.seq)
