"""A hook record so large that one more field would exceed the server's max_payload:
the forwarder's state writes are refused before sending, and its connection survives
(nats-server closes a client for good over max_payload, headers included)."""

from __future__ import annotations

import logging

import pytest
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.hook import Hook
from sayna_sip.common.hosts import host_token
from tests.fixtures.https_sink import HttpsSink, Reply
from tests.forwarder.conftest import StartForwarder, publish, put_hook, wait_dead

HOST = "big.example.com"


async def put_near_limit(js: JetStreamContext, url: str, max_payload: int) -> None:
    """A record that `failing_since` (39 bytes) brings to 20 bytes under max_payload:
    nats-py lets that write through, the KV header takes it over the server's limit."""
    kv = await js.key_value(topology.HOOKS_BUCKET)
    hook = Hook.new(HOST, url, "runtime")
    pad = max_payload - 59 - len(hook.changed(disabled_reason="").encode())
    record = hook.changed(disabled_reason="x" * pad).encode()
    assert len(record) == max_payload - 59
    await kv.put(host_token(HOST), record)


async def test_a_failing_since_write_over_max_payload_leaves_the_connection_up(
    start_forwarder: StartForwarder,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    https_sink.program("/big", Reply(500))
    https_sink.program("/ok", Reply(200))
    fwd = await start_forwarder(SIP_RETRY_SCHEDULE="0s")
    await put_near_limit(jetstream, https_sink.url("/big"), fwd.nc.max_payload)
    await put_hook(jetstream, "ok.example.com", https_sink.url("/ok"))

    with caplog.at_level(logging.WARNING, "sayna_sip.forwarder"):
        await publish(jetstream, HOST)
        await wait_dead(jetstream, 1)
        assert fwd.watch is not None
        await fwd.watch.stop()  # the background failing_since write has ended

    assert "event=hook_state_write_failed" in caplog.text
    assert "RecordTooLarge" in caplog.text
    assert fwd.nc.is_connected
    await publish(jetstream, "ok.example.com")  # the other tenants are still served
    await https_sink.wait_for(1, "/ok")
