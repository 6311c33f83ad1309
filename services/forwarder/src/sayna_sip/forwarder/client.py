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
from collections.abc import Callable
from typing import Any

import aiohttp
import certifi
import idna
from aiohttp.abc import AbstractResolver
from yarl import URL

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.version import USER_AGENT
from sayna_sip.forwarder.egress import EgressProxy, ProxyHealth, tunnel_for
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
# Sent with every request by the session (the records show them with the rest).
SESSION_HEADERS = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}


def build_client(
    config: ServerConfig,
    dns: AbstractResolver | None = None,
    on_proxy_error: Callable[[], None] = lambda: None,
    proxy_health: ProxyHealth | None = None,
) -> HookClient:
    """Pooled, keep-alive, SSRF-pinned; redirects are failures, never followed.

    `limit` is the per-process cap; the per-host cap is the gate's (gate.py), which
    defers instead of queueing in the pool. `dns` replaces the system resolver (tests).
    With SIP_EGRESS_PROXY every request is tunnelled to an address checked here
    (egress.py); the connector then only ever dials the operator's proxy.
    """
    sip = config.sip
    fwd = config.forwarder
    policy = Policy(sip.hook_allow_networks if sip else ())
    resolver = CheckedResolver(policy, dns)
    proxy = EgressProxy.from_setting(sip.egress_proxy) if sip and sip.egress_proxy else None
    pinned: dict[str, Any] = {}
    if proxy is None:  # direct: the connector resolves and dials checked addresses only
        pinned = {"resolver": resolver, "socket_factory": guarded_socket(policy)}
    connector = aiohttp.TCPConnector(
        ssl=ssl_context(sip.hook_ca_bundle if sip else None),
        limit=fwd.concurrency,
        keepalive_timeout=30.0,
        **pinned,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(sock_connect=fwd.connect_timeout, sock_read=fwd.timeout),
        headers=SESSION_HEADERS,
        trust_env=False,
    )
    return HookClient(session, resolver, proxy, on_proxy_error, proxy_health)


class HookClient:
    """The process's one HTTP client for hooks: deliveries, test sends, ops notices."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        resolver: CheckedResolver,
        proxy: EgressProxy | None = None,
        on_proxy_error: Callable[[], None] = lambda: None,
        proxy_health: ProxyHealth | None = None,
    ) -> None:
        self._session = session
        self._resolver = resolver
        self.proxy = proxy
        self.proxy_health = proxy_health or ProxyHealth()
        self._on_proxy_error = on_proxy_error  # the metric

    async def close(self) -> None:
        await self._session.close()  # closes a connector-owned resolver too
        if self.proxy is not None:
            await self._resolver.close()

    async def post(self, url: str, body: bytes, headers: dict[str, str], total: float) -> Result:
        """One attempt: POST `body` to `url` within `total` seconds, classified."""
        try:
            target = _parse(url)
            async with asyncio.timeout(total):
                if self.proxy is None:
                    request = self._session.post(
                        target, data=body, headers=headers, allow_redirects=False
                    )
                else:
                    request = await self._through_proxy(self.proxy, target, body, headers)
                async with request as r:
                    excerpt = await _drain(r)
        except BlockedAddress as exc:
            return Result(Kind.BLOCKED, error=str(exc), url=url)
        except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError) as exc:
            return self._proxy_failed(url, _proxy_error(exc))
        except aiohttp.ConnectionTimeoutError as exc:
            if self.proxy is not None:  # through a proxy, the one TCP connect is to it
                return self._proxy_failed(url, f"timeout connecting to the proxy: {exc}")
            return Result(Kind.TIMEOUT, error=f"timeout after {total:g}s", url=url)
        except TimeoutError:  # also aiohttp's ServerTimeoutError
            return Result(Kind.TIMEOUT, error=f"timeout after {total:g}s", url=url)
        except aiohttp.ClientConnectorCertificateError as exc:
            # A ValueError too (ssl.CertificateError), but the tenant can fix it (an
            # expired or wrong certificate): retried like any connection failure.
            return Result(Kind.ERROR, error=f"{type(exc).__name__}: {exc}", url=url)
        except (aiohttp.InvalidURL, ValueError) as exc:
            # A URL aiohttp cannot use (bad IDNA label, control character, port out of
            # range): retrying cannot fix it. UnicodeError is a ValueError.
            return Result(
                Kind.INVALID_URL, error=f"invalid url: {type(exc).__name__}: {exc}", url=url
            )
        except aiohttp.ClientError as exc:
            return Result(Kind.ERROR, error=f"{type(exc).__name__}: {exc}", url=url)
        if self.proxy is not None:
            self.proxy_health.reached()
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

    async def _through_proxy(
        self, proxy: EgressProxy, target: URL, body: bytes, headers: dict[str, str]
    ) -> Any:
        tunnel = await tunnel_for(target, self._resolver)
        return self._session.post(
            tunnel.url,
            data=body,
            headers={**headers, "Host": tunnel.host_header},
            allow_redirects=False,
            proxy=proxy.url,
            proxy_headers=proxy.headers,
            server_hostname=tunnel.server_hostname,
        )

    def _proxy_failed(self, url: str, error: str) -> Result:
        self._on_proxy_error()
        delay = self.proxy_health.failed(time.monotonic())
        return Result(Kind.PROXY_ERROR, error=error, retry_after=delay, url=url)


def _proxy_error(exc: aiohttp.ClientError) -> str:
    """The proxy's failure in words, never with its credentials."""
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        auth = exc.status in (401, 407)  # 407 by the book; tinyproxy answers 401
        hint = " (check the credentials in SIP_EGRESS_PROXY)" if auth else ""
        return f"proxy answered CONNECT with {exc.status} {exc.message}{hint}"
    return f"cannot reach the proxy: {type(exc).__name__}: {getattr(exc, 'os_error', exc)}"


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
