"""The webhook store (intake.py) as NATS, an operator's logs and a trace backend see it:
how long one try waits for its PubAck, how often a passing failure is tried again, what
is logged, and the span each stored event starts."""

from __future__ import annotations

import itertools
import json
import logging
import re
import time

import pytest
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sayna_sip.common import topology
from sayna_sip.ingress.intake import PUBLISH_BUDGET_S
from tests.docs import markdown
from tests.fixtures.livekit import signed_webhook, sip_event
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import Client, ingress_config, serve_http

URL = "/livekit/webhook"
# The timing tests serve the ingress under uvicorn: Litestar's test client runs the app
# in a thread of its own and blocks the test's loop (its NATS callbacks) meanwhile.
# JetStream's answer while a stream has no leader: a passing failure, tried again.
NO_LEADER = json.dumps(
    {
        "error": {
            "code": 503,
            "err_code": 10008,
            "description": "JetStream system temporarily unavailable",
        }
    }
).encode()


async def _tries(nc: Nats, answer: bytes | None) -> list[float]:
    """Take the LK_EVENTS subjects over (the stream is gone): each try's arrival time;
    each answered with `answer`, or never (a PubAck that does not come)."""
    seen: list[float] = []

    async def take(msg: Msg) -> None:
        seen.append(time.monotonic())
        if answer is not None:
            await msg.respond(answer)

    await nc.subscribe("lk.events.>", cb=take)
    await nc.flush()
    return seen


async def test_a_puback_that_does_not_come_in_3_s_is_asked_for_again_within_the_budget(
    nats_server: NatsServer, jetstream: JetStreamContext, nats_client: Nats
) -> None:
    body, headers = signed_webhook(sip_event(event_id="EV_no_ack"))
    async with serve_http(ingress_config(nats_server.url), publish_budget=3.5) as ingress:
        await jetstream.delete_stream(topology.LK_EVENTS)
        tries = await _tries(nats_client, None)
        started = time.monotonic()
        r = await ingress.post(URL, content=body, headers=headers)
        took = time.monotonic() - started
    assert (r.status_code, r.json()["error"]) == (503, "nats_unavailable")
    # one try waits 3 s, the next one the rest of the budget, and no longer
    assert len(tries) == 2, tries
    assert 2.9 < tries[1] - tries[0] < 3.4
    assert 3.5 <= took < 4.0, took  # a last try of at least 1 s would end past 4.1 s


async def test_a_passing_failure_is_tried_again_after_50_ms_doubling_to_at_most_half_a_second(
    nats_server: NatsServer, jetstream: JetStreamContext, nats_client: Nats
) -> None:
    # A leader election ends at any moment: the webhook is stored at most 0.5 s after.
    body, headers = signed_webhook(sip_event(event_id="EV_no_leader"))
    async with serve_http(ingress_config(nats_server.url), publish_budget=2.2) as ingress:
        await jetstream.delete_stream(topology.LK_EVENTS)
        tries = await _tries(nats_client, NO_LEADER)
        started = time.monotonic()
        r = await ingress.post(URL, content=body, headers=headers)
        took = time.monotonic() - started
    assert (r.status_code, r.json()["error"]) == (503, "nats_unavailable")
    # refused once the next pause would end past the budget, not after it
    assert 1.75 <= took < 2.6, took  # one more try would end past 2.75 s
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert len(gaps) >= 5, gaps
    # A late wake-up only lengthens a gap: exact lower bounds, 0.2-0.25 s over the upper
    assert all(gap >= pause for gap, pause in zip(gaps, (0.05, 0.1, 0.2, 0.4, 0.5), strict=False))
    assert sum(gaps[:3]) < 0.35 + 0.2 and gaps[3] < 0.4 + 0.25, gaps
    assert all(0.5 <= gap < 0.5 + 0.25 for gap in gaps[4:]), gaps


async def test_refusals_and_store_failures_are_logged_for_the_operator(
    ingress: Client, jetstream: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sayna_sip.ingress")
    body, headers = signed_webhook(sip_event(event_id="EV_logged"))
    r = await ingress.post(URL, content=body, headers={**headers, "Authorization": "x.y.z"})
    assert r.status_code == 401
    # JetStream refuses the message for good (over the stream's size): 503 at once.
    info = await jetstream.stream_info(topology.LK_EVENTS)
    info.config.max_msg_size = 64
    await jetstream.update_stream(info.config)
    r = await ingress.post(URL, content=body, headers=headers)
    assert r.status_code == 503
    lines = [
        rec.getMessage()
        for rec in caplog.records
        if rec.name == "sayna_sip.ingress" and rec.levelno == logging.WARNING
    ]
    rejected = [ln for ln in lines if ln.startswith("event=webhook_rejected ")]
    assert len(rejected) == 1, lines  # the 503 is logged where it happens, once
    assert rejected[0].startswith("event=webhook_rejected status=401 code=invalid_token detail=")
    failed = [ln for ln in lines if ln.startswith("event=webhook_publish_failed ")]
    assert len(failed) == 1, lines
    assert failed[0].startswith(
        "event=webhook_publish_failed event_id=EV_logged lk_event=participant_joined error="
    )


async def test_a_stored_webhook_starts_its_events_trace_and_carries_it_in_lk_events(
    spans: InMemorySpanExporter, ingress: Client, jetstream: JetStreamContext
) -> None:
    body, headers = signed_webhook(sip_event(event_id="EV_traced"))
    assert (await ingress.post(URL, content=body, headers=headers)).status_code == 200
    (span,) = [s for s in spans.get_finished_spans() if s.name == "sip.intake"]
    assert span.kind == SpanKind.SERVER and span.parent is None
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "sayna_sip.ingress"
    assert dict(span.attributes or {}) == {
        "sayna.event_id": "EV_traced",
        "sayna.event": "participant_joined",
    }
    stored = await jetstream.get_msg(topology.LK_EVENTS, seq=1)
    assert span.context is not None and stored.headers is not None
    assert stored.headers["traceparent"].split("-")[1] == f"{span.context.trace_id:032x}"


def test_the_store_budget_the_docs_give_is_the_one_used() -> None:
    docs = " ".join(markdown.text("docs/operations.md").split())
    claims = re.findall(r"(\d+(?:\.\d+)?) s[,)]? \(?`PUBLISH_BUDGET_S`", docs)
    assert claims and {float(c) for c in claims} == {PUBLISH_BUDGET_S}, claims
