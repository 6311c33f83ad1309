"""What `make compose-test` counts against the duplicates a tenant saw (tests/compose/cluster.py),
on a real nats-server's /jsz: a duplicate passes only when JetStream handed the copy over again."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from sayna_sip.common import contracts, topology
from tests.compose import cluster
from tests.fixtures.nats import NatsServer, apply_topology


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "js", monitor=_free_port())
    server.start()
    yield server
    server.stop()


def _jsz(server: NatsServer) -> dict[str, Any]:
    url = f"http://127.0.0.1:{server.monitor}/jsz?accounts=true&streams=true&consumers=true"
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


async def test_a_redelivery_still_counts_once_it_was_acked(monitored: NatsServer) -> None:
    nc = await nats.connect(monitored.url)
    try:
        js = nc.jetstream()
        await apply_topology(js)
        for n in range(2):
            await js.publish(contracts.delivery_subject("a.example"), b"{}", headers={"n": str(n)})
        sub = await js.pull_subscribe_bind("forwarders", stream=topology.SIP_DELIVERIES)
        first, second = await sub.fetch(2, timeout=5)
        await first.ack_sync()
        await second.nak()  # its ack was lost, say: JetStream hands it over again
        (again,) = await sub.fetch(1, timeout=5)
        assert again.metadata.num_delivered == 2
        await again.ack_sync()
    finally:
        await nc.close()
    jsz = _jsz(monitored)
    # JetStream's own figure forgets a redelivery once it is acked...
    assert cluster.consumer(jsz, "forwarders")["num_redelivered"] == 0
    assert cluster.redeliveries(jsz, ("forwarders",)) == 1  # ...this count does not


def _report(tmp: Path, jsz: dict[str, Any], repeats: int, metrics: str) -> int:
    (tmp / "ids").write_text("e1\ne2\n")
    lines = ["delivery webhook-id=e1 room=r signature=verified"] * (1 + repeats)
    (tmp / "sink.log").write_text("\n".join([*lines, "delivery webhook-id=e2 signature=verified"]))
    return cluster.report(tmp / "ids", tmp / "sink.log", jsz, "", "", metrics)


def test_a_duplicate_fails_the_run_unless_jetstream_handed_the_copy_over_again(
    tmp_path: Path,
) -> None:
    def jsz(handed: int, stored: int = 2) -> dict[str, Any]:  # 2 events, 2 or more copies
        consumers = [{"name": "forwarders", "delivered": {"consumer_seq": handed}}]
        copies = {"name": "SIP_DELIVERIES", "state": {"last_seq": stored},
                  "consumer_detail": consumers}  # fmt: skip
        routers = [
            {"name": n, "delivered": {"consumer_seq": int(i < 2)}}  # each event routed once
            for i, n in enumerate(cluster.ROUTER_CONSUMERS)
        ]
        events = {"name": "LK_EVENTS", "state": {"last_seq": 2}, "consumer_detail": routers}
        return {"account_details": [{"stream_detail": [copies, events]}]}

    assert _report(tmp_path, jsz(2), 0, "") == 0
    assert _report(tmp_path, jsz(2), 1, "") == 1  # a POST that no handover explains
    assert _report(tmp_path, jsz(3), 1, "") == 0  # a redelivery (an ack lost)
    assert _report(tmp_path, jsz(3, stored=3), 1, "") == 0  # a retry: a further copy
    assert _report(tmp_path, jsz(4, stored=3), 2, "") == 0
    assert _report(tmp_path, jsz(4, stored=3), 3, "") == 1
