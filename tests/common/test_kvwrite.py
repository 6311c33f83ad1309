"""Writes the server would answer by closing the connection (over max_payload once its
headers count) are refused before sending, on a real nats-server, and the connection
stays up: KV records and the router's room memory alike."""

from __future__ import annotations

import re
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from sayna_sip.common import kvwrite, topology
from sayna_sip.common.puback import AckedPublisher


async def still_writes(nc: Client, js: JetStreamContext) -> None:
    kv = await js.key_value(topology.ROOMS_BUCKET)
    await kvwrite.put(kv, "after", b"{}")
    assert nc.is_connected and (await kv.get("after")).value == b"{}"


@pytest.mark.parametrize("write", ["create", "update", "put"])
async def test_a_kv_value_over_the_limit_is_refused_unsent(
    nats_client: Client, jetstream: JetStreamContext, write: str
) -> None:
    kv = await jetstream.key_value(topology.ROOMS_BUCKET)
    revision = await kv.put("k", b"small")
    value = b"x" * (nats_client.max_payload - 20)  # under max_payload, over with a header

    with pytest.raises(kvwrite.RecordTooLarge):
        if write == "create":
            await kvwrite.create(kv, "new", value)
        elif write == "update":
            await kvwrite.update(kv, "k", value, revision)
        else:
            await kvwrite.put(kv, "k", value)

    assert (await kv.get("k")).value == b"small"
    await still_writes(nats_client, jetstream)


async def test_the_largest_value_allowed_is_stored(
    nats_client: Client, jetstream: JetStreamContext
) -> None:
    kv = await jetstream.key_value(topology.ROOMS_BUCKET)
    revision = await kv.put("k", b"small")
    value = b"x" * kvwrite.limit(kv)

    await kvwrite.update(kv, "k", value, revision)

    assert len((await kv.get("k")).value or b"") == len(value)
    await still_writes(nats_client, jetstream)


async def test_an_acked_publish_over_the_limit_with_its_headers_is_refused_unsent(
    nats_client: Client, jetstream: JetStreamContext
) -> None:
    # The router's room memory writes go through AckedPublisher, as the webhook intake's.
    puts = AckedPublisher(nats_client, f"KV_{topology.ROOMS_BUCKET}")
    await puts.start()
    body = b"x" * (nats_client.max_payload - 20)

    with pytest.raises(nats.errors.MaxPayloadError):
        await puts.publish(f"$KV.{topology.ROOMS_BUCKET}.big", body, {}, 5.0)

    await still_writes(nats_client, jetstream)


def test_every_kv_write_in_the_code_goes_through_kvwrite() -> None:
    # nats-py's own KV writes skip the check: a new write path must not use them.
    root = Path(__file__).resolve().parents[2]
    direct = re.compile(r"\b_?kv\.(put|create|update)\(")
    found = [
        f"{path.relative_to(root)}:{n}"
        for base in ("libs", "services", "cli")
        for path in (root / base).rglob("*.py")
        if path.name != "kvwrite.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if direct.search(line)
    ]
    assert not found, found
