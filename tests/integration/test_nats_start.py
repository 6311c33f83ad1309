"""Every process with NATS out of reach at start: it logs each failed attempt, then
exits non-zero within NATS_START_TIMEOUT, naming the URL(s)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from tests.common.test_natsconn import closed_port
from tests.fixtures.livekit import API_KEY, API_SECRET

CLI = str(Path(sys.executable).parent / "sayna-sip")
BUDGET = 2.0


async def run_cli(args: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        CLI,
        *args,
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), time.monotonic() - started


@pytest.mark.parametrize(
    "args",
    [["provision"], ["ingress"], ["router"], ["forwarder"], ["dlq", "list"]],
    ids=lambda a: a[0],
)
async def test_unreachable_nats_exits_non_zero_in_bounded_time(args: list[str]) -> None:
    url = f"nats://127.0.0.1:{closed_port()}"
    env = {
        "NATS_URL": url,
        "NATS_START_TIMEOUT": str(BUDGET),
        "SIP_ROOM_PREFIX": "sip-",  # SIP on: the ingress needs NATS only then
        "SIP_ALLOWED_ADDRESSES": "10.0.0.1",
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "PORT": "0",
        "ROUTER_PORT": "0",
        "FORWARDER_PORT": "0",
    }

    code, output, elapsed = await run_cli(args, env)

    assert code != 0, output  # 1; the ingress 3 (uvicorn: lifespan start failed)
    assert elapsed < BUDGET + 6, output  # interpreter start and imports on a busy machine
    assert "event=nats_connect_failed" in output and "attempt=1 " in output
    assert f"cannot connect to NATS at {url} within 2s" in output
