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
