"""Egress through an HTTP CONNECT proxy (SIP_EGRESS_PROXY): tenants allow one address.

The SSRF policy keeps its strength: the forwarder resolves the hook's name itself, drops
every address the policy refuses, and asks the proxy to `CONNECT <checked-ip>:<port>`,
never the name, so the proxy's own resolver cannot be steered to an internal address.
TLS runs end to end through the tunnel with the URL's name for SNI and the certificate
check (`server_hostname`), and `Host` carries the name.

A proxy failure is the operator's, not the endpoint's: `ProxyHealth` spaces the retries
on a short backoff of its own and tells `/readyz` how long the proxy has been failing.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from sayna_sip.common.validate import redact_url
from sayna_sip.forwarder.safenet import BlockedAddress, CheckedResolver

BACKOFF_FIRST = 1.0  # seconds before the first retry after a proxy failure
BACKOFF_MAX = 30.0  # the operator-side backoff never grows past this
UNREACHABLE_AFTER = 30.0  # failing this long without a success: /readyz says so


@dataclass(frozen=True)
class EgressProxy:
    """The proxy's URL without credentials (safe to show) and the `Proxy-Authorization`
    header its credentials make (never shown)."""

    url: URL
    display: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_setting(cls, setting: str) -> EgressProxy:
        """From a value `validate.egress_proxy` accepted."""
        full = URL(setting)
        headers = {}
        if full.user is not None:
            basic = aiohttp.encode_basic_auth(full.user, full.password or "")
            headers["Proxy-Authorization"] = basic
        bare = full.with_user(None).with_password(None).with_path("")
        return cls(bare, redact_url(setting), headers)


@dataclass(frozen=True)
class Tunnel:
    """Where one request goes through the proxy: the checked address in the URL, the
    hook's name for `Host`, SNI and the certificate check."""

    url: URL
    host_header: str
    server_hostname: str


async def tunnel_for(target: URL, resolver: CheckedResolver) -> Tunnel:
    """Resolve `target`'s host now and keep the first address the policy allows
    (BlockedAddress when none: nothing reaches the proxy)."""
    host = target.raw_host or ""  # an IPv6 literal without its brackets
    # No port: it only fills the answers' port, and the tunnel's URL keeps its own.
    allowed = await resolver.resolve(host, family=socket.AF_UNSPEC)
    if not allowed:  # the resolver raises first; kept for the type checker
        raise BlockedAddress(host, [])
    address = allowed[0]["host"]
    # `Host` as a direct request sends it: IPv6 in brackets, the port unless the default.
    return Tunnel(target.with_host(address), target.host_port_subcomponent or host, host)


class ProxyHealth:
    """Consecutive proxy failures of this process: the backoff and the readiness verdict.

    Shared by every delivery of the process (the proxy is one); a success through the
    proxy resets it. Pure state with the clock passed in."""

    def __init__(
        self,
        rng: random.Random | None = None,
        first: float = BACKOFF_FIRST,
        unreachable_after: float = UNREACHABLE_AFTER,
    ) -> None:
        self._rng = rng or random.Random()
        self._first = first
        self._unreachable_after = unreachable_after
        self._failures = 0
        self._failing_since: float | None = None

    def failed(self, now: float) -> float:
        """Note a proxy failure; the delay before the message is tried again."""
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = now
        delay: float = min(BACKOFF_MAX, self._first * 2.0 ** min(self._failures - 1, 16))
        return delay * self._rng.uniform(0.8, 1.2)

    def reached(self) -> None:
        """The proxy opened a tunnel (whatever the endpoint answered)."""
        self._failures = 0
        self._failing_since = None

    def unreachable_for(self, now: float) -> float:
        """Seconds the proxy has failed without a success in between (0 when fine)."""
        return 0.0 if self._failing_since is None else now - self._failing_since

    def problem(self, now: float) -> str | None:
        """What `/readyz` says once the proxy has failed for `unreachable_after` s."""
        failing = self.unreachable_for(now)
        if failing < self._unreachable_after:
            return None
        return f"egress proxy unreachable for {failing:.0f}s ({self._failures} failures)"
