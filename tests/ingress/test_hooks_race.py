"""Writers contending on the SAME `sip_hooks` key: a static (config) hook written by the
provisioner while runtime POSTs or DELETEs of that host are in flight is never
overwritten or deleted by them (the API writes with compare-and-set, so a write based on
a stale read is refused and decided again)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from sayna_sip.common import topology
from sayna_sip.common.hosts import host_token
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import ingress_config, serve_http

PATH = "/sip/hooks"
ROUNDS = 12
WRITERS = 8
MAX_WRITES = 100


class Progress:
    """Successful writes so far; `reached` once there are WRITERS of them."""

    def __init__(self) -> None:
        self.done = 0
        self.reached = asyncio.Event()


def config_record(host: str) -> bytes:
    """A static hook as the provisioner stores it (the KV wire format)."""
    record = {"host": host, "url": f"https://{host}/static", "source": "config"}
    return json.dumps({**record, "updated_at": "2026-01-01T00:00:00Z"}).encode()


async def source_of(kv: KeyValue, host: str) -> str | None:
    try:
        entry = await kv.get(host_token(host))
    except KeyNotFoundError:
        return None
    return str(json.loads(entry.value or b"{}")["source"])


async def keep_writing(
    client: httpx.AsyncClient, host: str, ops: tuple[str, ...], busy: Progress
) -> int:
    """POST (and DELETE, in turn) `host` again and again until refused; the final status."""
    body = {"hooks": [{"host": host, "url": "https://tenant.example.net/x"}]}
    for i in range(MAX_WRITES):
        if ops[i % len(ops)] == "post":
            status = (await client.post(PATH, json=body)).status_code
        else:
            status = (await client.request("DELETE", PATH, json={"hosts": [host]})).status_code
        if status != 200:
            return status
        busy.done += 1
        if busy.done >= WRITERS:
            busy.reached.set()
    return 200  # never refused: the static hook was lost


@pytest.mark.parametrize("ops", [("post",), ("post", "delete")])
async def test_runtime_writes_racing_a_static_hook_never_overwrite_or_delete_it(
    ops: tuple[str, ...], nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    config = ingress_config(nats_server.url)
    async with serve_http(config) as a, serve_http(config) as b:
        for n in range(ROUNDS):
            host = f"race{n}.example.com"
            busy = Progress()
            turns = [ops[i % len(ops) :] + ops for i in range(WRITERS)]  # out of phase
            writers = [
                asyncio.create_task(keep_writing((a, b)[i % 2], host, turns[i], busy))
                for i in range(WRITERS)
            ]
            await busy.reached.wait()  # every writer is busy on the key
            await kv.put(host_token(host), config_record(host))  # the provisioner writes
            statuses = await asyncio.gather(*writers)
            assert set(statuses) == {409}, statuses  # each writer ends refused...
            assert await source_of(kv, host) == "config"  # ...and the static hook stands
