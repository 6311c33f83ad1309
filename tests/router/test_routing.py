"""The router against a real nats-server: events published as the ingress does them."""

from __future__ import annotations

import logging

import httpx
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from sayna_sip.common import contracts, topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.contracts import Header
from sayna_sip.provisioner.nats_topology import apply_topology
from sayna_sip.router.app import RouterService
from tests.fixtures.livekit import sip_event
from tests.router.helpers import (
    delete_hook,
    drained,
    events_counted,
    headers_of,
    ingress_headers,
    publish_event,
    publish_raw,
    put_hook,
    router_backlog,
    stored_deliveries,
    take_deliveries,
    until,
)

STANDARD_METRICS = ("process_cpu_seconds_total", "process_resident_memory_bytes",
                    "python_info", "python_gc_objects_collected_total")  # fmt: skip


# (To header, X-To-IP, hook that must receive it, parsed host)
HEADER_FORMS = [
    ("sip:+15551234567@example.com", None, "example.com", "example.com"),
    (
        '"Bob" <sips:bob@biloxi.example.com:5061;transport=tls>',
        None,
        "*.example.com",
        "biloxi.example.com",
    ),
    ("Bob <sip:bob@biloxi.com>;tag=a6c85cf", None, "biloxi.com", "biloxi.com"),
    ("SIP:alice@Atlanta.COM", None, "atlanta.com", "atlanta.com"),
    ("<sip:+15551234567@sip.carrier.net;user=phone>", None, "*.carrier.net", "sip.carrier.net"),
    ("sip:user@[2001:db8::10]:5060", None, "2001:db8::10", "2001:db8::10"),
    ("sip:user@example.com:5060", None, "example.com", "example.com"),
    ("sip:proxy@shared-proxy.net", "10.20.30.40", "10.20.30.40", "10.20.30.40"),
]


