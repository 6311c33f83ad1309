"""KV writes checked against the server's `max_payload` before NATS is asked.

nats-py checks a value against `max_payload` but not the headers its KV calls add
(`Nats-Expected-Last-Subject-Sequence`), and nats-server closes the connection for good
(no reconnect) on a message over the limit, headers included: one record a few bytes too
large took the ingress, or every forwarder writing `failing_since`, down. Every KV write
of ours goes through here and is refused as `RecordTooLarge` instead.
"""

from __future__ import annotations

from nats.js.kv import KeyValue

# Bytes of max_payload kept for the header block a KV write carries (expected sequence,
# stream, TTL: under 150 bytes together) and for what the server adds.
KV_HEADER_ROOM = 512


class RecordTooLarge(Exception):
    """A KV value the server would refuse by closing the connection."""


def limit(kv: KeyValue) -> int:
    """The largest value a write to `kv` may carry on this connection."""
    nc = kv._js._nc  # nats-py's KeyValue has no public accessor for its connection
    return nc.max_payload - KV_HEADER_ROOM


def check(kv: KeyValue, key: str, value: bytes) -> None:
    """Raise RecordTooLarge when `value` would not fit a write to `key`."""
    room = limit(kv)
    if len(value) > room:
        raise RecordTooLarge(
            f"KV record {key[:64]!r} is {len(value)} bytes, over the {room} bytes "
            "the NATS server's max_payload leaves for it"
        )


async def create(kv: KeyValue, key: str, value: bytes) -> int:
    check(kv, key, value)
    return await kv.create(key, value)


async def update(kv: KeyValue, key: str, value: bytes, last: int | None) -> int:
    check(kv, key, value)
    return await kv.update(key, value, last=last)


async def put(kv: KeyValue, key: str, value: bytes) -> int:
    check(kv, key, value)
    return await kv.put(key, value)
