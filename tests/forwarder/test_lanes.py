"""One endpoint never slows another of the same host: a black-hole endpoint (requests that
hang until the timeout) beside a healthy sibling, measured like the black-hole fault: the
sibling's p99 stays within 2x of a host with one endpoint."""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.js import JetStreamContext

from sayna_sip.common import hookstore, topology
from sayna_sip.common.contracts import Header
from sayna_sip.common.hook import EndpointEntry, HookEntry
from tests.fixtures.https_sink import HttpsSink, Reply
from tests.forwarder.conftest import StartForwarder, publish

EVENTS = 20


async def _hook(js: JetStreamContext, entry: HookEntry) -> None:
    kv = await js.key_value(topology.HOOKS_BUCKET)
    hook = hookstore.record(entry, "runtime", None, None)
    await kv.put(hook.key, hook.encode())


async def _p99(js: JetStreamContext, sink: HttpsSink, host: str, path: str, hole: bool) -> float:
    """Latency (publish to arrival) of EVENTS events to `path`, one every 20 ms; with
    `hole`, each is followed by one to the black-hole endpoint."""
    sent: dict[str, float] = {}
    for _ in range(EVENTS):
        started = time.time()
        event_id, _ = await publish(js, host)
        sent[event_id] = started
        if hole:
            await publish(js, host, headers_extra={Header.ENDPOINT: "hole"})
        await asyncio.sleep(0.02)
    got = await sink.wait_for(EVENTS, path, timeout=20)
    latencies = sorted(r.at - sent[r.headers["webhook-id"]] for r in got)
    return latencies[int(0.99 * (len(latencies) - 1))]


@pytest.mark.serial  # timed against the wall clock: alone, after the parallel pass
async def test_a_black_hole_endpoint_does_not_slow_its_sibling(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    https_sink.program("/hole", then=Reply(hang=True))
    await _hook(jetstream, HookEntry(host="one.example.com", url=https_sink.url("/one")))
    await _hook(
        jetstream,
        HookEntry(
            host="two.example.com",
            url=https_sink.url("/two"),
            endpoints=(EndpointEntry(id="hole", url=https_sink.url("/hole")),),
        ),
    )
    # A cap of 2 per lane: were the lane the host, the hanging requests would fill it.
    await start_forwarder(FORWARDER_HOST_CONCURRENCY="2", FORWARDER_TIMEOUT="5")
    baseline = await _p99(jetstream, https_sink, "one.example.com", "/one", hole=False)
    beside_hole = await _p99(jetstream, https_sink, "two.example.com", "/two", hole=True)
    assert len(https_sink.received("/hole")) >= 2  # the hole was busy meanwhile
    assert beside_hole <= max(2 * baseline, baseline + 0.1), (baseline, beside_hole)
    https_sink.release()
