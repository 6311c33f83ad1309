"""Every process with NATS out of reach at start: it logs each failed attempt, then
exits non-zero within NATS_START_TIMEOUT, naming the URL(s)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.common.test_natsconn import closed_port
from tests.fixtures.livekit import API_KEY, API_SECRET
from tests.fixtures.nats import NatsServer

CLI = str(Path(sys.executable).parent / "sayna-sip")
BUDGET = 1.0


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


def _logged_span(output: str) -> float:
    """Seconds between the first `nats_connect_failed` line and the last log line (0 for
    a CLI tool's log, which has no timestamps: `elapsed` bounds those)."""
    logged = [line for line in output.splitlines() if line.startswith("ts=")]
    if not logged:
        return 0.0
    stamps = [datetime.fromisoformat(line.split()[0][3:].replace("Z", "+00:00")) for line in logged]
    first = next(i for i, line in enumerate(logged) if "event=nats_connect_failed" in line)
    return (stamps[-1] - stamps[first]).total_seconds()


def _services_env(url: str, **extra: str) -> dict[str, str]:
    """Any service's environment with SIP on (the ingress needs NATS only then)."""
    return {
        "NATS_URL": url,
        "SIP_ROOM_PREFIX": "sip-",
        "SIP_ALLOWED_ADDRESSES": "10.0.0.1",
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "PORT": "0",
        "ROUTER_PORT": "0",
        "FORWARDER_PORT": "0",
        **extra,
    }


@pytest.mark.parametrize(
    "args",
    [["provision"], ["ingress"], ["router"], ["forwarder"], ["dlq", "list"]],
    ids=lambda a: a[0],
)
async def test_unreachable_nats_exits_non_zero_in_bounded_time(args: list[str]) -> None:
    url = f"nats://127.0.0.1:{closed_port()}"
    env = _services_env(url, NATS_START_TIMEOUT=str(BUDGET))

    code, output, elapsed = await run_cli(args, env)

    assert code != 0, output  # 1; the ingress 3 (uvicorn: lifespan start failed)
    # The bound holds from the first attempt to giving up, as the log's own clock says;
    # interpreter start and imports come on top (seconds on a busy 2-core machine).
    assert _logged_span(output) < BUDGET + 1.5, output
    assert elapsed < 25, output  # no hang: well under the default 20 s budget + start
    assert f"cannot connect to NATS at {url} within {BUDGET:g}s" in output
    if args[0] == "dlq":  # an interactive tool: one line, no warning per attempt
        assert len(output.splitlines()) == 1, output
    else:
        assert "event=nats_connect_failed" in output and "attempt=1 " in output


@pytest.mark.parametrize("service", ["ingress", "router", "forwarder"])
@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_missing_topology_is_one_line_that_says_what_to_do(
    service: str, log_format: str, nats_server: NatsServer
) -> None:
    env = _services_env(nats_server.url, LOG_FORMAT=log_format)  # reachable, not provisioned

    code, output, _ = await run_cli([service], env)

    assert code == 1, output
    assert "Traceback" not in output, output
    lines = output.splitlines()
    if log_format == "json":
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        errors = [json.dumps(r) for r in records if r["level"] == "error"]
        assert [r["event"] for r in records if r["level"] == "error"] == [f"{service}_start_failed"]
    else:
        errors = [line for line in lines if " level=error " in f" {line} "]
        assert f"event={service}_start_failed " in errors[0], output
    assert len(errors) == 1 and "run `sayna-sip provision`" in errors[0], output
