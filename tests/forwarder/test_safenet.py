"""SSRF pinning: blocked targets are refused before any connection; listed networks are
allowed; the connection goes to the checked address, never to a re-resolved name."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from sayna_sip.common.config import ServerConfig
from sayna_sip.forwarder import client
from sayna_sip.forwarder.policy import Kind
from sayna_sip.forwarder.safenet import BlockedAddress, CheckedResolver, Policy, guarded_socket
from tests.fixtures.https_sink import HttpsSink


class FixedResolver(AbstractResolver):
    """Stands in for DNS: answers every name with the given addresses."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


class Listener:
    """A loopback TCP port that counts the connections it accepts."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0

    def on_connect(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.close()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    """A counting TCP listener on 127.0.0.1."""
    spy = Listener()
    server = await asyncio.start_server(spy.on_connect, "127.0.0.1", 0)
    spy.port = server.sockets[0].getsockname()[1]
    yield spy
    server.close()
    await server.wait_closed()


BLOCKED = ["127.0.0.1", "169.254.169.254", "10.0.0.1", "::1", "::ffff:10.0.0.1", "0.0.0.0"]


@pytest.mark.parametrize("address", BLOCKED)
def test_the_socket_factory_refuses_blocked_addresses(address: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with pytest.raises(BlockedAddress):
        guarded_socket(Policy())((family, socket.SOCK_STREAM, 0, "", (address, 443)))


@pytest.mark.parametrize(
    ("address", "allow"),
    [
        ("127.0.0.1", "127.0.0.0/8"),
        ("169.254.169.254", "169.254.169.254/32"),
        ("10.0.0.1", "10.0.0.0/8"),
        ("::1", "::1/128"),
    ],
)
def test_listed_networks_are_allowed(address: str, allow: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    factory = guarded_socket(Policy([ipaddress.ip_network(allow)]))
    factory((family, socket.SOCK_STREAM, 0, "", (address, 443))).close()


async def test_the_resolver_answers_only_allowed_addresses() -> None:
    inner = FixedResolver("10.0.0.5", "93.184.216.34", "127.0.0.1")
    results = await CheckedResolver(Policy(), inner).resolve("hook.example.com", 443)
    assert [r["host"] for r in results] == ["93.184.216.34"]


@pytest.mark.parametrize(
    ("addresses", "error"),
    [
        (("10.0.0.5",), "blocked address: hook.example.com -> 10.0.0.5"),
        (
            ("10.0.0.5", "fe80::1%eth0", "10.0.0.5"),
            "blocked address: hook.example.com -> 10.0.0.5, fe80::1%eth0",
        ),
        ((), "blocked address: hook.example.com -> nothing"),
    ],
)
async def test_a_name_resolving_only_to_blocked_addresses_is_refused(
    addresses: tuple[str, ...], error: str
) -> None:
    # The text is the attempt record's and the dead letter's `error`: it names the host
    # and what it resolved to, so the operator sees why nothing was sent.
    with pytest.raises(BlockedAddress) as refused:
        await CheckedResolver(Policy(), FixedResolver(*addresses)).resolve("hook.example.com")
    assert str(refused.value) == error


@pytest.mark.parametrize(
    ("address", "blocked"), [("fe80::1%eth0", True), ("2001:4860::8888%2", False)]
)
def test_scoped_ipv6_addresses_are_judged_by_their_address(address: str, blocked: bool) -> None:
    assert Policy().blocked(address) is blocked


def _config(allow: str = "", **extra: str) -> ServerConfig:
    env = {"SIP_ROOM_PREFIX": "sip-", "SIP_ALLOWED_ADDRESSES": "203.0.113.0/24", **extra}
    if allow:
        env["SIP_HOOK_ALLOW_NETWORKS"] = allow
    return ServerConfig.from_env(env)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost"])
async def test_a_refused_address_receives_no_tcp_connection(listener: Listener, host: str) -> None:
    hooks = client.build_client(_config())
    try:
        url = f"https://{host}:{listener.port}/hook"
        result = await hooks.post(url, b"{}", {}, total=2)
    finally:
        await hooks.close()
    assert result.kind is Kind.BLOCKED, result
    assert result.error.startswith("blocked address: "), result  # what records show
    assert listener.accepted == 0


async def test_an_allowed_address_is_dialled_as_checked(listener: Listener) -> None:
    hooks = client.build_client(_config("127.0.0.0/8"))
    try:
        url = f"https://127.0.0.1:{listener.port}/hook"
        result = await hooks.post(url, b"{}", {}, total=2)
    finally:
        await hooks.close()
    assert result.kind is Kind.ERROR  # the listener hangs up: no TLS, but it was reached
    assert listener.accepted == 1


@pytest.mark.parametrize(("name", "delivered"), [("localhost", True), ("hook.example.com", False)])
async def test_tls_verifies_the_hook_name_not_the_address(
    https_sink: HttpsSink, name: str, delivered: bool
) -> None:
    config = _config("127.0.0.0/8", SIP_HOOK_CA_BUNDLE=str(https_sink.ca_path))
    hooks = client.build_client(config, dns=FixedResolver("127.0.0.1"))
    try:
        result = await hooks.post(https_sink.url(host=name), b"{}", {}, total=2)
    finally:
        await hooks.close()
    # A certificate for another name is the tenant's to fix: retried, not dead at once.
    assert result.kind is (Kind.DELIVERED if delivered else Kind.ERROR), result
    assert len(https_sink.received()) == int(delivered)
