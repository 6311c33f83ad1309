"""The hook client: one shared aiohttp session per process, and one attempt = one POST
translated into a `policy.Result` (aiohttp and SSRF errors do not leak past this module).

aiohttp, not httpx: ~170 µs of CPU per HTTPS POST against ~1,000 for httpx and ~450
for httpx on the httpx-aiohttp transport (`python -m bench.http_clients`,
docs/performance.md). Delivery is the forwarder's whole job.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time

import aiohttp
import certifi
import idna
from aiohttp.abc import AbstractResolver
from yarl import URL

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.version import USER_AGENT
from sayna_sip.forwarder.policy import Kind, Result, parse_retry_after
from sayna_sip.forwarder.safenet import BlockedAddress, CheckedResolver, Policy, guarded_socket


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """System CAs, certifi's, and `SIP_HOOK_CA_BUNDLE` on top (verification always on)."""
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(certifi.where())
    if ca_bundle:
        ctx.load_verify_locations(ca_bundle)
    return ctx


MAX_RESPONSE_BYTES = 64 * 1024  # read this much of a reply (keeps the connection reusable)
EXCERPT_BYTES = 4096  # the start of a reply kept for records and test sends


def build_client(
    config: ServerConfig, dns: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """Pooled, keep-alive, SSRF-pinned; redirects are failures, never followed.

    `limit` is the per-process cap; the per-host cap is the gate's (gate.py), which
    defers instead of queueing in the pool. `dns` replaces the system resolver (tests).
    """
    sip = config.sip
    fwd = config.forwarder
    policy = Policy(sip.hook_allow_networks if sip else ())
    connector = aiohttp.TCPConnector(
        ssl=ssl_context(sip.hook_ca_bundle if sip else None),
        limit=fwd.concurrency,
        keepalive_timeout=30.0,
        resolver=CheckedResolver(policy, dns),
        socket_factory=guarded_socket(policy),
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(sock_connect=fwd.connect_timeout, sock_read=fwd.timeout),
        headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
        trust_env=False,
    )


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    total: float,
) -> Result:
    """One attempt: POST `body` to `url` within `total` seconds, classified."""
    try:
        target = _parse(url)
        async with asyncio.timeout(total):
            async with session.post(target, data=body, headers=headers, allow_redirects=False) as r:
                excerpt = await _drain(r)
    except BlockedAddress as exc:
        return Result(Kind.BLOCKED, error=str(exc), url=url)
    except TimeoutError:  # also aiohttp's ServerTimeoutError
        return Result(Kind.TIMEOUT, error=f"timeout after {total:g}s", url=url)
    except (aiohttp.InvalidURL, ValueError) as exc:
        # A URL aiohttp cannot use (bad IDNA label, control character, port out of
        # range): retrying cannot fix it. UnicodeError is a ValueError.
        return Result(Kind.INVALID_URL, error=f"invalid url: {type(exc).__name__}: {exc}", url=url)
    except aiohttp.ClientError as exc:
        return Result(Kind.ERROR, error=f"{type(exc).__name__}: {exc}", url=url)
    if 200 <= r.status < 300:
        return Result(Kind.DELIVERED, status=r.status, url=url, excerpt=excerpt)
    retry_after = parse_retry_after(r.headers.get("retry-after"), time.time())
    return Result(
        Kind.STATUS,
        status=r.status,
        error=f"HTTP {r.status}",
        retry_after=retry_after,
        url=url,
        excerpt=excerpt,
    )


@functools.lru_cache(maxsize=4096)
def _parse(url: str) -> URL:
    """The URL, or ValueError for what yarl lets through: it drops a newline from a host
    (silently another host) and does not check IDNA A-labels; idna does.

    Cached (URLs are immutable; a refused one raises again each time): parsing and the
    IDNA check took ~4% of the forwarder's CPU when done per delivery."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise ValueError("control character or space in url")
    target = URL(url)
    host = target.raw_host
    if not host:
        raise ValueError("no host")
    if ":" not in host:  # IPv6 literals are not IDNA
        idna.decode(host)
    return target


async def _drain(response: aiohttp.ClientResponse) -> str:
    """Read a small reply so the connection can be reused (drop a large one unread);
    return its first EXCERPT_BYTES as text."""
    head = bytearray()
    received = 0
    async for chunk in response.content.iter_any():
        if len(head) < EXCERPT_BYTES:
            head += chunk[: EXCERPT_BYTES - len(head)]
        received += len(chunk)
        if received > MAX_RESPONSE_BYTES:
            response.close()
            break
    return head.decode(errors="replace")
