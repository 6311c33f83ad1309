"""Ordered delivery per call, end to end (design: "Ordered delivery per call"; #30's
order run, shortened): LiveKit-signed webhooks of interleaved calls through the real
ingress, two routers and two forwarders side by side, to an HTTPS tenant that fails
the first attempt of the join in half of the calls. What the tenant receives is what is
asserted: every call in LiveKit's order, numbered 1..5, and no call held by another."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from standardwebhooks import Webhook

from sayna_sip.common.config import ServerConfig
from sayna_sip.forwarder.app import Forwarder
from sayna_sip.ingress.app import create_app
from sayna_sip.provisioner.provision import provision
from sayna_sip.router.app import RouterService
from tests.fixtures.https_sink import HttpsSink, Received, Reply
from tests.fixtures.livekit import API_KEY, API_SECRET, LiveKitTwirp, signed_webhook, sip_event
from tests.fixtures.nats import NatsServer

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CALL = ("room_started", "participant_joined", "track_published", "participant_left",
        "room_finished")  # fmt: skip
ROOMS = [f"sip-order-{i}" for i in range(8)]
FAILING = set(ROOMS[::2])  # their join is answered 500 once
RETRY_AFTER = 2.0  # the failed join's retry: well after every other call has ended


@dataclass
class Stack:
    ingress: AsyncTestClient[Litestar]
    routers: list[RouterService]


@pytest.fixture
async def stack(
    nats_server: NatsServer, livekit_server: LiveKitTwirp, https_sink: HttpsSink
) -> AsyncIterator[Stack]:
    """Provisioned NATS, two routers and two forwarders, and the ingress."""
    hooks = [{"host": "*.tenant-a.example", "url": https_sink.url("/a")}]
    config = ServerConfig.from_env(
        {
            "NATS_URL": nats_server.url,
            "LIVEKIT_URL": livekit_server.url,
            "LIVEKIT_API_KEY": API_KEY,
            "LIVEKIT_API_SECRET": API_SECRET,
            "SIP_ROOM_PREFIX": "sip-",
            "SIP_ALLOWED_ADDRESSES": "203.0.113.0/24",
            "SIP_HOOKS_JSON": json.dumps(hooks),
            "SIP_HOOK_SECRET": SECRET,
            "SIP_HOOK_ALLOW_NETWORKS": "127.0.0.0/8",
            "SIP_HOOK_CA_BUNDLE": str(https_sink.ca_path),
            "SIP_RETRY_SCHEDULE": f"0s,{RETRY_AFTER}s",
            "ROUTER_PORT": "0",
            "FORWARDER_PORT": "0",
        }
    )
    await provision(config)
    async with AsyncExitStack() as undo:
        routers = []
        for _ in range(2):
            router = RouterService(config)
            await router.start()
            undo.push_async_callback(router.stop)
            routers.append(router)
            forwarder = await Forwarder.start(config)
            undo.push_async_callback(forwarder.stop)
        client = await undo.enter_async_context(AsyncTestClient(create_app(config), timeout=10))
        yield Stack(client, routers)


def call_event(room: str, n: int) -> dict[str, object]:
    """Event n (1-based) of `room`'s call; participant events are the caller's (SIP To)."""
    kind = CALL[n - 1]
    to = "sip:+1555@pbx.tenant-a.example" if kind.startswith(("participant", "track")) else None
    return sip_event(kind, room=room, to=to, event_id=f"EV_{room}_{n}")


def room_and_n(r: Received) -> tuple[str, int]:
    room, n = r.headers["webhook-id"].removeprefix("EV_").rsplit("_", 1)
    return room, int(n)


class FailFirstJoin:
    """The tenant: 500 to the first attempt of the join of each FAILING call."""

    def __init__(self) -> None:
        self.failed: set[str] = set()

    def __call__(self, r: Received) -> Reply | None:
        room, n = room_and_n(r)
        if room in FAILING and n == 2 and room not in self.failed:
            self.failed.add(room)
            return Reply(status=500)
        return None


async def test_interleaved_calls_reach_the_tenant_in_order_and_a_failing_one_holds_no_other(
    stack: Stack, https_sink: HttpsSink
) -> None:
    https_sink.decide("/a", FailFirstJoin())
    sent: dict[str, bytes] = {}
    for n in range(1, len(CALL) + 1):  # every call's event 1, then every call's event 2...
        for room in ROOMS:
            event = call_event(room, n)
            body, headers = signed_webhook(event)
            response = await stack.ingress.post("/livekit/webhook", content=body, headers=headers)
            assert response.status_code == 200, response.text
            sent[str(event["id"])] = body

    got = await https_sink.wait_for(len(ROOMS) * len(CALL) + len(FAILING), "/a", timeout=20)

    by_room: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for r in got:
        assert r.body == sent[r.headers["webhook-id"]]
        Webhook(SECRET).verify(r.body, r.headers)
        room, n = room_and_n(r)
        assert r.headers["sayna-call-seq"] == str(n)  # room_started is 1: before the join
        by_room[room].append((n, json.loads(r.body)["event"]))
    for room in ROOMS:
        # the failed join is retried before anything after it; nothing skipped or doubled
        want = [1, 2, 2, 3, 4, 5] if room in FAILING else [1, 2, 3, 4, 5]
        assert [n for n, _ in by_room[room]] == want, room
        assert [e for _, e in dict(by_room[room]).items()] == list(CALL)
    # the calls that did not fail ended while the failing ones waited for their retry
    retried = min(r.at for r in got if room_and_n(r)[0] in FAILING and room_and_n(r)[1] == 3)
    others = max(r.at for r in got if room_and_n(r)[0] not in FAILING)
    assert others < retried, "a failing call held the others back"
    # both routers took part: each pulls every partition (room_started is counted `held`)
    routed = [sum(r.registry.get_sample_value("sayna_sip_router_events_total", {"outcome": o})
                  or 0 for o in ("routed", "held")) for r in stack.routers]  # fmt: skip
    assert sum(routed) >= len(ROOMS) * len(CALL) and min(routed) > 0, routed
