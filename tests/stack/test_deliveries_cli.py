"""`sayna-sip deliveries show|list`: an operator's view of the records, on a real NATS."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from sayna_sip.cli import deliveries
from sayna_sip.common import records
from sayna_sip.common.records import AttemptRecord, RouteRecord
from tests.fixtures.nats import NatsServer, apply_topology


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
