"""What an operator sees of `sayna-sip up` beside its services: the embedded NATS logged
as it runs (nats.log and the console) and supervised like the other children, a state
file that lets the NATS-only tools find it from the quick-start shell, and `.env` read
under the process environment."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

import httpx
import nats
import pytest

from sayna_sip.common import upstate
from sayna_sip.common.config import NatsConfig
from tests.common.test_natsconn import closed_port
from tests.fixtures.nats import NatsServer
from tests.stack.test_up import CLI, Proc, free_port, free_port_pair

pytestmark = pytest.mark.timeout(120)


async def run_tool(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


SERVICE_LINE = re.compile(r"^(?:ingress|router|forwarder-\d+|provision|nats) +\| ")


def unbranded(line: str) -> str:
    """The line, lowercase, without our own name: what is left must not say "sip"."""
    return line.lower().replace("sayna-sip", "").replace("sayna_sip", "")


def sip_off(prog: str, stream: str) -> str:
    return (f"{prog}: SIP is off in the `sayna-sip up` running here: nothing is routed or "
            f"delivered, so there is no {stream}. To route calls: sayna-sip up --config "
            "local.yaml, or set SIP_ROOM_PREFIX")  # fmt: skip


def quick_start_shell() -> dict[str, str]:
    """The README's shell: the LiveKit pair and SIP_HOOK_SECRET exported, no NATS_URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIP_", "NATS_"))}
    for name in ("PORT", "HOST", "ROUTER_PORT", "FORWARDER_PORT", "LIVEKIT_URL"):
        env.pop(name, None)
    env.update(
        LIVEKIT_API_KEY="devkey",
        LIVEKIT_API_SECRET="devsecret-change-me-0123456789abcdef",
        SIP_HOOK_SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        PYTHONUNBUFFERED="1",
    )
    return env


async def test_up_logs_and_supervises_its_nats_and_the_tools_find_it(tmp_path: Path) -> None:
    port, router_port, forwarder_port = free_port(), free_port(), free_port_pair()
    (tmp_path / ".env").write_text(  # compose's .env: read by `up` too, under the environment
        f"PORT=1\nROUTER_PORT={router_port}\nFORWARDER_PORT={forwarder_port}\n"
        "LIVEKIT_API_KEY=devkey\nLIVEKIT_API_SECRET=devsecret-change-me-0123456789abcdef\n"
    )
    shell = quick_start_shell()
    up_env = {k: v for k, v in shell.items() if not k.startswith(("SIP_", "LIVEKIT_"))}
    up_env["PORT"] = str(port)  # the environment wins over .env's PORT=1
    up = await Proc.start(["up", "--nats-port", "0", "--forwarders", "1"], up_env, cwd=tmp_path)
    data = tmp_path / ".sayna-sip"
    try:
        await up.wait_for(rf"event=stack_ready ingress=http://127.0.0.1:{port} forwarders=1")
        assert not up.matching("note: set LIVEKIT_API_KEY")  # the key pair came from .env
        async with httpx.AsyncClient() as client:
            ready = await client.get(f"http://127.0.0.1:{router_port}/readyz")
        assert ready.status_code == 200, ready.text  # .env's ROUTER_PORT
        first = await up.wait_for(r"event=nats_started url=(\S+) pid=(\d+)")
        url, pid = first[0].group(1), int(first[0].group(2))

        assert "Server is ready" in (data / "nats.log").read_text()  # written as it comes
        assert up.matching(r"^nats +\| .*Server is ready")
        state = json.loads((data / "up.json").read_text())
        assert state == {"version": 1, "pid": up.proc.pid, "nats_url": url,
                         "ingress_url": f"http://127.0.0.1:{port}", "sip": False}  # fmt: skip
        assert up.matching(r"SIP is off \(no sip: section, no SIP_\* variable\): webhooks are "
                           r"answered 200 and dropped\. To route calls: sayna-sip up --config "
                           r"local\.yaml, or set SIP_ROOM_PREFIX")  # fmt: skip

        # A second `up` here is refused before it starts anything, and names the first.
        code, out = await run_tool(["up", "--nats-port", "0"], up_env, tmp_path)
        assert (code, out.strip()) == (1, (
            f"sayna-sip up: already running (pid {up.proc.pid}), ingress at "
            f"http://127.0.0.1:{port}; data dir .sayna-sip is in use: stop that one first, "
            "or pass another --data-dir"))  # fmt: skip
        assert json.loads((data / "up.json").read_text()) == state  # never touched

        # SIP off: nothing of SIP's in NATS, the services ready all the same, logs quiet.
        nc = await nats.connect(url)
        try:
            streams = [i.config.name for i in await nc.jetstream().streams_info()]
        finally:
            await nc.close()
        assert streams == ["LK_EVENTS"]  # no SIP_* stream, no KV_sip_* bucket
        async with httpx.AsyncClient() as client:
            ready = await client.get(f"http://127.0.0.1:{forwarder_port}/readyz")
        assert ready.status_code == 200, ready.text
        services = [ln for ln in up.lines if SERVICE_LINE.match(ln)]
        assert services and not [ln for ln in services if "sip" in unbranded(ln)], services
        code, out = await run_tool(["dlq", "list"], shell, tmp_path)
        assert (code, out.strip()) == (1, sip_off("sayna-sip dlq", "SIP_DEAD"))
        code, out = await run_tool(["deliveries", "list"], shell, tmp_path)
        assert (code, out.strip()) == (1, sip_off("sayna-sip deliveries", "SIP_ATTEMPTS"))
        code, out = await run_tool(["hooks", "--json", "list"], shell, tmp_path)
        assert code == 0 and json.loads(out) == {"hooks": []}, out

        os.kill(pid, signal.SIGKILL)
        await up.wait_for(rf"event=child_exited service=nats pid={pid} code=-9 restart_in=0.5s")
        again = (await up.wait_for(r"event=nats_started url=(\S+) pid=(\d+)", count=2))[1]
        assert again.group(1) == url  # same port: the services reconnect where they were
        code, out = await run_tool(["dlq", "list"], shell, tmp_path)
        assert (code, out.strip()) == (1, sip_off("sayna-sip dlq", "SIP_DEAD"))
    finally:
        assert await up.stop() == 0, "\n".join(up.lines[-40:])
    assert not (data / "up.json").exists()
    assert (data / "nats.log").read_text().count("Server is ready") == 2


