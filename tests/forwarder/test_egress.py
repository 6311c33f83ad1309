"""Egress through a real HTTP CONNECT proxy (Debian's tinyproxy): deliveries reach the
tenant through it, the proxy is asked for the checked address and never the name, the
SSRF policy refuses before any CONNECT, and a proxy failure is the operator's, never
the endpoint's."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time

import httpx
import pytest
from nats.js import JetStreamContext

from sayna_sip.common import topology
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.hook import Hook
from sayna_sip.common.hosts import host_token
from sayna_sip.common.validate import egress_proxy
from sayna_sip.forwarder import client, egress, policy
from sayna_sip.forwarder.policy import Kind, Result
from tests.fixtures.https_sink import HttpsSink
from tests.fixtures.proxy import PinnedProxy, Tinyproxy
from tests.forwarder.conftest import (
    FAST,
    StartForwarder,
    drained,
    publish,
    put_hook,
    wait_dead,
)
from tests.forwarder.test_safenet import FixedResolver


def _config(proxy: str, allow: str = "127.0.0.0/8", ca: str = "") -> ServerConfig:
    env = {
        "SIP_ROOM_PREFIX": "sip-",
        "SIP_ALLOWED_ADDRESSES": "203.0.113.0/24",
        "SIP_EGRESS_PROXY": proxy,
        "FORWARDER_CONNECT_TIMEOUT": "1",
    }
    if allow:
        env["SIP_HOOK_ALLOW_NETWORKS"] = allow
    if ca:
        env["SIP_HOOK_CA_BUNDLE"] = ca
    return ServerConfig.from_env(env)


async def _post(c: client.HookClient, url: str) -> Result:
    return await c.post(url, b'{"event":"room_started"}', {"X-Test": "1"}, total=5)


async def test_a_delivery_tunnels_to_the_checked_address_with_tls_to_the_name(
    tinyproxy: Tinyproxy, https_sink: HttpsSink
) -> None:
    dns = FixedResolver("127.0.0.1")
    c = client.build_client(_config(tinyproxy.url(), ca=str(https_sink.ca_path)), dns=dns)
    try:
        result = await _post(c, https_sink.url("/via", host="localhost"))
    finally:
        await c.close()
    assert result.kind is Kind.DELIVERED, result
    got = https_sink.received("/via")
    assert len(got) == 1
    assert got[0].body == b'{"event":"room_started"}'
    assert got[0].headers["host"] == f"localhost:{https_sink.port}"  # the name, not the IP
    assert got[0].headers["x-test"] == "1"
    # The proxy was asked for the address the forwarder checked, never for the name.
    assert tinyproxy.connects() == [f"127.0.0.1:{https_sink.port}"]
    assert dns.asked == ["localhost"]


async def test_tls_through_the_tunnel_checks_the_hook_name(
    tinyproxy: Tinyproxy, https_sink: HttpsSink
) -> None:
    # The sink's certificate does not name hook.example.com: the tunnel opens, TLS fails,
    # and that is the endpoint's failure (an ordinary connection error), not the proxy's.
    c = client.build_client(
        _config(tinyproxy.url(), ca=str(https_sink.ca_path)), dns=FixedResolver("127.0.0.1")
    )
    try:
        result = await _post(c, https_sink.url(host="hook.example.com"))
    finally:
        await c.close()
    assert result.kind is Kind.ERROR, result
    assert "certificate" in result.error.lower(), result.error
    assert https_sink.received() == []
    assert c.proxy_health.unreachable_for(0.0) == 0.0


@pytest.mark.parametrize(
    ("authority", "answer", "connect", "host"),
    [
        ("localhost", "127.0.0.1", "127.0.0.1:443", "localhost"),  # the default port unsaid
        ("localhost:443", "127.0.0.1", "127.0.0.1:443", "localhost"),
        ("localhost:8443", "127.0.0.1", "127.0.0.1:8443", "localhost:8443"),
        ("[::1]", "::1", "[::1]:443", "[::1]"),  # an IPv6 literal keeps its brackets
        ("[::1]:8443", "::1", "[::1]:8443", "[::1]:8443"),
    ],
)
async def test_the_proxy_and_the_tenant_see_the_port_only_when_it_is_not_https_default(
    https_sink: HttpsSink, authority: str, answer: str, connect: str, host: str
) -> None:
    # The proxy tunnels every CONNECT to the sink, so the hook can name port 443 or an
    # IPv6 literal: the CONNECT names the checked address, `Host` the hook's own authority
    # as a direct request would (RFC 9110: no port when it is the scheme's default).
    proxy = PinnedProxy(https_sink.port)
    await proxy.start()
    config = _config(proxy.url(), allow="127.0.0.0/8,::1/128", ca=str(https_sink.ca_path))
    c = client.build_client(config, dns=FixedResolver(answer))
    try:
        result = await _post(c, f"https://{authority}/pinned")
    finally:
        await c.close()
        await proxy.stop()
    assert result.kind is Kind.DELIVERED, result
    assert [head[0] for head in proxy.heads] == [f"CONNECT {connect} HTTP/1.1"]
    got = https_sink.received("/pinned")
    assert len(got) == 1 and got[0].headers["host"] == host


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_a_blocked_target_is_refused_before_any_connect(
    tinyproxy: Tinyproxy, https_sink: HttpsSink, host: str
) -> None:
    # No allow list: loopback is refused by the SSRF policy, so the proxy hears nothing.
    c = client.build_client(_config(tinyproxy.url(), allow=""))
    try:
        result = await _post(c, https_sink.url(host=host))
    finally:
        await c.close()
    assert result.kind is Kind.BLOCKED, result
    assert "blocked address" in result.error
    assert tinyproxy.connects() == []
    assert tinyproxy.clients() == 0  # not even a TCP connection to the proxy


async def test_a_proxy_that_is_down_is_a_proxy_error_on_its_own_backoff(
    tinyproxy: Tinyproxy, https_sink: HttpsSink
) -> None:
    tinyproxy.stop()
    c = client.build_client(_config(tinyproxy.url(), ca=str(https_sink.ca_path)))
    try:
        first = await _post(c, https_sink.url())
        second = await _post(c, https_sink.url())
        assert first.kind is second.kind is Kind.PROXY_ERROR, (first, second)
        assert first.error.startswith("cannot reach the proxy: "), first.error
        assert first.retry_after is not None and 0.8 <= first.retry_after <= 1.2
        assert second.retry_after is not None and 1.6 <= second.retry_after <= 2.4
        assert not first.was_attempt  # no breaker, no failure state, no try spent
        await tinyproxy.start()
        back = await _post(c, https_sink.url())
    finally:
        await c.close()
    assert back.kind is Kind.DELIVERED, back
    assert c.proxy_health.unreachable_for(1e12) == 0.0  # a success resets it


@pytest.mark.parametrize(("password", "delivered"), [("wrong-pass", False), ("proxy-pass", True)])
async def test_proxy_credentials(
    tinyproxy_auth: Tinyproxy, https_sink: HttpsSink, password: str, delivered: bool
) -> None:
    url = tinyproxy_auth.url("sayna", password)
    c = client.build_client(_config(url, ca=str(https_sink.ca_path)))
    try:
        result = await _post(c, https_sink.url())
    finally:
        await c.close()
    if delivered:
        assert result.kind is Kind.DELIVERED, result
        return
    # tinyproxy answers a bad password with 401 (squid with 407): either is the proxy's.
    assert result.kind is Kind.PROXY_ERROR, result
    assert "proxy answered CONNECT with 401" in result.error
    assert "check the credentials in SIP_EGRESS_PROXY" in result.error
    assert password not in result.error
    assert https_sink.received() == []


async def test_forwarder_waits_out_a_proxy_outage_without_blaming_the_endpoint(
    start_forwarder: StartForwarder,
    tinyproxy: Tinyproxy,
    https_sink: HttpsSink,
    jetstream: JetStreamContext,
) -> None:
    # Three tries in the schedule, yet more proxy failures than that dead-letter nothing:
    # no try is spent, the hook's failure state is untouched, and it is delivered once the
    # proxy is back.
    await put_hook(jetstream, "p.example.com", https_sink.url("/p"))
    tinyproxy.stop()
    tuning = dataclasses.replace(FAST, proxy_backoff=0.1, proxy_unreachable_after=0.5)
    fwd = await start_forwarder(
        tuning, SIP_EGRESS_PROXY=tinyproxy.url(), SIP_ATTEMPT_RECORDS="false"
    )
    await publish(jetstream, "p.example.com")
    metrics_url = f"http://127.0.0.1:{fwd.port}/metrics"
    async with httpx.AsyncClient() as http:
        # Four failures (0.1 + 0.2 + 0.4 s of backoff) outlast the three-try schedule.
        await _metric_reaches(http, metrics_url, "sayna_sip_forwarder_proxy_errors_total 4.0")
        # Failing for longer than proxy_unreachable_after: not ready, and it says why.
        ready = await http.get(f"http://127.0.0.1:{fwd.port}/readyz")
        assert ready.status_code == 503 and ready.json()["error"] == "egress_proxy_unreachable"
        await tinyproxy.start()
        await https_sink.wait_for(1, "/p", timeout=10)
        await drained(jetstream)
        text = (await http.get(metrics_url)).text
        assert (await http.get(f"http://127.0.0.1:{fwd.port}/readyz")).status_code == 200
    assert await wait_dead(jetstream, 1, timeout=0.1) == []
    assert 'sayna_sip_forwarder_attempts_total{host="p.example.com",outcome="delivered"' in text
    assert 'outcome="error"' not in text
    kv = await jetstream.key_value(topology.HOOKS_BUCKET)
    hook = Hook.decode((await kv.get(host_token("p.example.com"))).value or b"")
    assert hook.failing_since is None and hook.enabled
    assert tinyproxy.connects() == [f"127.0.0.1:{https_sink.port}"]


async def _metric_reaches(http: httpx.AsyncClient, url: str, line: str) -> None:
    deadline = time.monotonic() + 15
    while line not in (await http.get(url)).text:  # no event to await on /metrics: poll
        assert time.monotonic() < deadline, f"{line!r} never appeared"
        await asyncio.sleep(0.05)


def test_a_proxy_error_retries_without_spending_a_try() -> None:
    result = Result(Kind.PROXY_ERROR, error="cannot reach the proxy", retry_after=2.5)
    schedule = (0.0, 5.0, 300.0)
    for failed_before in (0, 2, 7):  # even past the schedule's end: the proxy is ours
        decision = policy.decide(result, failed_before, schedule, random.Random(1))
        assert decision == policy.Retry(2.5, failed_before, spent=False)


def test_readiness_names_a_proxy_unreachable_for_a_while() -> None:
    health = egress.ProxyHealth(random.Random(1))
    assert health.problem(100.0) is None
    health.failed(100.0)
    health.failed(110.0)
    assert health.problem(100.0 + egress.UNREACHABLE_AFTER - 1) is None
    problem = health.problem(100.0 + egress.UNREACHABLE_AFTER + 1)
    assert problem is not None and problem.startswith("egress proxy unreachable for 31s")
    health.reached()
    assert health.problem(1000.0) is None


def test_backoff_doubles_up_to_its_cap() -> None:
    health = egress.ProxyHealth(random.Random(3))
    delays = [health.failed(0.0) for _ in range(10)]
    bases = [min(egress.BACKOFF_MAX, 2.0**i) for i in range(10)]
    for delay, base in zip(delays, bases, strict=True):
        assert 0.8 * base <= delay <= 1.2 * base


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://proxy:3128", "must be an http:// proxy URL"),
        ("proxy:3128", "must be an http:// proxy URL"),
        ("http://proxy", "needs a port"),
        ("http://:3128", "has no host"),
        ("http://proxy:99999", "is invalid"),
        ("http://proxy:3128/path", "host:port only"),
        ("http://user:s3cret@proxy", "needs a port"),
        ("http://:s3cret@proxy:3128", "empty user name"),
    ],
)
def test_a_bad_proxy_setting_fails_at_start_without_its_credentials(
    value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as bad:
        egress_proxy(value)
    assert message in str(bad.value)
    assert "s3cret" not in str(bad.value)


def test_proxy_credentials_stay_out_of_config_repr_and_display() -> None:
    config = _config("http://sayna:s3cret@proxy.internal:3128")
    assert config.sip is not None and "s3cret" not in repr(config.sip)
    proxy = egress.EgressProxy.from_setting(config.sip.egress_proxy or "")
    assert proxy.display == "http://proxy.internal:3128"
    assert str(proxy.url) == "http://proxy.internal:3128"
    assert proxy.headers == {"Proxy-Authorization": "Basic c2F5bmE6czNjcmV0"}
    assert "s3cret" not in repr(proxy) and "c2F5bmE6czNjcmV0" not in repr(proxy)


class _Top(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def test_the_proxy_backoff_starts_at_1_s_again_after_a_success_and_stops_at_30_s() -> None:
    health = egress.ProxyHealth(_Top(1))
    delays = [health.failed(0.0) for _ in range(8)]
    assert delays[:3] == pytest.approx([1.2, 2.4, 4.8]) and delays[-1] == pytest.approx(36.0)
    health.reached()
    assert health.failed(50.0) == pytest.approx(1.2)  # 1 s, + 20 % at most


def test_a_proxy_user_without_a_password_authenticates_with_an_empty_one() -> None:
    proxy = egress.EgressProxy.from_setting("http://sayna@proxy.internal:3128")
    assert proxy.headers == {"Proxy-Authorization": "Basic c2F5bmE6"}  # "sayna:"
