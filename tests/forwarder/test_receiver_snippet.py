"""The receiver-side snippet in README.md, run as a tenant would run it, on a delivery a
real forwarder made: a plain secret and a whsec_ secret verify, a wrong one raises."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext
from standardwebhooks.webhooks import WebhookVerificationError

from tests.fixtures.https_sink import HttpsSink
from tests.forwarder.conftest import StartForwarder, publish, put_hook
from tests.forwarder.test_order_lanes import fail_first_join, publish_call_event, put_ordered_hook

README = Path(__file__).resolve().parents[2] / "README.md"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PLAIN = "a-plain-secret-of-32-characters!"


def snippet() -> Any:
    """`verify` from the README's Python block."""
    text = README.read_text()
    section = text[text.index("### Verifying a delivery on the tenant's side") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "no Python block in the README's verification section"
    scope: dict[str, Any] = {}
    exec(compile(code.group(1), str(README), "exec"), scope)
    return scope["verify"]


@pytest.mark.parametrize("secret", [PLAIN, WHSEC])
async def test_the_readme_snippet_verifies_a_real_delivery(
    secret: str, start_forwarder: StartForwarder, https_sink: HttpsSink,
    jetstream: JetStreamContext,
) -> None:  # fmt: skip
    await put_hook(jetstream, "a.example.com", https_sink.url("/hook"))
    await start_forwarder(SIP_HOOK_SECRET=secret)
    event_id, body = await publish(jetstream, "a.example.com")
    (got,) = await https_sink.wait_for(1, "/hook")
    verify = snippet()

    event = verify(got.body, got.headers, secret)

    assert got.body == body and event["id"] == event_id
    with pytest.raises(WebhookVerificationError):
        verify(got.body, got.headers, "another-secret-of-32-characters!")
    with pytest.raises(WebhookVerificationError):
        verify(got.body + b" ", got.headers, secret)


def order_snippet() -> Any:
    """`CallOrder` from the README's Call-Seq section."""
    text = README.read_text()
    section = text[text.index("### A call's events in order: `Sayna-Call-Seq`") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "no Python block in the README's Call-Seq section"
    scope: dict[str, Any] = {}
    exec(compile(code.group(1), str(README), "exec"), scope)
    return scope["CallOrder"]


async def test_the_readme_call_order_recipe_on_real_deliveries(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext
) -> None:
    # `ordering: none` and a call whose 2nd event fails once: it arrives after the 3rd;
    # the recipe hands them over in order.
    https_sink.decide("/order", fail_first_join({"sip-r"}))  # type: ignore[arg-type]
    await put_ordered_hook(jetstream, https_sink.url("/order"), ordering="none")
    await start_forwarder()
    for seq in (1, 2, 3):
        await publish_call_event(jetstream, "sip-r", seq)
    got = await https_sink.wait_for(4, "/order")
    seqs = [r.headers["sayna-call-seq"] for r in got]
    assert seqs.index("3") < len(seqs) - 1 - seqs[::-1].index("2"), seqs  # 2 came after 3
    answered = [r for i, r in enumerate(got) if i != seqs.index("2")]  # the 500 was not taken
    order = order_snippet()()
    ready: list[dict[str, Any]] = []
    for r in answered:
        ready += order.receive("sip-r", r.headers, {"id": r.headers["webhook-id"]})
    assert [e["id"] for e in ready] == ["EV_sip-r_1", "EV_sip-r_2", "EV_sip-r_3"]
    # A gap given up, then the late one.
    order = order_snippet()()
    assert order.receive("r", {"sayna-call-seq": "1"}, {"id": 1}) == [{"id": 1}]
    assert order.receive("r", {"sayna-call-seq": "3"}, {"id": 3}) == []
    assert order.give_up_gap("r") == [{"id": 3}]
    assert order.receive("r", {"sayna-call-seq": "2"}, {"id": 2}) == [{"id": 2, "late": True}]
    assert order.receive("r", {}, {"id": 0}) == [{"id": 0}]
