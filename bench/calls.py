"""Interleaved SIP calls for the ordering benchmark and faults (issue #30).

Each call is a LiveKit room with five webhooks in LiveKit's order: `room_started`
(host-less: the router holds it until the join names the host), `participant_joined`,
`track_published`, `participant_left`, `room_finished`. Event `i` of a run of `calls`
calls is step `i // calls` of call `i % calls`: every call's first event, then every
call's second, ... so `calls` calls are open at once and a call's events are `calls`
webhooks apart. Event ids stay `events.event_id(run, i)`, so the sink and the latency
code treat them as any bench event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench import events

CALL = ("room_started", "participant_joined", "track_published", "participant_left",
        "room_finished")  # fmt: skip
STEPS = len(CALL)
JOIN = CALL.index("participant_joined")


def call_of(i: int, calls: int) -> tuple[int, int]:
    """(call, step) of event `i`."""
    return i % calls, i // calls


def room_name(run: str, call: int) -> str:
    return f"{events.ROOM_PREFIX}{run}-c{call}"


def event_body(run: str, i: int, calls: int, host: str = events.TENANT_HOST) -> bytes:
    """Event `i` of the run as LiveKit sends it (participant events carry the SIP
    attributes the router reads the host from)."""
    call, step = call_of(i, calls)
    now = str(int(time.time()))
    name = room_name(run, call)
    event: dict[str, object] = {
        "event": CALL[step],
        "room": {"sid": f"RM_{run}_{call}", "name": name, "creationTime": now},
        "id": events.event_id(run, i),
        "createdAt": now,
    }
    if CALL[step] not in ("room_started", "room_finished"):
        event["participant"] = {
            "sid": f"PA_{run}_{call}",
            "identity": "sip_+15557654321",
            "state": "DISCONNECTED" if CALL[step] == "participant_left" else "ACTIVE",
            "kind": "SIP",
            "attributes": {
                "sip.callID": f"SCL_{run}_{call}",
                "sip.trunkID": "ST_benchtrunk",
                "sip.phoneNumber": "+15557654321",
                "sip.trunkPhoneNumber": "+15551234567",
                "sip.callStatus": "active",
                "sip.h.to": f'"Support" <sip:+15551234567@{host};user=phone>',
            },
        }
    if CALL[step] == "track_published":
        event["track"] = {"sid": f"TR_{run}_{call}", "type": "AUDIO", "source": "MICROPHONE"}
    return json.dumps(event, separators=(",", ":")).encode()


def signed_requests(run: str, count: int, calls: int, host: str, path: str) -> list[bytes]:
    out = []
    for i in range(count):
        body = event_body(run, i, calls)
        out.append(events.http_request(host, path, body, events.sign(body)))
    return out


def ready_at(sent_at: Sequence[float], i: int, calls: int) -> float:
    """When event `i` could first be delivered: its send time, or for `room_started`
    the send time of its call's join (the router holds it until the host is known),
    so both orderings' latencies count from the same moment."""
    call, step = call_of(i, calls)
    join = JOIN * calls + call
    if CALL[step] == "room_started" and join < len(sent_at):
        return max(sent_at[i], sent_at[join])
    return sent_at[i]


@dataclass(frozen=True)
class OrderCheck:
    calls: int  # calls with at least one event delivered
    out_of_order: int  # calls whose events first arrived out of their LiveKit order
    gaps: int  # calls whose Sayna-Call-Seqs, in LiveKit's order, are not 1, 2, ... n
    example: str  # one out-of-order call's steps as they arrived, for the log


def check_order(
    run: str,
    count: int,
    calls: int,
    arrivals: Mapping[str, float],
    seqs: Mapping[str, int] | None = None,
) -> OrderCheck:
    """Per call, were the first arrivals in LiveKit's order (and numbered 1.. n)?"""
    by_call: dict[int, list[tuple[float, int, str]]] = {}
    for i in range(count):
        event_id = events.event_id(run, i)
        if event_id in arrivals:
            call, step = call_of(i, calls)
            by_call.setdefault(call, []).append((arrivals[event_id], step, event_id))
    disordered = gaps = 0
    example = ""
    for got in by_call.values():
        got.sort()
        steps = [s for _, s, _ in got]
        if steps != sorted(steps):
            disordered += 1
            example = example or ",".join(CALL[s] for s in steps)
        if seqs is not None:  # numbered 1.. n in LiveKit's order, whatever the arrival order
            numbers = [seqs.get(e, 0) for _, e in sorted((s, e) for _, s, e in got)]
            if numbers != list(range(1, len(numbers) + 1)):
                gaps += 1
    return OrderCheck(len(by_call), disordered, gaps, example)
