"""`sayna-sip provision` as the containers run it: exit codes, summary line, error text."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import nats

from sayna_sip.common import topology
from sayna_sip.common.hook import Hook
from sayna_sip.common.hosts import host_token
from tests.fixtures.livekit import LiveKitTwirp
from tests.fixtures.nats import NatsServer
from tests.provisioner.helpers import sip_env

CLI = str(Path(sys.executable).parent / "sayna-sip")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


async def provision_cli(env: dict[str, str], *args: str) -> Run:
    """Run the CLI with only `env` (plus PATH), so the caller's environment cannot leak in."""
    proc = await asyncio.create_subprocess_exec(
        CLI,
        "provision",
        *args,
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def test_provision_exits_zero_and_prints_one_summary_line(
    nats_server: NatsServer, livekit_server: LiveKitTwirp, tmp_path: Path
) -> None:
    config = tmp_path / "sayna.yaml"
    config.write_text(
        "sip:\n"
        "  room_prefix: call-\n"
        "  allowed_addresses: [10.0.0.1]\n"
        "  hooks:\n"
        "    - {host: a.example.com, url: 'https://a.example.com/hook'}\n"
    )
    env = {"NATS_URL": nats_server.url, **sip_env(livekit_server)}
    env.pop("SIP_ALLOWED_ADDRESSES")  # from the file

    first = await provision_cli(env, "--config", str(config))
    second = await provision_cli(env, "--config", str(config))

    assert first.code == 0, first.stderr
    [line] = first.stdout.splitlines()
    assert line.startswith("provisioned created=15 updated=0 removed=0 unchanged=0 | created: ")
    assert "livekit_trunk:sayna-call--trunk" in line and "hook:a.example.com" in line
    assert "Successfully provisioned SIP resources: trunk=sayna-call--trunk" in first.stderr
    assert second.code == 0, second.stderr
    assert second.stdout == "provisioned created=0 updated=0 removed=0 unchanged=15\n"
    nc = await nats.connect(nats_server.url)
    try:
        kv = await nc.jetstream().key_value(topology.HOOKS_BUCKET)
        entry = await kv.get(host_token("a.example.com"))
    finally:
        await nc.close()
    assert Hook.decode(entry.value or b"").source == "config"


async def test_wrong_secret_exits_one_naming_resources_and_error(
    nats_server: NatsServer, livekit_server: LiveKitTwirp
) -> None:
    env = {
        "NATS_URL": nats_server.url,
        **sip_env(livekit_server, LIVEKIT_API_SECRET="wrong-secret-0123456789abcdef0123456789"),
    }

    run = await provision_cli(env)

    assert run.code == 1
    assert run.stdout == ""
    assert "trunk=sayna-call--trunk dispatch=sayna-call--dispatch" in run.stderr
    assert "unauthenticated" in run.stderr
    assert "sayna-sip provision: failed:" in run.stderr


async def test_credentials_without_livekit_url_skip_livekit_and_exit_zero(
    nats_server: NatsServer, livekit_server: LiveKitTwirp
) -> None:
    # Local development under compose: the key and secret are there for the ingress to
    # verify webhooks, there is no LiveKit server; the services must still start.
    env = {"NATS_URL": nats_server.url, **sip_env(livekit_server)}
    env.pop("LIVEKIT_URL")

    run = await provision_cli(env)

    assert run.code == 0, run.stderr
    assert run.stdout.startswith("provisioned created=") and "stream:LK_EVENTS" in run.stdout
    assert "event=livekit_sip_skipped reason=LIVEKIT_URL_not_set" in run.stderr
    assert "trunk=sayna-call--trunk dispatch=sayna-call--dispatch" in run.stderr
    assert livekit_server.calls == []


async def test_sip_off_provisions_nothing_of_sip_and_turning_it_on_later_does(
    nats_server: NatsServer,
) -> None:
    run = await provision_cli({"NATS_URL": nats_server.url})

    assert run.code == 0, run.stderr
    assert run.stdout == ("provisioned created=3 updated=0 removed=0 unchanged=0 | created: "
                          "stream:LK_EVENTS, consumer:LK_EVENTS/router, "
                          "consumer:LK_EVENTS/router-p00..p15\n")  # fmt: skip
    said = (run.stdout + run.stderr).replace("sayna_sip", "").replace("sayna-sip", "")
    assert "sip" not in said.lower(), said  # no SIP_* stream, no sip_* bucket, not a word
    # Its own close at the end is no lost connection: an error line would page someone.
    assert "error" not in run.stderr, run.stderr
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        assert [s.config.name for s in await js.streams_info()] == [topology.LK_EVENTS]

        on = await provision_cli({"NATS_URL": nats_server.url, **sip_env()})

        assert on.code == 0, on.stderr
        assert on.stdout.startswith("provisioned created=9 updated=0 removed=0 unchanged=3 "), on
        names = {s.config.name for s in await js.streams_info()}
        assert {topology.SIP_DELIVERIES, topology.SIP_DEAD, f"KV_{topology.ROOMS_BUCKET}"} <= names
        await topology.check_topology(js)  # the whole table now
    finally:
        await nc.close()


async def test_invalid_config_exits_two_with_the_message(nats_server: NatsServer) -> None:
    env = {"NATS_URL": nats_server.url, **sip_env(SIP_ALLOWED_ADDRESSES="999.1.1.1")}

    run = await provision_cli(env)

    assert run.code == 2
    assert "SIP allowed_address '999.1.1.1' does not look valid" in run.stderr
