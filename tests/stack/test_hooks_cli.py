"""`sayna-sip hooks …` against a real ingress (uvicorn) on a real NATS: what an operator
types and reads — tables, --json, the one-time secret, clear errors and exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from sayna_sip.cli import hooks_cli
from sayna_sip.common.secretbox import generate_key
from tests.fixtures.nats import NatsServer
from tests.ingress.conftest import ingress_config, serve_http

TOKEN = "cli-test-token-0123456789"
HOST = "pbx.tenant-c.example"


async def run(
    capsys: pytest.CaptureFixture[str], base: str, *args: str, token: str = TOKEN
) -> tuple[int, str, str]:
    """The CLI in a thread (it is synchronous; the ingress runs on this loop)."""
    argv = ["--url", base, "--token", token, *args]
    code = await asyncio.to_thread(hooks_cli.main, argv)
    out, err = capsys.readouterr()
    return code, out, err


async def test_hooks_cli_round_trip(
    nats_server: NatsServer, jetstream: JetStreamContext, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ingress_config(
        nats_server.url, AUTH_REQUIRED="true", AUTH_API_SECRET=TOKEN, SIP_SECRETS_KEY=generate_key()
    )
    async with serve_http(config) as http:
        base = str(http.base_url).rstrip("/")
        url = "https://hooks.tenant-c.example/sip"
        own = "tenant-c-own-secret-0123456789"
        code, out, _ = await run(
            capsys, base, "set", HOST, url, "--secret", own, "--events", "participant_joined"
        )
        assert code == 0 and HOST in out and "participant_joined" in out and own not in out

        code, out, _ = await run(capsys, base, "list", "--json")  # options after the action too
        listed = {h["host"]: h for h in json.loads(out)["hooks"]}
        assert listed[HOST]["events"] == ["participant_joined"]
        (fingerprint,) = [s["fingerprint"] for s in listed[HOST]["secrets"]]

        code, out, _ = await run(capsys, base, "replay", HOST, "--since", "2h")  # nothing yet
        assert (code, out.strip()) == (0, "replayed 0 event(s), 0 expired")

        code, out, _ = await run(capsys, base, "rotate-secret", HOST)
        new = out.split("store it now): ")[1].split()[0]
        assert code == 0 and new.startswith("whsec_") and fingerprint in out

        code, out, _ = await run(capsys, base, "disable", HOST)
        assert code == 0 and "disabled" in out
        code, out, _ = await run(capsys, base, "enable", HOST)
        assert code == 0 and "enabled" in out

        code, _, err = await run(capsys, base, "test", HOST)  # no forwarder is running
        assert code == 1 and "503 no_forwarder" in err

        code, _, err = await run(capsys, base, "list", token="wrong-token-0123456789")
        assert code == 1 and err.strip() == (
            "sayna-sip hooks: the ingress refused the API token (401 unauthorized): "
            "pass --token or set AUTH_API_SECRET"
        )

        code, _, err = await run(capsys, base, "set", HOST, "http://insecure.example/")
        assert code == 1 and "400 insecure_url" in err

        key = "crm-header-value-never-printed-42"
        code, out, _ = await run(
            capsys, base, "add-endpoint", HOST, "https://crm.tenant-c.example/in", "--id", "crm",
            "--header", f"X-Api-Key={key}", "--events", "participant_left",
        )  # fmt: skip
        assert code == 0 and "crm" in out and "X-Api-Key" in out and key not in out
        code, out, _ = await run(capsys, base, "endpoints", HOST)
        assert code == 0 and [r.split()[0] for r in out.splitlines()[1:]] == ["default", "crm"]
        code, out, _ = await run(capsys, base, "disable", HOST, "--endpoint", "crm")
        assert code == 0 and "crm" in out and "disabled" in out
        code, out, _ = await run(capsys, base, "rotate-secret", HOST, "--endpoint", "crm")
        assert code == 0 and "store it now): whsec_" in out and "crm" in out
        code, _, err = await run(capsys, base, "add-endpoint", HOST, url, "--header", "Host=x")
        assert code == 1 and "400 invalid_headers" in err and "Host" in err
        code, out, _ = await run(capsys, base, "remove-endpoint", HOST, "crm")
        assert code == 0 and "crm" not in out

        code, out, _ = await run(capsys, base, "delete", HOST)
        assert code == 0 and HOST not in out
        code, _, err = await run(capsys, base, "delete", HOST)  # gone already: not a success
        assert code == 1 and err.strip() == f"sayna-sip hooks: no runtime hook {HOST}"


async def test_hooks_cli_reads_the_token_and_port_from_dot_env_as_up_does(
    nats_server: NatsServer,
    jetstream: JetStreamContext,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = ingress_config(nats_server.url, AUTH_REQUIRED="true", AUTH_API_SECRET=TOKEN)
    async with serve_http(config) as http:
        port = http.base_url.port
        (tmp_path / ".env").write_text(f"PORT={port}\nAUTH_API_SECRET={TOKEN}\n")
        monkeypatch.chdir(tmp_path)
        for name in ("PORT", "AUTH_API_SECRET"):
            monkeypatch.delenv(name, raising=False)
        code = await asyncio.to_thread(hooks_cli.main, ["--json", "list"])
        out, err = capsys.readouterr()
        assert (code, json.loads(out)) == (0, {"hooks": []}), err


async def test_hooks_cli_says_when_the_ingress_is_not_there(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = await run(capsys, "http://127.0.0.1:9", "list")
    assert code == 1 and "cannot reach the ingress at http://127.0.0.1:9" in err