async def test_nats_only_tools_say_where_their_nats_came_from(tmp_path: Path) -> None:
    env = quick_start_shell() | {
        "NATS_START_TIMEOUT": "1",
        "NATS_URL": f"nats://127.0.0.1:{closed_port()}",
    }
    for tool in (["dlq", "list"], ["deliveries", "list"]):
        code, out = await run_tool(tool, env, tmp_path)
        assert code == 1 and "room_prefix" not in out, out  # no SIP block needed
        assert "(NATS from NATS_URL)" in out, out


async def test_nats_only_tools_name_the_missing_topology(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    env = quick_start_shell() | {"NATS_URL": nats_server.url}
    code, out = await run_tool(["dlq", "list"], env, tmp_path)
    assert (code, out.strip()) == (1, f"sayna-sip dlq: no stream SIP_DEAD in NATS at "
                                      f"{nats_server.url}: run `sayna-sip provision`")  # fmt: skip


def test_tool_nats_prefers_the_environment_then_the_config_then_a_running_up(
    tmp_path: Path,
) -> None:
    assert upstate.tool_nats(None, {}, tmp_path) == (NatsConfig(start_timeout=1.0), "the default")
    upstate.write(tmp_path, upstate.UpState(os.getpid(), "nats://127.0.0.1:4999", "http://x"))
    nats, source = upstate.tool_nats(None, {"SIP_HOOK_SECRET": "s" * 20}, tmp_path)
    assert nats.url == "nats://127.0.0.1:4999" and "sayna-sip up" in source
    config = tmp_path / "c.yaml"
    config.write_text("nats:\n  url: nats://10.0.0.9:4222\nsip:\n  hooks: []\n")
    assert upstate.tool_nats(str(config), {}, tmp_path)[0].url == "nats://10.0.0.9:4222"
    env = {"NATS_URL": "nats://10.0.0.8:4222"}
    assert upstate.tool_nats(str(config), env, tmp_path) == (
        NatsConfig(url="nats://10.0.0.8:4222", start_timeout=1.0),
        "NATS_URL",
    )
    upstate.remove(tmp_path, os.getpid())
    assert upstate.tool_nats(None, {}, tmp_path)[1] == "the default"


def test_a_state_file_whose_up_is_gone_is_ignored(tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above the default pid_max: no such process
    upstate.write(tmp_path, upstate.UpState(dead, "nats://127.0.0.1:4999", "http://x"))
    assert upstate.read(tmp_path) is None
    assert (tmp_path / "up.json").stat().st_mode & 0o777 == 0o600


async def test_the_tools_find_an_up_started_with_another_data_dir(tmp_path: Path) -> None:
    # `up --data-dir X` writes X/up.json; the tools look there when told the same DIR
    # (before, only the default .sayna-sip was read and they fell back to the default NATS).
    data = tmp_path / "elsewhere"
    data.mkdir()
    nats_url = f"nats://127.0.0.1:{closed_port()}"
    upstate.write(data, upstate.UpState(os.getpid(), nats_url, "http://127.0.0.1:4555"))
    env = quick_start_shell() | {"NATS_START_TIMEOUT": "1"}
    for tool in (["dlq", "--data-dir", str(data), "list"],
                 ["deliveries", "list", "--data-dir", str(data)]):  # fmt: skip
        code, out = await run_tool(tool, env, tmp_path)
        assert code == 1 and f"sayna-sip up` running here ({data / 'up.json'})" in out, out
    code, out = await run_tool(["dlq", "list"], env, tmp_path)  # the default dir has none
    assert code == 1 and "no NATS named" in out, out


async def test_with_no_stack_the_tools_answer_in_a_line_within_3s(tmp_path: Path) -> None:
    # Before: 20 s (the services' NATS_START_TIMEOUT) and a warning line per attempt.
    data = tmp_path / ".sayna-sip"
    data.mkdir()
    nats_url = f"nats://127.0.0.1:{closed_port()}"  # an `up` here whose NATS is not answering
    upstate.write(data, upstate.UpState(os.getpid(), nats_url, "http://127.0.0.1:4555"))
    loop = asyncio.get_running_loop()
    for tool in (["dlq", "list"], ["deliveries", "list"]):
        started = loop.time()
        await run_tool([tool[0], "--help"], quick_start_shell(), tmp_path)
        start_up = loop.time() - started  # the interpreter and imports, on this busy machine
        started = loop.time()
        code, out = await run_tool(tool, quick_start_shell(), tmp_path)
        took = loop.time() - started
        # ≤ 3 s on an idle machine (1 s of waiting; before: 20 s); start-up cost excluded.
        assert code == 1 and took - start_up <= 3.0, (took, start_up, out)
        assert len(out.splitlines()) == 1, out
        assert f"cannot connect to NATS at {nats_url} within 1s" in out
        assert "is `sayna-sip up` running here?" in out
    assert "is `sayna-sip up` running here?" in upstate.tool_hint("the default")
