"""The pieces of `up`, `sink` and `send-test-event` that are plain functions: the dev-mode
environment, which NATS to use, signature checks and LiveKit-style signing."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from livekit import api
from standardwebhooks.webhooks import Webhook

from sayna_sip.cli import devca, send_test_event, sink, up
from sayna_sip.common.config import ServerConfig
from tests.fixtures.livekit import API_KEY, API_SECRET

SIP_ENV = {"SIP_ROOM_PREFIX": "test-sip-", "SIP_ALLOWED_ADDRESSES": "127.0.0.1"}
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_child_env_without_sip_adds_no_sip_variable(tmp_path: Path) -> None:
    env = up.child_env({"PATH": "/bin"}, ServerConfig.from_env({}), "nats://n:1", tmp_path)
    assert env == {"PATH": "/bin", "NATS_URL": "nats://n:1", "PYTHONUNBUFFERED": "1"}
    assert ServerConfig.from_env(env).sip is None  # still disabled in the children


def test_child_env_with_sip_allows_loopback_and_trusts_the_dev_ca(tmp_path: Path) -> None:
    base = {**SIP_ENV, "SIP_HOOK_ALLOW_NETWORKS": "10.1.0.0/16,::1/128"}
    env = up.child_env(base, ServerConfig.from_env(base), "nats://n:1", tmp_path / "ca.pem")
    assert env["SIP_HOOK_ALLOW_NETWORKS"] == "10.1.0.0/16,::1/128,127.0.0.0/8"
    assert env["SIP_HOOK_CA_BUNDLE"] == str(tmp_path / "ca.pem")


def test_dev_mode_makes_one_private_secrets_key_and_children_get_it(tmp_path: Path) -> None:
    key = up.dev_secrets_key(tmp_path / "data")
    assert up.dev_secrets_key(tmp_path / "data") == key  # kept across runs
    assert ((tmp_path / "data" / "secrets.key").stat().st_mode & 0o777) == 0o600
    env = up.child_env(SIP_ENV, ServerConfig.from_env(SIP_ENV), "nats://n:1", None, key)
    assert ServerConfig.from_env(env).sip.secret_box is not None  # type: ignore[union-attr]
    mine = {**SIP_ENV, "SIP_SECRETS_KEY": key.replace(key[:4], "AAAA")}
    env = up.child_env(mine, ServerConfig.from_env(mine), "nats://n:1", None, key)
    assert env["SIP_SECRETS_KEY"] == mine["SIP_SECRETS_KEY"]  # the operator's own key wins


def test_child_env_keeps_the_users_ca_bundle(tmp_path: Path) -> None:
    mine = tmp_path / "mine.pem"
    mine.write_text("x")
    base = {**SIP_ENV, "SIP_HOOK_CA_BUNDLE": str(mine)}
    env = up.child_env(base, ServerConfig.from_env(base), "nats://n:1", tmp_path / "ca.pem")
    assert env["SIP_HOOK_CA_BUNDLE"] == str(mine)


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, {}, None),
        ("nats://flag:4222", {"NATS_URL": "nats://env:4222"}, "nats://flag:4222"),
        (None, {"NATS_URL": "nats://env:4222"}, "nats://env:4222"),
        (None, {"NATS_URL": "  "}, None),
    ],
)
def test_external_nats_url(flag: str | None, env: dict[str, str], expected: str | None) -> None:
    assert up.external_nats_url(flag, env, ServerConfig.from_env(env)) == expected


@pytest.mark.parametrize(
    ("host", "shown"),
    [("0.0.0.0", "127.0.0.1"), ("::", "[::1]"), ("::1", "[::1]"), ("10.0.0.5", "10.0.0.5")],
)
def test_display_host(host: str, shown: str) -> None:
    assert up.display_host(host) == shown


def test_dev_ca_is_created_once_and_reused(tmp_path: Path) -> None:
    first = devca.dev_ca(tmp_path)
    second = devca.dev_ca(tmp_path)
    assert first.pem_path == second.pem_path == tmp_path / "dev-ca" / "ca.pem"
    assert first.ca.cert_pem.bytes() == second.ca.cert_pem.bytes()
    assert (tmp_path / "dev-ca" / "ca.key").stat().st_mode & 0o077 == 0


def _signed(secret: str | bytes, body: bytes) -> dict[str, str]:
    now = datetime.now(UTC)
    sig = Webhook(secret).sign("EV_1", now, body.decode())
    return {
        "webhook-id": "EV_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sig,
    }


BODY = b'{"event":"participant_joined","room":{"name":"test-sip-demo"}}'


@pytest.mark.parametrize(
    ("signer", "secrets", "verdict"),
    [
        (WHSEC, [WHSEC], "verified"),
        (b"plain-secret", ["plain-secret"], "verified"),  # UTF-8 key
        (WHSEC, ["other", WHSEC], "verified"),  # rotation
        (WHSEC, ["whsec_b3RoZXI="], "INVALID"),
        (WHSEC, [], "unchecked"),
        (None, [WHSEC], "unsigned"),
    ],
)
def test_sink_checks_signatures(
    signer: str | bytes | None, secrets: list[str], verdict: str
) -> None:
    # Signed now, not at collection: a timestamp minutes old is refused as a replay.
    headers = _signed(signer, BODY) if signer is not None else {}
    assert sink.check_signature(BODY, headers, secrets) == verdict


def test_sink_describes_a_delivery() -> None:
    line = sink.describe(BODY, _signed(WHSEC, BODY), [WHSEC])
    assert line == (
        "delivery event=participant_joined webhook-id=EV_1 room=test-sip-demo "
        f"bytes={len(BODY)} signature=verified"
    )


def test_sink_secrets_come_from_every_configured_hook() -> None:
    g1, g2, h1 = "global-one-0123456789", "global-two-0123456789", "hook-one-0123456789"
    env = {**SIP_ENV, "SIP_HOOK_SECRET": f"{g1} {g2}"}
    env["SIP_HOOKS_JSON"] = json.dumps(
        [{"host": "a.example.com", "url": "https://a.example.com/h", "secret": h1}]
    )
    assert sink.configured_secrets(ServerConfig.from_env(env)) == [g1, g2, h1]


def test_test_event_is_a_sip_participant_event_signed_like_livekit() -> None:
    event = send_test_event.build_event("participant_joined", "test-sip-demo", "sip:+1@x.com")
    assert event["participant"]["kind"] == "SIP"
    assert event["participant"]["attributes"]["sip.h.to"] == "sip:+1@x.com"
    assert event["room"]["name"] == "test-sip-demo" and event["id"].startswith("EV_")
    body = json.dumps(event).encode()

    token = send_test_event.sign(body, API_KEY, API_SECRET)

    received = api.WebhookReceiver(api.TokenVerifier(API_KEY, API_SECRET)).receive(
        body.decode(), token
    )
    assert received.event == "participant_joined" and received.id == event["id"]
    with pytest.raises(Exception, match="hash"):
        api.WebhookReceiver(api.TokenVerifier(API_KEY, API_SECRET)).receive(
            body.decode() + " ", token
        )


def test_room_events_carry_no_participant() -> None:
    assert "participant" not in send_test_event.build_event("room_finished", "r", "sip:a@b.c")


def test_try_it_tools_find_the_ingress_of_the_up_running_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sayna_sip.cli import hooks_cli
    from sayna_sip.common import upstate

    monkeypatch.chdir(tmp_path)
    assert hooks_cli.ingress_base({}) == "http://127.0.0.1:3001"
    data = tmp_path / upstate.DEFAULT_DATA_DIR
    data.mkdir()
    upstate.write(
        data, upstate.UpState(os.getpid(), "nats://127.0.0.1:4999", "http://127.0.0.1:4555")
    )
    assert hooks_cli.ingress_base({}) == "http://127.0.0.1:4555"
    assert hooks_cli.ingress_base({"PORT": "3009"}) == "http://127.0.0.1:3009"  # PORT wins
    url = send_test_event.webhook_url(ServerConfig())
    assert url == "http://127.0.0.1:4555/livekit/webhook"
    assert send_test_event.webhook_url(ServerConfig(port=3005)).endswith(":3005/livekit/webhook")
    other = tmp_path / "other"  # `up --data-dir other`: found with --data-dir other
    other.mkdir()
    upstate.write(
        other, upstate.UpState(os.getpid(), "nats://127.0.0.1:4998", "http://127.0.0.1:4556")
    )
    assert hooks_cli.ingress_base({}, str(other)) == "http://127.0.0.1:4556"
    assert send_test_event.webhook_url(ServerConfig(), str(other)).startswith(
        "http://127.0.0.1:4556/"
    )


def test_the_sink_takes_a_hooks_own_secret_beside_the_configured_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A runtime hook set with its own secret: the sink knew only the global one (INVALID).
    own = "tenant-own-secret-0123456789"
    monkeypatch.setenv("SIP_HOOK_SECRET", WHSEC)
    for name in ("SIP_ROOM_PREFIX", "SIP_HOOKS_JSON"):
        monkeypatch.delenv(name, raising=False)
    secrets = sink.find_secrets([own], None)
    assert secrets == [own, WHSEC]
    assert sink.check_signature(BODY, _signed(own.encode(), BODY), secrets) == "verified"
    assert sink.check_signature(BODY, _signed(WHSEC, BODY), secrets) == "verified"


def test_send_test_event_says_when_sip_is_off_where_the_event_goes(tmp_path: Path) -> None:
    from sayna_sip.common import upstate

    base = "http://127.0.0.1:4555"
    url = f"{base}/livekit/webhook"
    off, on = ServerConfig(), ServerConfig.from_env(SIP_ENV)
    assert send_test_event.sip_off(off, url, str(tmp_path)) == (
        "SIP is off in this configuration (no sip: section, no SIP_* variable)"
    )
    assert send_test_event.sip_off(on, url, str(tmp_path)) is None
    upstate.write(tmp_path, upstate.UpState(os.getpid(), "nats://x:1", base, sip=False))
    assert send_test_event.sip_off(on, url, str(tmp_path)) == (
        "the `sayna-sip up` running here has SIP off"
    )
    upstate.write(tmp_path, upstate.UpState(os.getpid(), "nats://x:1", base, sip=True))
    assert send_test_event.sip_off(off, url, str(tmp_path)) is None  # the up's word counts
