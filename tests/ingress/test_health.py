"""/healthz, /readyz, /metrics, /schema, and the start-up checks."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.topology import TopologyError
from sayna_sip.ingress.main import main
from tests.fixtures.livekit import signed_webhook, sip_event
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import Client, ingress_config, serve

STANDARD_METRICS = ("process_cpu_seconds_total", "process_resident_memory_bytes",
                    "python_info", "python_gc_objects_collected_total")  # fmt: skip


async def test_healthz_and_readyz(ingress: Client, jetstream: JetStreamContext) -> None:
    assert (await ingress.get("/healthz")).json() == {"status": "ok"}
    assert (await ingress.get("/readyz")).json() == {"status": "ready"}
    await jetstream.delete_stream(topology.SIP_DEAD)
    r = await ingress.get("/readyz")
    assert (r.status_code, r.json()["error"]) == (503, "topology_missing")
    assert "SIP_DEAD" in r.json()["message"]


async def test_start_fails_when_the_topology_is_missing(
    nats_server: NatsServer, nats_client: Nats
) -> None:
    with pytest.raises(BaseException) as failure:  # the test client wraps it in a group
        async with serve(ingress_config(nats_server.url)):
            pass
    errors = [failure.value]
    while isinstance(errors[-1], BaseExceptionGroup):
        errors.append(errors[-1].exceptions[0])
    assert isinstance(errors[-1], TopologyError)
    assert "sayna-sip provision" in str(errors[-1])


async def test_metrics_count_webhooks_and_publish_latency(ingress: Client) -> None:
    body, headers = signed_webhook(sip_event(event="participant_left"))
    await ingress.post("/livekit/webhook", content=body, headers=headers)
    await ingress.post("/livekit/webhook", content=body + b"x", headers=headers)
    r = await ingress.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'sayna_sip_ingress_webhooks_total{event="participant_left",outcome="stored"} 1.0' in text
    assert 'sayna_sip_ingress_webhooks_total{event="unknown",outcome="hash_mismatch"} 1.0' in text
    assert "sayna_sip_ingress_publish_seconds_count 1.0" in text
    (took,) = [
        ln for ln in text.splitlines() if ln.startswith("sayna_sip_ingress_publish_seconds_sum")
    ]
    assert 0 < float(took.split()[-1]) < 5.0  # seconds, from the publish to its PubAck
    # A signed event without a name is counted (and stored) under "unknown".
    nameless, headers = signed_webhook({"id": "EV_nameless"})
    assert (
        await ingress.post("/livekit/webhook", content=nameless, headers=headers)
    ).status_code == 200
    text = (await ingress.get("/metrics")).text
    assert 'sayna_sip_ingress_webhooks_total{event="unknown",outcome="stored"} 1.0' in text
    for standard in STANDARD_METRICS:  # prometheus-client's collectors, as documented
        assert standard in text, standard


async def test_schema_documents_every_route_body_and_error(ingress: Client) -> None:
    spec = (await ingress.get("/schema/openapi.json")).json()
    paths = spec["paths"]
    expected = {
        ("/livekit/webhook", "post"): {"200", "400", "401", "413", "503"},
        ("/sip/hooks", "get"): {"200", "401", "403", "503"},
        ("/sip/hooks", "post"): {"200", "400", "401", "403", "409", "415", "503"},
        ("/sip/hooks", "delete"): {"200", "400", "401", "403", "409", "415", "503"},
        ("/healthz", "get"): {"200", "503"},
        ("/readyz", "get"): {"200", "503"},
        ("/metrics", "get"): {"200"},
    }
    for (path, method), statuses in expected.items():
        assert set(paths[path][method]["responses"]) == statuses, (path, method)
    for path, method in [
        ("/livekit/webhook", "post"),
        ("/sip/hooks", "post"),
        ("/sip/hooks", "delete"),
    ]:
        assert paths[path][method]["requestBody"]["required"] is True
    schemas = spec["components"]["schemas"]
    assert {"ErrorBody", "HooksUpsert", "HostsDelete", "HookList", "HookDeleteResult"} <= set(
        schemas
    )
    # Lists and hosts must be non-empty, and say so (issue #19, item 7).
    assert schemas["HooksUpsert"]["properties"]["hooks"]["minItems"] == 1
    assert schemas["HostsDelete"]["properties"]["hosts"]["minItems"] == 1
    assert schemas["HookEntry"]["properties"]["host"]["minLength"] == 1
    assert schemas["HookEntry"]["properties"]["url"]["maxLength"] == 2048
    assert set(schemas["ErrorBody"]["required"]) == {"error", "message"}


def test_main_rejects_an_invalid_config_file(tmp_path: pytest.TempPathFactory) -> None:
    bad = tmp_path / "bad.yaml"  # type: ignore[operator]
    bad.write_text("sip:\n  allowed_addresses: ['10.0.0.1']\n")
    assert main(["--config", str(bad)]) == 2
