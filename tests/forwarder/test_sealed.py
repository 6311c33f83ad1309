"""A forwarder that cannot open a hook's own secret (SIP_SECRETS_KEY unset, or not the
key that sealed it) is at fault, not the tenant: nothing is sent, nothing counts as a
failed attempt (breaker, failing_since, auto-disable, ops notice, dead letters), /readyz
says why, and the deliveries go out once the right key is set."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import httpx
import pytest
from nats.js import JetStreamContext
from standardwebhooks import Webhook

from sayna_sip.common import hook_secrets, topology
from sayna_sip.common.hook import Hook
from sayna_sip.common.hosts import host_token
from sayna_sip.common.secretbox import SecretBox, generate_key
from tests.fixtures.https_sink import HttpsSink
from tests.forwarder.conftest import FAST, StartForwarder, dead_letters, publish

HOST = "sealed.example.com"
SECRET = "a-tenant-secret-of-32-characters"
KEY = generate_key()
QUICK = dataclasses.replace(FAST, unsealed_wait=0.1)
EVENTS = 12  # more than MIN_FAILED_ATTEMPTS: enough to disable a failing hook


async def deferred(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    pattern = rf'forwarder_deferred_total{{host="{HOST}",reason="secret_unreadable"}} (\S+)'
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("key", ["", generate_key()], ids=["no-key", "wrong-key"])
async def test_an_unopenable_secret_blames_nobody_and_delivers_once_the_key_is_set(
    start_forwarder: StartForwarder, https_sink: HttpsSink, jetstream: JetStreamContext, key: str
) -> None:
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    hook = Hook.new(HOST, https_sink.url("/t"), "runtime")
    (default,) = hook.endpoint_list()
    sealed = hook_secrets.with_secret(default, HOST, SecretBox.from_setting(KEY), SECRET)
    await kv.put(host_token(HOST), hook.with_endpoint(sealed).encode())
    env = {"SIP_HOOK_DISABLE_AFTER": "1s", "SIP_OPS_WEBHOOK_URL": https_sink.url("/ops")}
    fwd = await start_forwarder(QUICK, SIP_SECRETS_KEY=key, **env)
    for _ in range(EVENTS):
        await publish(jetstream, HOST)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{fwd.port}") as client:
        async with asyncio.timeout(20):
            # Polling: a metric has no event to await. Each delivery tried 3 times, 1 s+.
            while await deferred(client) < 3 * EVENTS:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        ready = await client.get("/readyz")
        text = (await client.get("/metrics")).text
    await fwd.stop()

    assert ready.status_code == 503 and ready.json()["error"] == "secrets_unreadable"
    assert HOST in ready.json()["message"]
    record = Hook.decode((await kv.get(host_token(HOST))).value or b"")
    assert (record.enabled, record.failing_since) == (True, None)
    assert https_sink.received("/t") == [] and https_sink.received("/ops") == []
    assert await dead_letters(jetstream) == []
    assert f'forwarder_attempts_total{{host="{HOST}"' not in text

    fixed = await start_forwarder(QUICK, SIP_SECRETS_KEY=KEY, **env)
    received = await https_sink.wait_for(EVENTS, "/t", timeout=20)
    verifier = Webhook(SECRET.encode())
    for request in received:
        verifier.verify(request.body, dict(request.headers))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{fixed.port}") as client:
        assert (await client.get("/readyz")).status_code == 200
