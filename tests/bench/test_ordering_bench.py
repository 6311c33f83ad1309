"""The ordering benchmark's and fault suite's pure parts (bench/calls.py, bench/ordering.py,
the sink's refusals): interleaved calls as LiveKit sends them, and an order check that
catches what the issue saw (a retried join after the events that followed it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from bench import calls, events, faults, order_faults, ordering, report
from bench.baselines import to_host
from bench.sink import Recorder
from bench.traffic import RETRY_PAUSE


def test_interleaved_calls_send_every_calls_first_event_then_every_second() -> None:
    bodies = [json.loads(calls.event_body("r", i, 3)) for i in range(15)]
    assert [b["event"] for b in bodies[:4]] == ["room_started"] * 3 + ["participant_joined"]
    assert [b["room"]["name"] for b in bodies[:4]] == [
        "sip-r-c0",
        "sip-r-c1",
        "sip-r-c2",
        "sip-r-c0",
    ]
    assert [b["event"] for b in bodies[1::3]] == list(calls.CALL)  # call 1, in LiveKit's order
    assert all(b["id"] == events.event_id("r", i) for i, b in enumerate(bodies))
    # room_started and room_finished carry no participant: the router learns the host
    # from the join (and holds room_started until then).
    assert "participant" not in bodies[0] and "participant" not in bodies[12]
    attrs = bodies[3]["participant"]["attributes"]
    assert to_host(attrs["sip.h.to"]) == events.TENANT_HOST


def test_a_held_room_started_counts_its_latency_from_its_calls_join() -> None:
    sent = [float(i) for i in range(10)]  # 2 calls x 5 events, one a second
    assert calls.ready_at(sent, 0, 2) == 2.0  # call 0's room_started: its join at index 2
    assert calls.ready_at(sent, 3, 2) == 3.0  # call 1's join itself
    assert calls.ready_at(sent, 9, 2) == 9.0


def _arrivals(order: dict[int, list[int]], n_calls: int) -> dict[str, float]:
    """Arrival times making call c's steps arrive in order[c]."""
    out: dict[str, float] = {}
    for call, steps in order.items():
        for rank, step in enumerate(steps):
            out[events.event_id("r", step * n_calls + call)] = call * 10 + rank
    return out


def test_the_order_check_finds_the_issues_retried_join_and_numbering_gaps() -> None:
    fine = [0, 1, 2, 3, 4]
    retried = [0, 2, 3, 1, 4]  # track_published, participant_left before the join
    got = calls.check_order("r", 10, 2, _arrivals({0: fine, 1: retried}, 2))
    assert (got.calls, got.out_of_order) == (2, 1)
    assert (
        got.example
        == "room_started,track_published,participant_left,participant_joined,room_finished"
    )
    arrivals = _arrivals({0: fine, 1: fine}, 2)
    seqs = {e: 1 + int(e.rsplit("_", 1)[1]) // 2 for e in arrivals}
    assert calls.check_order("r", 10, 2, arrivals, seqs).gaps == 0
    seqs[events.event_id("r", 5)] = 7
    assert calls.check_order("r", 10, 2, arrivals, seqs).gaps == 1
    # Numbers that swapped with their events: 1..5, but not in LiveKit's order.
    seqs[events.event_id("r", 5)], seqs[events.event_id("r", 7)] = 4, 3
    assert calls.check_order("r", 10, 2, arrivals, seqs).gaps == 1


def test_the_sink_refuses_a_listed_event_once_and_keeps_each_first_call_seq() -> None:
    rec = Recorder()
    rec.fail_once.add("a")
    assert not rec.record("a", 1.0, 2)  # 500: not an arrival
    assert rec.record("a", 2.0, 2) and rec.record("a", 3.0, 2)
    assert rec.arrivals == {"a": 2.0} and rec.seqs == {"a": 2}
    assert rec.stats() == {"count": 1, "requests": 3, "duplicates": 1, "refused": 1}


def _row(mode: str, rate: int, p99: float, **extra: object) -> dict[str, object]:
    return {"ordering": mode, "offered_rate": rate, "e2e": {"p50_ms": 1.0, "p99_ms": p99},
            "delivered": 10, "lost": 0, "cpu_us_per_event": 900, "nats_msgs_per_event": 9.5,
            "calls_out_of_order": 0, **extra}  # fmt: skip


def test_ordering_ratios_put_ordered_over_unordered_and_the_report_shows_them() -> None:
    drain = [{"ordering": m, "forwarders": 2, "rate": r, "delivered": 10, "cpu_us_per_event": 1,
              "nats_msgs_per_event": 1.0, "calls_out_of_order": 0}
             for m, r in (("call", 450.0), ("none", 500.0))]  # fmt: skip
    part: dict[str, Any] = {"e2e": [_row("call", 200, 60.0), _row("none", 200, 50.0)]}
    part["drain"] = drain
    part["ratios"] = ordering.ratios(part)
    assert part["ratios"] == {"p99": {"200": 1.2}, "deliveries_per_s": {"2": 0.9}}
    part["calls"] = 5
    lines = report._ordering({"ordering": part})
    assert lines[0].startswith("6. Ordered delivery per call: 5 concurrent calls")
    assert any("1.2x p99" in line for line in lines) and any("0.9x dlv/s" in line for line in lines)


def test_the_fault_suite_fails_on_a_disordered_call_only_where_order_is_promised() -> None:
    rows = [
        {"scenario": "order test (ordering: none)", "ordering": "none", "calls": 40,
         "calls_out_of_order": 30, "calls_with_gaps": 30, "duplicates": 0,
         "healthy_p99_ms": 5, "example": "x"},
        {"scenario": "SIGKILL forwarder-1", "calls": 60, "calls_out_of_order": 0,
         "calls_with_gaps": 0, "duplicates": 3, "healthy_p99_ms": 5, "example": ""},
    ]  # fmt: skip
    assert faults.disordered_calls(rows) == 0
    rows[1]["calls_out_of_order"] = 1
    assert faults.disordered_calls(rows) == 1
    assert "SIGKILL forwarder-1" in faults.order_table(rows)


async def test_a_calls_next_webhook_waits_for_the_previous_one_to_be_answered() -> None:
    # As LiveKit: a join refused once (503) is retried before the call's next webhook
    # goes, so what the ingress stores is in the call's order. Sent independently, the
    # call's later events would pass the retried join (the fault suite saw that).
    got: list[str] = []
    refused: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            await answer(reader, writer)
        writer.close()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            event = json.loads(await reader.readexactly(length))["event"]
            status = 200
            if event == "participant_joined" and not refused:
                refused.append(event)
                status = 503
            else:
                got.append(event)
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    traffic = order_faults.CallTraffic("r", (events.TENANT_HOST,), 200.0, 5, n_calls=1)
    try:
        await traffic.send(port)
    finally:
        server.close()
        await server.wait_closed()
    assert refused and got == list(calls.CALL)
    assert traffic.sent_at[2] - traffic.sent_at[1] >= RETRY_PAUSE  # after the retried join
