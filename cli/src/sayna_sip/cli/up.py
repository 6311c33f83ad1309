"""`sayna-sip up`: the whole stack on one machine.

Starts an embedded JetStream nats-server under the data dir (unless a NATS URL is
given), runs the provisioner to completion, then keeps ingress, router and N forwarders
running as supervised child processes with prefixed logs. Ctrl-C / SIGTERM stops them
all, then NATS. Dev mode: with SIP configured, loopback hook targets are allowed and a
dev CA (shared with `sayna-sip sink`) is trusted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from sayna_sip.cli import datalock
from sayna_sip.cli.devca import DEFAULT_DATA_DIR, dev_ca
from sayna_sip.cli.envfile import environment
from sayna_sip.cli.natsd import EmbeddedNats, NatsStartError
from sayna_sip.cli.procs import Console
from sayna_sip.cli.supervisor import ChildSpec, Supervisor
from sayna_sip.common import upstate
from sayna_sip.common.config import NatsConfig, ServerConfig
from sayna_sip.common.errors import ConfigError
from sayna_sip.common.secretbox import generate_key
from sayna_sip.common.validate import nats_urls

LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
SIP_OFF = (
    "SIP is off (no sip: section, no SIP_* variable): webhooks are answered 200 and "
    "dropped. To route calls: sayna-sip up --config local.yaml, or set SIP_ROOM_PREFIX"
)
READY_WARN_AFTER = 60.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sayna-sip up", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="YAML configuration file (the environment overrides it)")
    p.add_argument("--forwarders", type=int, default=2, help="forwarder workers (default 2)")
    p.add_argument(
        "--nats-url",
        help="use this NATS instead of the embedded one (or NATS_URL); a cluster: A,B,C",
    )
    p.add_argument(
        "--nats-port",
        type=int,
        help="embedded NATS port (default: its last port here, else 4222, else any free; 0 = any)",
    )
    p.add_argument(
        "--data-dir", default=DEFAULT_DATA_DIR, help="NATS store and dev CA (default .sayna-sip)"
    )
    return p


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    if not 0 <= args.forwarders <= 64:
        print("sayna-sip up: --forwarders must be between 0 and 64", file=sys.stderr)
        return 2
    env = environment(os.environ)
    try:
        config = ServerConfig.load(args.config, env)
        if args.nats_url is not None:  # a cluster's list, commas and/or spaces
            args.nats_url = ",".join(nats_urls(args.nats_url, "--nats-url"))
    except ConfigError as exc:
        print(f"sayna-sip up: {exc}", file=sys.stderr)
        return 2
    try:
        lock = datalock.acquire(Path(args.data_dir).resolve())
    except datalock.AlreadyRunning as exc:
        print(f"sayna-sip up: {refusal(exc, Path(args.data_dir))}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(Stack(args, config, env).run())
    finally:
        os.close(lock)


def refusal(exc: datalock.AlreadyRunning, data_dir: Path) -> str:
    """Why a second `up` on the same data dir does not start, and where the first one is."""
    running = upstate.read(data_dir)
    where = running.ingress_url if running is not None else "(still starting)"
    return (f"{exc}, ingress at {where}; data dir {data_dir} is in use: "
            "stop that one first, or pass another --data-dir")  # fmt: skip


def external_nats_url(flag: str | None, env: Mapping[str, str], config: ServerConfig) -> str | None:
    """The NATS to use instead of the embedded one, if the user named one anywhere."""
    if flag:
        return flag
    if env.get("NATS_URL", "").strip():
        return config.nats.url  # the environment's value, validated and normalised
    return config.nats.url if config.nats.url != NatsConfig.url else None


def dev_secrets_key(data_dir: Path) -> str:
    """The data dir's SIP_SECRETS_KEY (made on first use, readable by its owner only)."""
    path = data_dir / "secrets.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(generate_key() + "\n")
    return path.read_text().strip()


def child_env(
    base: Mapping[str, str],
    config: ServerConfig,
    nats_url: str,
    ca_pem: Path | None,
    secrets_key: str | None = None,
) -> dict[str, str]:
    """The services' environment. SIP_* variables are only added when SIP is already
    configured: setting any of them would switch SIP on."""
    env = dict(base)
    env["NATS_URL"] = nats_url
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the console as they are written
    if config.sip is None:
        return env
    allowed = [str(n) for n in config.sip.hook_allow_networks]
    env["SIP_HOOK_ALLOW_NETWORKS"] = ",".join(
        allowed + [n for n in LOOPBACK_NETWORKS if n not in allowed]
    )
    if not config.sip.hook_ca_bundle and ca_pem is not None:
        env["SIP_HOOK_CA_BUNDLE"] = str(ca_pem)
    if config.sip.secret_box is None and secrets_key is not None:
        env["SIP_SECRETS_KEY"] = secrets_key  # dev mode: per-hook secrets work out of the box
    return env


