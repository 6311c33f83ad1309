"""The receiver-side snippets in README.md, run as a tenant would run them, on a delivery a
real forwarder made: a plain secret and a whsec_ secret verify, a wrong one raises. The
Node one runs under `node` on the npm `standardwebhooks` that `make test` installs in
tests/receiver_node (pinned by its package-lock.json)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext
from standardwebhooks.webhooks import WebhookVerificationError

from tests.fixtures.https_sink import HttpsSink
from tests.forwarder.conftest import StartForwarder, publish, put_hook
from tests.forwarder.test_order_lanes import fail_first_join, publish_call_event, put_ordered_hook

README = Path(__file__).resolve().parents[2] / "README.md"
NODE_DIR = README.parent / "tests" / "receiver_node"
NODE = shutil.which("node")
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


def node_snippet() -> str:
    """The README's Node block as a script: its imports on top, the rest run on a request
    read from stdin (rawBody a Buffer, req.headers lowercase as Node gives them)."""
    text = README.read_text()
    section = text[text.index("### Verifying a delivery on the tenant's side") :]
    code = re.search(r"```js\n(.*?)```", section, re.S)
    assert code is not None, "no Node block in the README's verification section"
    lines = code.group(1).splitlines()
    imports = [ln for ln in lines if ln.startswith("import ")]
    body = "\n".join(ln for ln in lines if not ln.startswith("import "))
    return "\n".join([
        *imports,
        'import { readFileSync } from "node:fs";',
        'const input = JSON.parse(readFileSync(0, "utf8"));',
        'const rawBody = Buffer.from(input.body, "base64");',
        "const req = { headers: input.headers };",
        "const secret = input.secret;",
        "try {",
        body,
        "  console.log(JSON.stringify({ ok: true, id: event.id }));",
        "} catch (e) {",
        "  console.log(JSON.stringify({ ok: false, error: String(e) }));",
        "}",
    ])  # fmt: skip


async def run_node(script: Path, body: bytes, headers: dict[str, str], secret: str) -> Any:
    assert NODE is not None
    request = {"body": base64.b64encode(body).decode(), "headers": headers, "secret": secret}
    proc = await asyncio.create_subprocess_exec(
        NODE, str(script), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(json.dumps(request).encode())
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


@pytest.mark.parametrize("secret", [PLAIN, WHSEC])
async def test_the_readme_node_snippet_verifies_a_real_delivery(
    secret: str, start_forwarder: StartForwarder, https_sink: HttpsSink,
    jetstream: JetStreamContext,
) -> None:  # fmt: skip
    if NODE is None or not (NODE_DIR / "node_modules" / "standardwebhooks").is_dir():
        pytest.skip("node or the npm standardwebhooks is missing (`make test` runs npm ci)")
    await put_hook(jetstream, "a.example.com", https_sink.url("/hook"))
    await start_forwarder(SIP_HOOK_SECRET=secret)
    event_id, body = await publish(jetstream, "a.example.com")
    (got,) = await https_sink.wait_for(1, "/hook")
    script = NODE_DIR / f"verify-{secret[:5]}.mjs"  # beside its node_modules, to import it
    script.write_text(node_snippet())
    try:
        good = await run_node(script, got.body, got.headers, secret)
        wrong = await run_node(script, got.body, got.headers, "another-secret-of-32-characters!")
        changed = await run_node(script, got.body + b" ", got.headers, secret)
    finally:
        script.unlink()

    assert got.body == body
    assert good == {"ok": True, "id": event_id}, good
    assert wrong["ok"] is False and changed["ok"] is False, (wrong, changed)
