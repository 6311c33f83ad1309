"""The hook client: one shared httpx.AsyncClient per process, and one attempt = one POST
translated into a `policy.Result` (httpx and SSRF errors do not leak past this module).
"""

from __future__ import annotations

import asyncio
import ssl
import time

import certifi
import httpcore
import httpx

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.version import USER_AGENT
from sayna_sip.forwarder.policy import Kind, Result, parse_retry_after
from sayna_sip.forwarder.safenet import BlockedAddress, PinnedBackend


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """System CAs, certifi's, and `SIP_HOOK_CA_BUNDLE` on top (verification always on)."""
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(certifi.where())
    if ca_bundle:
        ctx.load_verify_locations(ca_bundle)
    return ctx


MAX_RESPONSE_BYTES = 64 * 1024  # read this much of a reply (keeps the connection reusable)
EXCERPT_BYTES = 4096  # the start of a reply kept for records and test sends


def build_client(config: ServerConfig, http2: bool = True) -> httpx.AsyncClient:
    """Pooled, keep-alive, SSRF-pinned; redirects are failures, never followed."""
    sip = config.sip
    fwd = config.forwarder
    limits = httpx.Limits(
        max_connections=fwd.concurrency,
        max_keepalive_connections=fwd.concurrency,
        keepalive_expiry=30.0,
    )
    ctx = ssl_context(sip.hook_ca_bundle if sip else None)
    transport = httpx.AsyncHTTPTransport(verify=ctx, http2=http2, limits=limits, trust_env=False)
    # The only supported way to give httpx a network backend is its httpcore pool.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ctx,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=http2,
        network_backend=PinnedBackend(sip.hook_allow_networks if sip else ()),
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(fwd.timeout, connect=fwd.connect_timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
    )


async def post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], total: float
) -> Result:
    """One attempt: POST `body` to `url` within `total` seconds, classified."""
    try:
        request = client.build_request("POST", url, content=body, headers=headers)
        _check_port(request.url)
        async with asyncio.timeout(total):
            response = await client.send(request, stream=True)
            try:
                excerpt = await _drain(response)
            finally:
                await response.aclose()
    except BlockedAddress as exc:
        return Result(Kind.BLOCKED, error=str(exc), url=url)
    except (httpx.InvalidURL, ValueError) as exc:
        # A URL httpx cannot use (bad IDNA label, control character, port out of
        # range): not an httpx.HTTPError, and retrying cannot fix it. UnicodeError,
        # from encoding the host at connect time, is a ValueError.
        return Result(Kind.INVALID_URL, error=f"invalid url: {type(exc).__name__}: {exc}", url=url)
    except (httpx.TimeoutException, TimeoutError):
        return Result(Kind.TIMEOUT, error=f"timeout after {total:g}s", url=url)
    except httpx.HTTPError as exc:
        return Result(Kind.ERROR, error=f"{type(exc).__name__}: {exc}", url=url)
    if 200 <= response.status_code < 300:
        return Result(Kind.DELIVERED, status=response.status_code, url=url, excerpt=excerpt)
    retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
    return Result(
        Kind.STATUS,
        status=response.status_code,
        error=f"HTTP {response.status_code}",
        retry_after=retry_after,
        url=url,
        excerpt=excerpt,
    )


def _check_port(url: httpx.URL) -> None:
    """httpx accepts any number as a port; the socket layer then fails in odd ways."""
    if url.port is not None and not 0 < url.port < 65536:
        raise httpx.InvalidURL(f"port {url.port} out of range")


async def _drain(response: httpx.Response) -> str:
    """Read a small reply so the connection can be reused (drop a large one unread);
    return its first EXCERPT_BYTES as text."""
    head = bytearray()
    received = 0
    async for chunk in response.aiter_bytes():
        if len(head) < EXCERPT_BYTES:
            head += chunk[: EXCERPT_BYTES - len(head)]
        received += len(chunk)
        if received > MAX_RESPONSE_BYTES:
            break
    return head.decode(errors="replace")
