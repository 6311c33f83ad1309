"""SSRF-safe connections: resolve, check every address, connect only to a checked one.

Two aiohttp hooks on the forwarder's one connector:

- `CheckedResolver` resolves the hook's host and drops addresses `netpolicy.is_blocked`
  refuses (unless in `SIP_HOOK_ALLOW_NETWORKS`); aiohttp then connects to a returned
  address itself, so DNS cannot answer differently between check and connect.
- `guarded_socket` is the connector's socket factory: every address aiohttp is about to
  connect to passes through it, IP-literal hosts included (aiohttp does not resolve
  those), and a refused one raises before a socket exists: no packet leaves for it.

TLS still verifies (and sends SNI for) the hook's host name: aiohttp passes the URL's
host as `server_hostname`, not the address.

Why not httpx-secure: it picks an address by opening a TCP probe to the host name and
checks the address it reached, so a refused internal target still sees a connection
attempt.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from sayna_sip.common.netpolicy import IPNetwork, is_blocked

AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]


class BlockedAddress(Exception):
    """Every address of the target is refused by the SSRF policy (nothing was sent)."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        super().__init__(f"blocked address: {host} -> {', '.join(addresses) or 'nothing'}")


class Policy:
    """The SSRF decision for one address, with the operator's allow list."""

    def __init__(self, allow: Iterable[IPNetwork] = ()) -> None:
        self._allow = tuple(allow)

    def blocked(self, address: str) -> bool:
        return is_blocked(ipaddress.ip_address(address), self._allow)  # `%scope` read too


class CheckedResolver(AbstractResolver):
    """A resolver that only ever answers with addresses the policy allows."""

    def __init__(self, policy: Policy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if not self._policy.blocked(r["host"])]
        if not allowed:
            raise BlockedAddress(host, list(dict.fromkeys(r["host"] for r in results)))
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def guarded_socket(policy: Policy) -> Callable[[AddrInfo], socket.socket]:
    """aiohttp's `socket_factory`: the last check before any connect."""

    def factory(addr_info: AddrInfo) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        address = str(sockaddr[0])
        if policy.blocked(address):
            raise BlockedAddress(address, [address])
        return socket.socket(family=family, type=type_, proto=proto)

    return factory
