"""SSRF pinning: blocked targets are refused before any connection; listed networks are
allowed; the connection goes to the checked address, never to a re-resolved name."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import httpcore
import pytest

from sayna_sip.forwarder.safenet import BlockedAddress, PinnedBackend


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records where a connection would go."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        raise httpcore.ConnectError("recorded, not connected")


BLOCKED = ["127.0.0.1", "169.254.169.254", "10.0.0.1", "::1", "[::1]", "::ffff:10.0.0.1", "0.0.0.0"]


@pytest.mark.parametrize("host", BLOCKED)
async def test_blocked_targets_are_refused_without_connecting(host: str) -> None:
    inner = RecordingBackend()
    with pytest.raises(BlockedAddress):
        await PinnedBackend((), inner).connect_tcp(host, 443, timeout=1)
    assert inner.connects == []


@pytest.mark.parametrize(
    ("host", "allow"),
    [
        ("127.0.0.1", "127.0.0.0/8"),
        ("169.254.169.254", "169.254.169.254/32"),
        ("10.0.0.1", "10.0.0.0/8"),
        ("::1", "::1/128"),
    ],
)
async def test_listed_networks_are_allowed(host: str, allow: str) -> None:
    inner = RecordingBackend()
    backend = PinnedBackend([ipaddress.ip_network(allow)], inner)
    with pytest.raises(httpcore.ConnectError, match="recorded"):
        await backend.connect_tcp(host, 8443, timeout=1)
    assert inner.connects == [(str(ipaddress.ip_address(host)), 8443)]


async def test_a_name_is_resolved_once_and_the_checked_address_dialled() -> None:
    inner = RecordingBackend()
    backend = PinnedBackend([ipaddress.ip_network("127.0.0.0/8")], inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("localhost", 443, timeout=1)
    assert inner.connects and all(h == "127.0.0.1" for h, _ in inner.connects)


async def test_a_name_resolving_only_to_blocked_addresses_is_refused() -> None:
    inner = RecordingBackend()
    with pytest.raises(BlockedAddress, match="localhost"):
        await PinnedBackend((), inner).connect_tcp("localhost", 443, timeout=1)
    assert inner.connects == []
