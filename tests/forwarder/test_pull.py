"""The forwarder's continuous pull (pull.py): requests the server ends or drops are asked
for again, so deliveries never stall behind pull requests that no longer exist."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.forwarder.pull import Puller
from tests.fixtures.https_sink import HttpsSink
from tests.fixtures.nats import apply_topology
from tests.forwarder.conftest import FAST, StartForwarder, drained, publish, put_hook

HOST = "pull.example.com"


async def test_deliveries_go_on_after_the_open_requests_expired(
    https_sink: HttpsSink, jetstream: JetStreamContext, start_forwarder: StartForwarder
) -> None:
    # A quiet tenant: the requests the forwarder keeps open expire on the server (408)
    # several times before the next event; it must have asked again each time.
    await put_hook(jetstream, HOST, https_sink.url("/quiet"))
    tuning = dataclasses.replace(FAST, pull_expires=0.3, pull_heartbeat=0.1)
    fwd = await start_forwarder(tuning)
    await publish(jetstream, HOST)
    await https_sink.wait_for(1, "/quiet")
    await asyncio.sleep(0.7)  # the quiet time itself: two expiries
    assert fwd.worker.puller.credits > 0  # asked again after each expiry
    await publish(jetstream, HOST)
    # At once: silent requests are taken as lost only 1.2 s after the last word (0.3 s).
    async with asyncio.timeout(0.7):
        await https_sink.wait_for(2, "/quiet")


async def test_a_deleted_then_reprovisioned_consumer_is_pulled_from_again(
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    start_forwarder: StartForwarder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await put_hook(jetstream, HOST, https_sink.url("/again"))
    await start_forwarder()
    await publish(jetstream, HOST)
    await https_sink.wait_for(1, "/again")

    caplog.set_level(logging.WARNING, "sayna_sip.forwarder")
    await jetstream.delete_consumer(topology.SIP_DELIVERIES, topology.FORWARDER_CONSUMER)
    await publish(jetstream, HOST)  # stored; nobody can pull it until the consumer is back
    await asyncio.sleep(2.5)  # the forwarder keeps asking, a bounded retry
    refused = [r for r in caplog.records if "event=pull_refused" in r.getMessage()]
    assert 1 <= len(refused) <= 4, [r.getMessage() for r in refused]  # not a flood

    await apply_topology(jetstream)  # `sayna-sip provision` again
    async with asyncio.timeout(5):
        await https_sink.wait_for(2, "/again")
    await drained(jetstream)


async def test_requests_that_go_silent_are_forgotten_and_asked_for_again(
    nats_client: Client,
) -> None:
    # A request the server drops without a word (a consumer leader change on a cluster)
    # sends no status and no heartbeats. A subscriber that swallows requests stands for
    # that server; without forgetting them the credits never come back and deliveries
    # stall until a reconnect.
    stream, durable = "SILENT", "gone"
    asked: asyncio.Queue[Msg] = asyncio.Queue()
    await nats_client.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}", cb=asked.put)
    changed: list[None] = []

    async def on_message(msg: Msg) -> None:
        raise AssertionError("nothing can arrive here")

    heartbeat = 0.1
    puller = Puller(nats_client, stream, durable, on_message, lambda: changed.append(None),
                    expires=30.0, heartbeat=heartbeat)  # fmt: skip
    await puller.start()
    assert await puller.request(5)
    request = json.loads((await asyncio.wait_for(asked.get(), 5)).data)
    assert request["idle_heartbeat"] == int(heartbeat * 1e9)  # what silence is judged by

    asked_at = time.monotonic()
    puller.check_alive(asked_at + 2 * heartbeat)  # a late heartbeat or two: still there
    assert puller.credits == 5 and not changed
    puller.check_alive(asked_at + 2 * heartbeat + 1.1)  # silent for longer: gone
    assert puller.credits == 0 and changed  # the worker is woken to ask again
    assert await puller.request(5)
    assert json.loads((await asyncio.wait_for(asked.get(), 5)).data)["batch"] == 5
