"""The forwarder's health, readiness and Prometheus endpoints, and its quiet start when
SIP is disabled."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.topology import TopologyError
from sayna_sip.forwarder.app import Forwarder
from sayna_sip.forwarder.idle import IdleForwarder
from sayna_sip.forwarder.main import serve
from tests.fixtures.https_sink import HttpsSink, Reply
from tests.fixtures.nats import NatsServer
from tests.forwarder.conftest import (
    FAST,
    StartForwarder,
    drained,
    forwarder_env,
    publish,
    put_hook,
    wait_dead,
)

STANDARD_METRICS = ("process_cpu_seconds_total", "process_resident_memory_bytes",
                    "python_info", "python_gc_objects_collected_total")  # fmt: skip


async def test_health_ready_and_metrics(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    https_sink.program("/m", Reply(500), Reply(410))
    await put_hook(jetstream, "m.example.com", https_sink.url("/m"))
    await put_hook(jetstream, "ok.example.com", https_sink.url("/ok"))
    fwd = await start_forwarder()
    await publish(jetstream, "m.example.com")
    await publish(jetstream, "ok.example.com")
    await wait_dead(jetstream, 1)
    await https_sink.wait_for(1, "/ok")
    await drained(jetstream)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{fwd.port}") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        text = (await client.get("/metrics")).text
    for standard in STANDARD_METRICS:  # prometheus-client's collectors, as documented
        assert standard in text, standard
    m = 'host="m.example.com"'
    for line in (
        f'sayna_sip_forwarder_attempts_total{{{m},outcome="status",status="500"}} 1.0',
        f'sayna_sip_forwarder_attempts_total{{{m},outcome="status",status="410"}} 1.0',
        'attempts_total{host="ok.example.com",outcome="delivered",status="200"} 1.0',
        f"sayna_sip_forwarder_retries_scheduled_total{{{m}}} 1.0",
        f'sayna_sip_forwarder_dead_letters_total{{{m},reason="gone"}} 1.0',
        "sayna_sip_forwarder_delivery_latency_seconds_count 1.0",
        "sayna_sip_forwarder_in_flight 0.0",
    ):
        assert line in text


async def test_sip_off_idles_ready_without_any_topology_and_quiet(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    # SIP off: the provisioner creates nothing of the delivery path, so there is none here.
    config = ServerConfig.from_env({"NATS_URL": nats_server.url, "FORWARDER_PORT": "0"})
    with caplog.at_level(logging.DEBUG, logger="sayna_sip"):
        idle = await IdleForwarder.start(config)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{idle.port}") as client:
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert (await client.get("/healthz")).status_code == 200
        finally:
            await idle.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if "sip" in r.getMessage().replace("sayna_sip", "")]


async def test_missing_consumer_fails_start_instead_of_ready_and_idle(
    nats_server: NatsServer, jetstream: JetStreamContext, https_sink: HttpsSink
) -> None:
    await jetstream.delete_consumer(topology.SIP_DELIVERIES, topology.FORWARDER_CONSUMER)
    config = ServerConfig.from_env(forwarder_env(nats_server.url, https_sink))
    with pytest.raises(TopologyError) as raised:
        await Forwarder.start(config, FAST)
    assert f"consumer {topology.FORWARDER_CONSUMER}" in str(raised.value)
    assert "run `sayna-sip provision`" in str(raised.value)
    with pytest.raises(TopologyError):  # service_main's to log and exit 1 with
        await serve(config)


async def test_a_connection_closed_by_the_server_fails_liveness(
    start_forwarder: StartForwarder,
) -> None:
    fwd = await start_forwarder()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{fwd.port}") as client:
        assert (await client.get("/healthz")).status_code == 200
        # nats-py checks only the payload against max_payload; the server counts headers.
        await fwd.nc.publish("x", b"", headers={"pad": "x" * ((1 << 20) + 1)})
        async with asyncio.timeout(10):
            while not fwd.nc.is_closed:  # noqa: ASYNC110  # nats-py has no event for it
                await asyncio.sleep(0.02)
        r = await client.get("/healthz")
        assert r.status_code == 503 and b"nats_closed" in r.content
