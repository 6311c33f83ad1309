"""The router's naks come back after the delays docs/router.md states: 2 s after a NATS
error (`retry`), 1 s for a previous-release host-less event (`deferred`, acked as
`no_host` at its third delivery). Measured through the real LK_EVENTS consumers."""

from __future__ import annotations

import json
import time

from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.router.app import RouterService
from tests.fixtures.livekit import sip_event
from tests.router.helpers import (
    events_counted,
    ingress_headers,
    publish_event,
    publish_raw,
    put_hook,
    take_deliveries,
    until,
)

SLACK = 0.9  # a loaded machine's scheduling, on top of the delay


async def test_a_retry_comes_back_after_2_s_and_a_host_less_event_after_1_s_twice(
    jetstream: JetStreamContext, router: RouterService
) -> None:
    await put_hook(jetstream, "example.com")
    await jetstream.delete_stream(topology.SIP_DELIVERIES)  # the join's copy cannot be stored
    await publish_event(jetstream, sip_event(room="sip-later", to="sip:a@example.com"))
    lost = sip_event("track_published", room="sip-lost", to=None, event_id="EV_lost")
    body = json.dumps(lost).encode()
    await publish_raw(jetstream, body, ingress_headers(lost), "lk.events.track_published")

    seen: dict[str, float] = {}  # when each was first counted

    def both() -> bool:
        for outcome in ("retry", "deferred"):
            if outcome not in seen and events_counted(router, outcome) == 1:
                seen[outcome] = time.monotonic()
        return len(seen) == 2

    await until(both)
    [stream] = [s for s in topology.streams() if s.name == topology.SIP_DELIVERIES]
    await jetstream.add_stream(stream)
    [spec] = [c for c in topology.consumers(ServerConfig()) if c.stream == stream.name]
    await jetstream.add_consumer(spec.stream, spec.config)

    await take_deliveries(jetstream, 1, timeout=5)
    retried = time.monotonic() - seen["retry"]
    await until(lambda: events_counted(router, "no_host") == 1, timeout=5)
    given_up = time.monotonic() - seen["deferred"]

    assert 2.0 - 0.1 <= retried < 2.0 + SLACK
    assert events_counted(router, "deferred") == 2  # nak'd twice, 1 s each
    assert 2 * 1.0 - 0.1 <= given_up < 2 * 1.0 + SLACK
