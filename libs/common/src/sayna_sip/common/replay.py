"""Replay: deliver again the events a hook's route records name in a time window.

The route record of each matched event keeps its LK_EVENTS sequence, so the original
body is read back by sequence (no scan of LK_EVENTS), checked to be the same event, and
published as a fresh delivery with the same event id, hence the same `webhook-id`.
It carries no receipt time (an old event would skew the latency metric). Its redrive
generation is the replay's time in milliseconds, so neither its dedupe id
nor those of its retries collide with the original's. Events past LK_EVENTS_MAX_AGE
are counted as expired. One call replays at most REPLAY_LIMIT events and says where
to continue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from sayna_sip.common import contracts, records, topology
from sayna_sip.common.contracts import Header
from sayna_sip.common.hook import DEFAULT_ENDPOINT
from sayna_sip.common.hosts import host_token
from sayna_sip.common.logs import shorten
from sayna_sip.common.records import RouteOutcome, RouteRecord
from sayna_sip.common.streamscan import StreamReader

REPLAY_LIMIT = 500


class CannotResend(Exception):
    """Why one event cannot be delivered again."""


class NotRouted(CannotResend):
    """No record of it, or the router sent it to no hook (not_sip, unknown_host, …)."""


class NotItsEndpoint(CannotResend):
    """An endpoint the event was not routed to."""


class BodyGone(CannotResend):
    """Past LK_EVENTS_MAX_AGE (or recorded before replay): nothing to send."""


@dataclass(frozen=True)
class Replayed:
    replayed: int = 0
    expired: int = 0
    truncated: bool = False
    next_since: float | None = None


class Replayer:
    def __init__(self, js: JetStreamContext, attempts: StreamReader, limit: int = REPLAY_LIMIT):
        self._js = js
        self._attempts = attempts
        self._limit = limit

    async def routes(self, host: str, since: float, until: float | None) -> list[RouteRecord]:
        """The latest matched route record of each event of `host` in the window."""
        first = await self._attempts.seq_at(since)
        if first is None:
            return []
        last = (await self._js.stream_info(topology.SIP_ATTEMPTS)).state.last_seq
        subject = records.filter_subject(kind="route", host=host, outcome=RouteOutcome.MATCHED)
        msgs, _ = await self._attempts.range(subject, first, last, cap=self._limit * 20)
        latest: dict[str, RouteRecord] = {}
        for msg in msgs:
            try:
                rec = records.decode(msg.data)
            except records.BadRecord:
                continue
            if not isinstance(rec, RouteRecord) or rec.host != host:
                continue
            if rec.at >= since and (until is None or rec.at < until):
                latest.setdefault(rec.event_id, rec)  # the first decision is the original
        return sorted(latest.values(), key=lambda r: r.at)

    async def replay(
        self, host: str, since: float, until: float | None, endpoint: str | None = None
    ) -> Replayed:
        """One fresh copy per endpoint each event was routed to (only `endpoint`'s when
        given; a route record of the previous release names none: `default`)."""
        found = await self.routes(host, since, until)
        generation = int(time.time() * 1000)
        done = expired = 0
        for index, route in enumerate(found):
            if index >= self._limit:
                return Replayed(done, expired, truncated=True, next_since=route.at)
            targets = route.endpoints or (DEFAULT_ENDPOINT,)
            if endpoint is not None:
                targets = tuple(e for e in targets if e == endpoint)
            if not targets:
                continue
            if await self._replay_one(route, generation, targets):
                done += 1
            else:
                expired += 1
        return Replayed(done, expired)

    async def resend(
        self, event_id: str, route: RouteRecord | None, endpoint: str | None = None
    ) -> tuple[str, ...]:
        """One event again, as a replay of one: to the endpoints it was routed to, or to
        `endpoint`, one of them. Answers the endpoints it was queued for; raises
        `NotRouted`, `NotItsEndpoint` or `BodyGone` (the API and the CLI say why)."""
        if route is None or route.outcome != RouteOutcome.MATCHED:
            why = f"route {route.outcome}" if route is not None else "no routing record"
            raise NotRouted(f"event {event_id} went to no hook ({why})")
        routed = route.endpoints or (DEFAULT_ENDPOINT,)
        if endpoint is not None and endpoint not in routed:
            raise NotItsEndpoint(
                f"event {event_id} went to {', '.join(routed)}, not to endpoint {shorten(endpoint)}"
            )
        targets = (endpoint,) if endpoint is not None else routed
        if not await self._replay_one(route, int(time.time() * 1000), targets):
            raise BodyGone(f"event {event_id} is past LK_EVENTS_MAX_AGE: its body is gone")
        return targets

    async def original(self, route: RouteRecord) -> tuple[bytes, dict[str, str]] | None:
        """The event's body (what every attempt sent) and LK_EVENTS headers; None when
        it is gone (past LK_EVENTS_MAX_AGE, or a record from before replay)."""
        if route.lk_seq <= 0:  # a record from before replay: no body to read back
            return None
        try:
            raw = await self._js.get_msg(topology.LK_EVENTS, seq=route.lk_seq)
        except NotFoundError:
            return None
        stored = dict(raw.headers or {})
        if stored.get(Header.EVENT_ID) != route.event_id:
            return None  # that sequence now holds another event: the original is gone
        return raw.data or b"", stored

    async def _replay_one(
        self, route: RouteRecord, generation: int, endpoints: tuple[str, ...]
    ) -> bool:
        found = await self.original(route)
        if found is None:
            return False
        body, stored = found
        for endpoint in endpoints:
            target = host_token(route.host)
            headers = {
                Header.EVENT_ID: route.event_id,
                Header.EVENT: stored.get(Header.EVENT, route.event),
                Header.ROOM: stored.get(Header.ROOM, route.room),
                Header.HOOK: route.host,
                Header.SIP_HOST: route.sip_host,
                Header.REDRIVE: str(generation),
            }
            if endpoint != DEFAULT_ENDPOINT:
                headers[Header.ENDPOINT] = endpoint
                target = f"{target}:{endpoint}"
            headers[Header.MSG_ID] = f"{route.event_id}:{target}:g{generation}:replay"
            await self._js.publish(
                contracts.delivery_subject(route.host),
                body,
                stream=topology.SIP_DELIVERIES,
                headers=headers,
            )
        return True
