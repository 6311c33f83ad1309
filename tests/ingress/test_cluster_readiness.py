"""/readyz on a real 3-node JetStream cluster: what a load balancer in front of the
ingress would see. A stream leader change is ridden through (webhooks are stored late,
never refused), so the ingress stays ready; once no stream can have a leader (two of
three nodes gone) storing is impossible and /readyz says 503."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import pytest
from nats.aio.client import Client

from bench.cluster import NatsCluster
from sayna_sip.common import topology
from tests.fixtures.livekit import signed_webhook, sip_event
from tests.fixtures.nats import apply_topology
from tests.ingress.conftest import ingress_config, serve_http, wait_until

URL = "/livekit/webhook"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    (tmp_path / "logs").mkdir()
    nodes = NatsCluster(tmp_path / "cluster", tmp_path / "logs")
    try:
        await asyncio.to_thread(nodes.start)
        yield nodes
    finally:
        nodes.close()


async def _quiet(_: Exception) -> None:
    """The test's own connection: a killed node's refusals are expected."""


@pytest.fixture
async def cluster_client(cluster: NatsCluster) -> AsyncIterator[Client]:
    nc = await nats.connect(
        cluster.url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=_quiet
    )
    yield nc
    await nc.close()


class Watch:
    """Webhooks sent back to back and /readyz polled, both until `stop`."""

    def __init__(self, client: httpx.AsyncClient, run: str) -> None:
        self.client, self.run = client, run
        self.webhooks: list[int] = []
        self.readyz: list[int] = []
        self.polled: list[tuple[float, float]] = []  # each /readyz call's (start, end)
        self.stop = asyncio.Event()
        self._ids = itertools.count()

    async def send(self) -> None:
        while not self.stop.is_set():
            body, headers = signed_webhook(sip_event(event_id=f"EV_{self.run}_{next(self._ids)}"))
            self.webhooks.append(
                (await self.client.post(URL, content=body, headers=headers)).status_code
            )

    async def poll(self) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            self.readyz.append((await self.client.get("/readyz")).status_code)
            self.polled.append((start, time.monotonic()))
            await asyncio.sleep(0.1)  # a load balancer's check interval, shortened


@pytest.mark.serial  # timing under load: alone, after the parallel pass
async def test_readyz_stays_200_through_a_leader_change_and_is_503_once_nothing_can_be_stored(
    cluster: NatsCluster, cluster_client: Client
) -> None:
    config = ingress_config(cluster.url, NATS_REPLICAS="3")
    js = cluster_client.jetstream(timeout=5.0)
    await apply_topology(js, config)
    # `steady` has the default store budget (10 s); `short` a 1.5 s one, to see the 503 soon.
    async with serve_http(config) as steady, serve_http(config, publish_budget=1.5) as short:
        watch = Watch(steady, "a")
        tasks = [asyncio.create_task(watch.send()), asyncio.create_task(watch.poll())]
        await wait_until(lambda: _answered(watch, 5))
        leader = await cluster.leader(topology.LK_EVENTS)
        killed = time.monotonic()
        await asyncio.to_thread(cluster.kill, leader)
        assert await cluster.leader(topology.LK_EVENTS) != leader
        elected = time.monotonic()
        stored = len(watch.webhooks)
        await wait_until(lambda: _answered(watch, stored + 5), timeout=20)  # stored again
        watch.stop.set()
        await asyncio.gather(*tasks)
        assert set(watch.webhooks) == {200}, watch.webhooks
        # It was asked during the election (a call there may take READY_TIMEOUT_S, so count
        # the calls that overlap it, not the calls made).
        assert any(start < elected and end > killed for start, end in watch.polled)
        assert set(watch.readyz) == {200}, watch.readyz
        info = await js.stream_info(topology.LK_EVENTS)
        assert info.state.messages == len(watch.webhooks)  # every 200 was stored, once

        # Two of three nodes gone: no stream can elect a leader, nothing can be stored.
        await asyncio.to_thread(
            cluster.kill, next(n.name for n in cluster.nodes if n.name != leader)
        )
        await wait_until(lambda: _status(short, "/readyz", 503), timeout=15)
        body, headers = signed_webhook(sip_event(event_id="EV_refused"))
        refused = await short.post(URL, content=body, headers=headers)
        assert (refused.status_code, refused.json()["error"]) == (503, "nats_unavailable")
        ready = await short.get("/readyz")
        assert (ready.status_code, ready.json()["error"]) == (503, "nats_unavailable")


async def _answered(watch: Watch, count: int) -> bool:
    return len(watch.webhooks) >= count


async def _status(client: httpx.AsyncClient, path: str, status: int) -> bool:
    return (await client.get(path)).status_code == status