async def test_each_header_form_reaches_deliveries_unchanged(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    for hook in {form[2] for form in HEADER_FORMS}:
        await put_hook(jetstream, hook)
    await put_hook(jetstream, "shared-proxy.net")  # X-To-IP must win over the To header
    sent = {}
    for i, (to, x_to_ip, hook, host) in enumerate(HEADER_FORMS):
        event = sip_event(room=f"sip-call-{i}", to=to, x_to_ip=x_to_ip, event_id=f"EV_form{i}")
        sent[event["id"]] = (await publish_event(jetstream, event), hook, host, event)

    got = await take_deliveries(jetstream, len(HEADER_FORMS))

    assert sorted(headers_of(m)[Header.EVENT_ID] for m in got) == sorted(sent)
    for msg in got:
        body, hook, host, event = sent[headers_of(msg)[Header.EVENT_ID]]
        assert msg.data == body  # byte for byte
        assert msg.subject == contracts.delivery_subject(hook)
        assert headers_of(msg)[Header.MSG_ID] == event["id"]
        assert headers_of(msg)[Header.HOOK] == hook
        assert headers_of(msg)[Header.SIP_HOST] == host
        assert headers_of(msg)[Header.EVENT] == "participant_joined"
        assert headers_of(msg)[Header.ROOM] == event["room"]["name"]
        assert float(headers_of(msg)[Header.RECEIVED_AT]) > 0
    await drained(jetstream)
    assert events_counted(router, "routed") == len(HEADER_FORMS)


async def test_ignored_events_are_acked_and_produce_nothing(
    jetstream: JetStreamContext, router: RouterService, caplog: pytest.LogCaptureFixture
) -> None:
    await put_hook(jetstream, "example.com")
    caplog.set_level(logging.INFO, logger="sayna_sip")
    await publish_event(jetstream, sip_event(room="lobby-1", event_id="EV_nonsip"))
    await publish_event(jetstream, sip_event(room="", event_id="EV_noroom"))
    await publish_event(jetstream, sip_event(to="sip:a@unknown.net", event_id="EV_unknown"))
    await publish_event(jetstream, sip_event(to="tel:+15551234567", event_id="EV_tel"))
    await publish_event(jetstream, sip_event("room_started", event_id="EV_early"))
    bad = {**ingress_headers(sip_event(event_id="EV_bad")), Header.EVENT: "participant_joined"}
    await publish_raw(jetstream, b"{not json", bad, contracts.lk_event_subject("x", "sip-1"))
    shape = b'{"event":"participant_joined","room":{"name":"sip-1"},"participant":[1]}'
    bad2 = {**bad, Header.MSG_ID: "EV_bad2", Header.EVENT_ID: "EV_bad2"}
    await publish_raw(jetstream, shape, bad2, contracts.lk_event_subject("x", "sip-1"))

    await drained(jetstream)

    assert await stored_deliveries(jetstream) == 0
    assert (await router_backlog(jetstream))[2] == 0  # terminated, not retried
    counts = {o: events_counted(router, o) for o in ("non_sip", "unmatched", "held", "no_host")}
    # the host-less ones wait in room memory for a host that may still come, acked
    assert counts == {"non_sip": 2, "unmatched": 1, "held": 2, "no_host": 0}
    assert events_counted(router, "deferred") == 0
    assert events_counted(router, "malformed") == 2
    lines = [r.getMessage() for r in caplog.records]
    assert [ln for ln in lines if "sip_no_hook" in ln] == [
        "event=sip_no_hook host=unknown.net event_id=EV_unknown"
    ]
    assert sum("event=router_malformed event_id=EV_bad" in ln for ln in lines) == 2
    assert not [ln for ln in lines if "EV_nonsip" in ln or "EV_noroom" in ln]


async def test_sip_disabled_routes_nothing_and_stays_quiet(
    jetstream: JetStreamContext, router_config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    await put_hook(jetstream, "example.com")
    await publish_event(jetstream, sip_event(event_id="EV_d1"))
    await publish_raw(jetstream, b"garbage", {Header.MSG_ID: "EV_d2"}, "lk.events.x")
    caplog.set_level(logging.DEBUG, logger="sayna_sip")
    service = RouterService(ServerConfig(nats=router_config.nats, host="127.0.0.1", router_port=0))
    await service.start()
    try:
        await drained(jetstream)
    finally:
        await service.stop()
    assert await stored_deliveries(jetstream) == 0
    assert events_counted(service, "disabled") == 2
    assert not [r for r in caplog.records if "sip" in r.getMessage().replace("sayna_sip", "")]


async def test_sip_off_needs_only_lk_events_and_its_durable(
    nats_client: Client, router_config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    # What `sayna-sip provision` leaves with SIP off: no SIP_* stream, no sip_* bucket.
    js = nats_client.jetstream()
    off = ServerConfig(nats=router_config.nats, host="127.0.0.1", router_port=0)
    await apply_topology(js, off)
    await publish_event(js, sip_event(event_id="EV_off"))
    caplog.set_level(logging.DEBUG, logger="sayna_sip")
    service = RouterService(off)
    await service.start()
    try:
        await drained(js)
        assert await service.readiness() is None
    finally:
        await service.stop()
    assert events_counted(service, "disabled") == 1
    assert [i.config.name for i in await js.streams_info()] == [topology.LK_EVENTS]
    assert not [r for r in caplog.records if "sip" in r.getMessage().replace("sayna_sip", "")]


async def test_sip_switched_on_without_a_new_provision_says_why_it_cannot_start(
    nats_client: Client, router_config: ServerConfig
) -> None:
    off = ServerConfig(nats=router_config.nats)
    await apply_topology(nats_client.jetstream(), off)  # provisioned while SIP was off
    service = RouterService(router_config)  # SIP on now
    try:
        with pytest.raises(topology.TopologyError) as err:
            await service.start()
    finally:
        await service.stop()
    assert str(err.value) == (
        "NATS topology incomplete (missing stream SIP_DELIVERIES, stream SIP_DEAD, "
        "stream SIP_ATTEMPTS, stream SIP_AUDIT, KV bucket sip_hooks, KV bucket sip_rooms, "
        "KV bucket sip_access, KV bucket sip_lanes) (SIP is on now; NATS was provisioned with "
        "it off): run `sayna-sip provision`"
    )


async def test_hook_added_while_running_routes_the_next_event_and_delete_stops_it(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await publish_event(jetstream, sip_event(to="sip:a@late.example.org", event_id="EV_before"))
    await drained(jetstream)
    assert events_counted(router, "unmatched") == 1

    await put_hook(jetstream, "*.example.org")  # no wait: the very next event must route
    await publish_event(jetstream, sip_event(to="sip:a@late.example.org", event_id="EV_after"))
    [msg] = await take_deliveries(jetstream, 1)
    assert headers_of(msg)[Header.EVENT_ID] == "EV_after"
    assert headers_of(msg)[Header.HOOK] == "*.example.org"

    await delete_hook(jetstream, "*.example.org")
    # A delete reaches the router's cache through its KV watch (a cache hit reads no KV),
    # so until the watch delivers it the cached hook still matches: wait for that.
    await until(lambda: router.hooks is not None and router.hooks.get("*.example.org") is None)
    await publish_event(jetstream, sip_event(to="sip:a@late.example.org", event_id="EV_gone"))
    await drained(jetstream)
    assert await stored_deliveries(jetstream) == 0
    assert events_counted(router, "unmatched") == 2


async def test_health_ready_and_metrics(router: RouterService) -> None:
    base = f"http://127.0.0.1:{router.port}"
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        metrics = (await client.get("/metrics")).text
        assert 'sayna_sip_router_events_total{outcome="routed"} 0.0' in metrics
        assert "sayna_sip_router_routing_seconds_bucket" in metrics
        for standard in STANDARD_METRICS:  # prometheus-client's collectors, as documented
            assert standard in metrics, standard
        assert (await client.get("/nope")).status_code == 404


async def test_readyz_fails_when_topology_goes_missing(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await jetstream.delete_key_value(topology.ROOMS_BUCKET)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{router.port}") as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()  # the same shape and codes as the ingress's /readyz
    assert body["error"] == "topology_missing" and "sip_rooms" in body["message"], body


async def test_start_fails_clearly_without_topology(router_config: ServerConfig) -> None:
    service = RouterService(router_config)
    try:
        with pytest.raises(topology.TopologyError, match="sayna-sip provision"):
            await service.start()
    finally:
        await service.stop()
