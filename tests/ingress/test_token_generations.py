"""The token generation of a host in KV `sip_access`: what a revoke stores (the format a
later release reads), concurrent revokes all counted, and values that do not read as one
refused rather than read as 0 (that would bring revoked tokens back)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.hosts import host_token
from sayna_sip.ingress.access_tokens import Generations

A = "pbx.tenant-a.example"


async def _kv(js: JetStreamContext) -> Generations:
    return Generations(await js.key_value(topology.ACCESS_BUCKET))


async def test_a_revoke_stores_the_next_generation_as_version_1(
    jetstream: JetStreamContext,
) -> None:
    gens = await _kv(jetstream)
    assert await gens.current(A) == 0
    assert [await gens.bump(A), await gens.bump(A)] == [1, 2]
    assert await gens.current(A) == 2
    entry = await (await jetstream.key_value(topology.ACCESS_BUCKET)).get(host_token(A))
    stored = json.loads(entry.value or b"")
    assert stored.keys() == {"v", "generation", "at"}
    assert (stored["v"], stored["generation"]) == (1, 2) and abs(stored["at"] - time.time()) < 60


async def test_concurrent_revokes_all_count(jetstream: JetStreamContext) -> None:
    gens = await _kv(jetstream)
    assert sorted(await asyncio.gather(*(gens.bump(A) for _ in range(5)))) == [1, 2, 3, 4, 5]
    assert await gens.current(A) == 5


async def test_an_empty_value_is_generation_0(jetstream: JetStreamContext) -> None:
    await (await jetstream.key_value(topology.ACCESS_BUCKET)).put(host_token(A), b"")
    assert await (await _kv(jetstream)).current(A) == 0


@pytest.mark.parametrize("value", [b"not json", b'{"v": 1}', b'{"generation": "1"}', b"[1]"])
async def test_a_value_that_is_not_a_generation_is_refused(
    jetstream: JetStreamContext, value: bytes
) -> None:
    await (await jetstream.key_value(topology.ACCESS_BUCKET)).put(host_token(A), value)
    with pytest.raises(ValueError, match=r"^unreadable token generation in KV sip_access$"):
        await (await _kv(jetstream)).current(A)


@pytest.mark.parametrize("removal", ["delete", "purge"])
async def test_a_generation_an_operator_removed_is_revoked_again_not_refused_for_ever(
    jetstream: JetStreamContext, removal: str
) -> None:
    """`nats kv del` leaves a marker whose revision a write must name (the router's room
    records had that bug): the next revoke is stored, from 0 again, not retried to a 503."""
    kv = await jetstream.key_value(topology.ACCESS_BUCKET)
    gens = await _kv(jetstream)
    assert await gens.bump(A) == 1
    await getattr(kv, removal)(host_token(A))
    assert await gens.current(A) == 0
    assert await gens.bump(A) == 1
    assert await gens.current(A) == 1