def display_host(host: str) -> str:
    """Where a local client reaches a server bound to `host`."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Stack:
    def __init__(
        self, args: argparse.Namespace, config: ServerConfig, env: Mapping[str, str]
    ) -> None:
        self.args = args
        self.config = config
        self.env = env
        self.data_dir = Path(args.data_dir).resolve()
        names = ["up", "nats", "provision", "ingress", "router"]
        names += [f"forwarder-{i + 1}" for i in range(args.forwarders)]
        self.console = Console(names)
        self.sup = Supervisor(self.console)
        self.nats: EmbeddedNats | None = None
        self.nats_watch: asyncio.Task[None] | None = None
        self.ingress_url = f"http://{display_host(config.host)}:{config.port}"

    def log(self, text: str) -> None:
        self.console.line("up", text)

    def _command(self, service: str) -> list[str]:
        argv = [sys.executable, "-m", "sayna_sip.cli.main", service]
        if self.args.config:
            argv += ["--config", str(Path(self.args.config).resolve())]
        return argv

    def _on_signal(self) -> None:
        if self.sup.stopping.is_set():  # second Ctrl-C: stop waiting politely
            self.sup.kill_all()
            if self.nats and self.nats.proc and self.nats.proc.returncode is None:
                self.nats.proc.kill()
            return
        self.log("event=stack_stopping")
        self.sup.stopping.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            return await self._run()
        except NatsStartError as exc:
            self.log(f"event=nats_failed error={exc}")
            return 1
        finally:
            await self.sup.stop()
            if self.nats_watch is not None:
                await self.nats_watch
            if self.nats is not None:
                await self.nats.stop()
            upstate.remove(self.data_dir, os.getpid())
            self.log("event=stack_stopped")

    async def _run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        url = external_nats_url(self.args.nats_url, self.env, self.config)
        if url is None:
            self.nats = EmbeddedNats(self.data_dir, self.console.echo("nats"), self.args.nats_port)
            url = await self.nats.start()
            self.log(f"event=nats_started url={url} pid={self.nats.pid} store={self.nats.store}")
            self.nats_watch = asyncio.create_task(self.nats.supervise(self.sup.stopping, self.log))
        running = upstate.UpState(os.getpid(), url, self.ingress_url, self.config.sip is not None)
        state = upstate.write(self.data_dir, running)
        self.log(f"event=state_written path={state}")
        key = dev_secrets_key(self.data_dir) if self.config.sip is not None else None
        env = child_env(self.env, self.config, url, self._dev_ca(), key)
        if self.sup.stopping.is_set():  # Ctrl-C while NATS was starting
            return 0
        code = await self.sup.run_once(ChildSpec("provision", self._command("provision"), env))
        if code is None:
            return 0
        if code != 0:
            self.log(f"event=provision_failed code={code} (see its lines above); stopping")
            return code
        self._start_services(env)
        announce = asyncio.create_task(self._announce_when_ready())
        await self.sup.stopping.wait()
        announce.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await announce
        return 0

    def _dev_ca(self) -> Path | None:
        sip = self.config.sip
        if sip is None:
            return None
        pem = None if sip.hook_ca_bundle else dev_ca(self.data_dir).pem_path
        self.log(
            f"event=dev_mode allow_networks={','.join(LOOPBACK_NETWORKS)} "
            f"ca_bundle={sip.hook_ca_bundle or pem}"
        )
        return pem

    def _start_services(self, env: dict[str, str]) -> None:
        self.sup.keep_running(ChildSpec("ingress", self._command("ingress"), env))
        self.sup.keep_running(ChildSpec("router", self._command("router"), env))
        base = self.config.forwarder.port
        for i in range(self.args.forwarders):
            # Each forwarder needs its own health/metrics port (0 stays "any free port").
            port = str(base + i if base else 0)
            spec = ChildSpec(f"forwarder-{i + 1}", self._command("forwarder"), env)
            spec.env = {**env, "FORWARDER_PORT": port}
            self.sup.keep_running(spec)

    async def _announce_when_ready(self) -> None:
        loop = asyncio.get_running_loop()
        started, warned = loop.time(), False
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                try:
                    if (await client.get(f"{self.ingress_url}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if not warned and loop.time() - started > READY_WARN_AFTER:
                    self.log(f"event=ingress_not_ready url={self.ingress_url}/readyz waited=60s")
                    warned = True
                await asyncio.sleep(0.25)
        for line in self._banner():
            self.log(line)

    def _banner(self) -> list[str]:
        hint = "sayna-sip send-test-event --to 'sip:+15551234567@" + self._hint_host() + "'"
        if self.args.config:
            hint += f" --config {self.args.config}"
        if self.config.port != 3001 or self.config.host not in ("0.0.0.0", "127.0.0.1"):
            hint += f" --url {self.ingress_url}/livekit/webhook"
        lines = [
            f"event=stack_ready ingress={self.ingress_url} forwarders={self.args.forwarders}",
            f"LiveKit webhooks -> {self.ingress_url}/livekit/webhook   metrics: /metrics",
        ]
        if self.config.sip is not None:
            lines += [
                f"hooks API        -> {self.ingress_url}/sip/hooks",
                f"send a test event: {hint}",
            ]
        else:
            lines.append(SIP_OFF)
        if not self.config.livekit.has_credentials:
            lines.append("note: set LIVEKIT_API_KEY/LIVEKIT_API_SECRET, else webhooks get 503")
        return [*lines, "Ctrl-C stops everything."]

    def _hint_host(self) -> str:
        sip = self.config.sip
        for hook in sip.hooks if sip else ():
            return hook.host.replace("*.", "demo.", 1)
        return "example.com"
