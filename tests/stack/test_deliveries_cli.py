"""`sayna-sip deliveries show|list`: an operator's view of the records, on a real NATS."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import nats
import pytest

from sayna_sip.cli import deliveries
from sayna_sip.common import contracts, records, topology, upstate
from sayna_sip.common.contracts import Header
from sayna_sip.common.records import AttemptRecord, RouteRecord
from tests.fixtures.nats import NatsServer, apply_topology
from tests.stack.test_up import CLI, Proc


async def _fill(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await apply_topology(js)
    now = time.time()
    recs: list[records.Record] = [
        RouteRecord(event_id="EV_1", event="participant_joined", room="sip-1",
                    outcome="matched", at=now, host="a.io", sip_host="pbx.a.io"),
        AttemptRecord(event_id="EV_1", host="a.io", attempt=1, outcome="failed",
                      started_at=now, status=503, error="HTTP 503", response="busy"),
        AttemptRecord(event_id="EV_1", host="a.io", attempt=2, outcome="dead",
                      started_at=now + 1, status=410, error="HTTP 410", reason="gone"),
        AttemptRecord(event_id="EV_2", host="b.io", attempt=1, outcome="delivered",
                      started_at=now + 2, status=200),
    ]  # fmt: skip
    for rec in recs:
        await js.publish(records.subject(rec), records.encode(rec))
    await nc.close()


def test_show_and_list_print_what_happened(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NATS_URL", nats_server.url)
    asyncio.run(_fill(nats_server.url))

    assert deliveries.main(["show", "EV_1"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "matched" in shown[1] and "a.io" in shown[1]
    assert "#1" in shown[2] and "503" in shown[2] and "failed" in shown[2]
    assert "'busy'" in shown[3]
    assert "#2" in shown[4] and "410" in shown[4] and "dead" in shown[4]

    assert deliveries.main(["list", "--outcome", "delivered"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and "EV_2" in listed[0] and "b.io" in listed[0]

    assert deliveries.main(["show", "EV_none"]) == 1
    assert "no delivery record of event EV_none" in capsys.readouterr().err
    assert deliveries.main(["list", "--since", "soon"]) == 2


async def _attempt(url: str, event_id: str) -> None:
    nc = await nats.connect(url)
    rec = AttemptRecord(event_id=event_id, host="a.io", attempt=1, outcome="delivered",
                        started_at=time.time(), status=200)  # fmt: skip
    await nc.publish(records.subject(rec), records.encode(rec))
    await nc.flush()  # on the server before the connection closes
    await nc.close()


async def test_tail_follows_the_up_running_here_across_a_restart_and_says_when_it_lost_it(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    # Before: a tail whose `up` stopped went quiet without a word, and never found the
    # restarted one on its new port.
    data = tmp_path / "data"
    data.mkdir()
    upstate.write(data, upstate.UpState(os.getpid(), nats_server.url, "http://127.0.0.1:9"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "SIP_"))}
    tail = await Proc.start(["deliveries", "tail", "--data-dir", str(data)], env)
    second = NatsServer(tmp_path / "second")
    try:
        await tail.wait_for(r"^waiting for attempts")
        await _attempt(nats_server.url, "EV_before")
        await tail.wait_for(r"a\.io +EV_before +#1 +200 .* delivered")

        (data / "up.json").unlink()  # that `up` stopped
        nats_server.stop()
        await tail.wait_for(r"^lost the stack: the `sayna-sip up` running here stopped")

        second.start()  # a new `up`, its NATS on another port
        upstate.write(data, upstate.UpState(os.getpid(), second.url, "http://127.0.0.1:9"))
        await tail.wait_for(
            rf"^stack back: following the new `sayna-sip up` here \(NATS at {second.url}\)"
        )
        await _attempt(second.url, "EV_after")
        await tail.wait_for(r"a\.io +EV_after +#1 +200 .* delivered")
    finally:
        await tail.stop()
        second.stop()


async def test_a_listing_piped_into_head_stops_without_a_traceback(
    nats_server: NatsServer,
) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await apply_topology(js)
    now = time.time()
    for i in range(400):  # more than a pipe holds, so the writer is still writing
        rec = AttemptRecord(event_id=f"EV_{i:04}_{'x' * 200}", host="a.io", attempt=1,
                            outcome="delivered", started_at=now, status=200)  # fmt: skip
        await js.publish(records.subject(rec), records.encode(rec))
    await nc.close()
    env = {**os.environ, "NATS_URL": nats_server.url}
    proc = await asyncio.create_subprocess_exec(
        *CLI, "deliveries", "list", "--limit", "400", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert await proc.stdout.readline()  # `head -1`: one line, then the pipe closes
    proc._transport.get_pipe_transport(1).close()  # type: ignore[attr-defined]
    err = await asyncio.wait_for(proc.stderr.read(), 30)
    assert await proc.wait() == 0
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()


async def _routed_event(url: str, event_id: str) -> bytes:
    """An event as the ingress stored it and the router's matched route record of it."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await apply_topology(js)
    body = b'{"event":"participant_joined","id":"%s"}' % event_id.encode()
    headers = {Header.EVENT_ID: event_id, Header.EVENT: "participant_joined", Header.ROOM: "r"}
    ack = await js.publish(contracts.lk_event_subject("participant_joined", "r"), body,
                           headers=headers)  # fmt: skip
    route = RouteRecord(event_id=event_id, event="participant_joined", room="r",
                        outcome="matched", at=time.time(), host="a.io", sip_host="a.io",
                        lk_seq=ack.seq)  # fmt: skip
    await js.publish(records.subject(route), records.encode(route))
    await nc.close()
    return body


def test_resend_queues_the_event_again_with_its_id(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NATS_URL", nats_server.url)
    body = asyncio.run(_routed_event(nats_server.url, "EV_R"))

    assert deliveries.main(["resend", "EV_R"]) == 0
    assert capsys.readouterr().out.strip() == "resent event EV_R to a.io (default)"
    assert deliveries.main(["resend", "EV_none"]) == 1
    assert "event EV_none went to no hook (no routing record)" in capsys.readouterr().err
    assert deliveries.main(["resend", "EV_R", "--endpoint", "crm"]) == 1  # not one of its own
    assert "event EV_R went to default, not to endpoint crm" in capsys.readouterr().err

    async def queued() -> list[tuple[bytes, dict[str, str]]]:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        last = (await js.stream_info(topology.SIP_DELIVERIES)).state.last_seq
        out = []
        for seq in range(1, last + 1):
            msg = await js.get_msg(topology.SIP_DELIVERIES, seq)
            out.append((msg.data or b"", dict(msg.headers or {})))
        await nc.close()
        return out

    ((data, headers),) = asyncio.run(queued())
    assert data == body and headers[Header.EVENT_ID] == "EV_R" and headers[Header.HOOK] == "a.io"
    assert int(headers[Header.REDRIVE]) > 0  # a fresh copy: not deduplicated as the first
