"""`sayna-sip router`: exit codes, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext

from sayna_sip.router.main import main
from tests.fixtures.nats import NatsServer
from tests.router.helpers import clean_env


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("sip:\n  allowed_addresses: ['10.0.0.1']\n")
    assert main(["--config", str(config)]) == 2
    assert "room_prefix" in capsys.readouterr().err


def test_missing_topology_exits_1(nats_server: NatsServer, tmp_path: Path) -> None:
    # A subprocess: main() configures process-wide logging once it has a config.
    config = tmp_path / "c.yaml"
    config.write_text(f"nats: {{url: '{nats_server.url}'}}\nrouter: {{port: 0}}\n")
    cli = Path(sys.executable).parent / "sayna-sip"
    done = subprocess.run(
        [str(cli), "router", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert done.returncode == 1
    assert "event=router_start_failed" in done.stderr and "sayna-sip provision" in done.stderr


async def test_sigterm_stops_cleanly(
    jetstream: JetStreamContext, nats_server: NatsServer, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"nats: {{url: '{nats_server.url}'}}\nserver: {{host: 127.0.0.1}}\nrouter: {{port: 0}}\n"
    )
    cli = Path(sys.executable).parent / "sayna-sip"
    proc = await asyncio.create_subprocess_exec(
        str(cli), "router", "--config", str(config), stderr=subprocess.PIPE, env=clean_env()
    )
    assert proc.stderr is not None
    port = None
    while port is None:  # the started line names the bound port
        line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
        assert line, "router exited before it started"
        if "event=router_started" in line:
            port = int(line.split("port=")[1].split()[0])
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    proc.send_signal(signal.SIGTERM)
    rest = (await asyncio.wait_for(proc.stderr.read(), 20)).decode()
    assert await proc.wait() == 0
    assert "event=router_stopped" in rest
    assert "Traceback" not in rest


def test_idle_pull_timeouts_are_not_logged_as_errors() -> None:
    """nats-py's builtin TimeoutError from an idle fetch is FastStream-retried noise;
    any other exception still reaches the log."""
    from sayna_sip.router.app import _framework_logger

    logger = _framework_logger()

    def record(exc: BaseException) -> logging.LogRecord:
        return logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "Task-15 raised an exception, retrying...",
            (), (type(exc), exc, None),
        )  # fmt: skip

    assert not logger.filter(record(TimeoutError()))
    assert logger.filter(record(RuntimeError("boom")))
