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


async def test_an_empty_value_reads_as_its_revision_not_0(jetstream: JetStreamContext) -> None:
    """0 would bring back every token revoked before the empty write."""
    kv = await jetstream.key_value(topology.ACCESS_BUCKET)
    gens = await _kv(jetstream)
    assert [await gens.bump(A), await gens.bump(A)] == [1, 2]
    revision = await kv.put(host_token(A), b"")
    assert revision > 2 and await gens.current(A) == revision
    assert await gens.bump(A) == revision + 1


@pytest.mark.parametrize("value", [b"not json", b'{"v": 1}', b'{"generation": "1"}', b"[1]"])
async def test_a_value_that_is_not_a_generation_is_refused(
    jetstream: JetStreamContext, value: bytes
) -> None:
    await (await jetstream.key_value(topology.ACCESS_BUCKET)).put(host_token(A), value)
    with pytest.raises(ValueError, match=r"^unreadable token generation in KV sip_access$"):
        await (await _kv(jetstream)).current(A)


@pytest.mark.parametrize("removal", ["delete", "purge"])
async def test_a_generation_an_operator_removed_reads_as_its_markers_revision(
    jetstream: JetStreamContext, removal: str
) -> None:
    """`nats kv del` leaves a marker: the generation reads as the marker's revision (above
    every generation before it, so revoked tokens stay revoked), and the next revoke is
    stored after the marker (a write must name its revision: the router's room records had
    that bug), not retried to a 503."""
    kv = await jetstream.key_value(topology.ACCESS_BUCKET)
    gens = await _kv(jetstream)
    assert [await gens.bump(A), await gens.bump(A)] == [1, 2]
    await getattr(kv, removal)(host_token(A))
    marker = (await kv.history(host_token(A)))[-1].revision or 0
    assert marker > 2 and await gens.current(A) == marker
    assert await gens.bump(A) == marker + 1
    assert await gens.current(A) == marker + 1
