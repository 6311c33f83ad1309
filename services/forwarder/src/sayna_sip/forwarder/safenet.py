"""SSRF-safe connections: resolve, check every address, connect only to a checked one.

An httpcore network backend used by the forwarder's one HTTP client. For each new
connection it resolves the hook's host, drops addresses `netpolicy.is_blocked` refuses
(unless in `SIP_HOOK_ALLOW_NETWORKS`), and connects to the remaining address itself, so
DNS cannot answer differently between check and connect. TLS still verifies (and sends
SNI for) the hook's host name: httpcore passes that to `start_tls`, not the address.

Why not httpx-secure: it picks an address by opening a TCP probe to the host name and
checks the address it reached, so a refused internal target still sees a connection
attempt. Here a refused target sees nothing: no packet leaves for it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

import httpcore

from sayna_sip.common.netpolicy import IPNetwork, is_blocked


class BlockedAddress(Exception):
    """Every address of the target is refused by the SSRF policy (nothing was sent)."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        super().__init__(f"blocked address: {host} -> {', '.join(addresses) or 'nothing'}")
        self.host = host
        self.addresses = addresses


class PinnedBackend(httpcore.AsyncNetworkBackend):
    def __init__(
        self, allow: Iterable[IPNetwork] = (), inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._allow = tuple(allow)
        self._inner = inner or httpcore.AnyIOBackend()

    async def resolve(self, host: str, port: int) -> list[str]:
        """Addresses of `host`, in resolver order, without duplicates (literals as-is)."""
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:  # socket.gaierror: no such host, resolver down
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self.resolve(host, port)
                allowed = [a for a in addresses if not self.blocked(a)]
                if not allowed:
                    raise BlockedAddress(host, addresses)
                return await self._connect_first(allowed, port, local_address, socket_options)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connect to {host}:{port} timed out") from None

    def blocked(self, address: str) -> bool:
        return is_blocked(ipaddress.ip_address(address.split("%", 1)[0]), self._allow)

    async def _connect_first(
        self,
        addresses: list[str],
        port: int,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, OSError) as exc:
                last = exc
        raise httpcore.ConnectError(str(last)) from last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress(path, [])  # hooks are HTTPS URLs; never a local socket

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
