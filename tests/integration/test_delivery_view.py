"""What `GET /sip/deliveries/{id}` shows of one delivery, on the whole pipeline: the
request's headers as sent (signatures and custom header values redacted), the body, and
when the next try is due; `sayna-sip deliveries show` prints the same in text."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from sayna_sip.cli import deliveries
from sayna_sip.common.deliveries import parse_when
from tests.fixtures.https_sink import HttpsSink, Reply
from tests.fixtures.livekit import LiveKitTwirp
from tests.fixtures.nats import NatsServer
from tests.integration.test_endpoints import Pipeline, call, start_pipeline

pytestmark = pytest.mark.timeout(60)
TOKEN = "Bearer crm-token-never-recorded-0123"


async def first_attempt(p: Pipeline, event_id: str) -> dict[str, Any]:
    """The delivery once its first attempt is recorded (records land a moment after)."""
    async with asyncio.timeout(10):
        while True:
            r = await p.api.get(f"/sip/deliveries/{event_id}")
            if r.status_code == 200 and r.json()["attempts"]:
                got: dict[str, Any] = r.json()
                return got
            await asyncio.sleep(0.05)


async def test_a_failed_attempt_shows_what_was_sent_redacted_the_body_and_the_retry_due(
    nats_server: NatsServer,
    livekit_server: LiveKitTwirp,
    https_sink: HttpsSink,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    https_sink.program("/h", Reply(500, b"down"))
    async for p in start_pipeline(
        nats_server, livekit_server, https_sink, SIP_RETRY_SCHEDULE="0s,1h"
    ):
        await p.set_hook(https_sink.url("/h"), headers={"X-Crm-Key": TOKEN})
        body = await p.post_event(event := call())
        before = time.time()

        got = await first_attempt(p, event["id"])

        (attempt,) = got["attempts"]
        assert attempt["outcome"] == "failed" and attempt["status"] == 500
        assert got["body"] == body.decode()  # the exact bytes every attempt sent
        sent = https_sink.received("/h")[0].headers
        shown = attempt["request_headers"]
        assert shown["X-Crm-Key"] == "<redacted>" and sent["x-crm-key"] == TOKEN
        assert shown["webhook-signature"] == "v1,<redacted>"
        assert shown["X-Sayna-Signature"] == "v1=<redacted>"
        assert sent["webhook-signature"].startswith("v1,") and len(sent["webhook-signature"]) > 20
        for name in set(shown) - {"X-Crm-Key", "webhook-signature", "X-Sayna-Signature"}:
            assert sent[name.lower()] == shown[name], name  # the rest exactly as sent
        assert {"webhook-id", "webhook-timestamp", "User-Agent", "Content-Type"} <= set(shown)
        assert "crm-token-never-recorded" not in json.dumps(got)
        due = parse_when(attempt["retry_at"])
        assert before + 0.8 * 3600 <= due <= time.time() + 1.2 * 3600  # 1 h, ± its jitter
        assert got["next_retry_at"] == attempt["retry_at"]

        # The CLI's text view: the same headers, as recorded, and the retry due.
        monkeypatch.setenv("NATS_URL", nats_server.url)
        capsys.readouterr()
        assert await asyncio.to_thread(deliveries.main, ["show", event["id"]]) == 0
        text = capsys.readouterr().out
        assert "    > X-Crm-Key: <redacted>\n" in text
        assert "    > webhook-signature: v1,<redacted>\n" in text
        assert f"    > webhook-id: {shown['webhook-id']}\n" in text
        assert f"    next try due {attempt['retry_at']}\n" in text
        assert text.endswith(f"next retry due {got['next_retry_at']}\n")
        assert "crm-token-never-recorded" not in text and sent["webhook-signature"] not in text
