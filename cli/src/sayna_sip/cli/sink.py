"""`sayna-sip sink`: a local HTTPS hook receiver for trying the pipeline.

Serves https://localhost:PORT (127.0.0.1 and ::1, or the --host addresses) with a
certificate from the data dir's dev CA (the one `sayna-sip up` tells the forwarders to
trust), prints one line per delivery and whether its Standard Webhooks signature
verifies, and answers 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from sayna_sip.cli.devca import DEFAULT_DATA_DIR, dev_ca
from sayna_sip.common.config import ServerConfig
from sayna_sip.common.errors import ConfigError

CERT_HOSTS = ("localhost", "127.0.0.1", "::1")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sayna-sip sink", description=__doc__.split("\n\n")[0])
    add_receiver_args(p)
    p.add_argument("--status", type=int, default=200, help="status to answer (default 200)")
    return p


def add_receiver_args(p: argparse.ArgumentParser) -> None:
    """The options `sink` and `listen` share: where to listen, which certificate, which
    secrets verify."""
    p.add_argument("--port", type=int, default=8443, help="port to listen on (default 8443)")
    p.add_argument(
        "--secret",
        action="append",
        help="a signing secret to accept besides the config's (a hook's own), repeatable",
    )
    p.add_argument("--config", help="YAML configuration to read the hook secrets from")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="where the dev CA lives")
    p.add_argument(
        "--host",
        action="append",
        help="address to listen on, repeatable (default 127.0.0.1 and ::1; 0.0.0.0 in a container)",
    )
    p.add_argument(
        "--cert-name",
        action="append",
        default=[],
        help="extra name for the certificate, repeatable (e.g. the compose service name)",
    )


def configured_secrets(config: ServerConfig) -> list[str]:
    """Every secret a delivery may be signed with: the global ones and each hook's."""
    sip = config.sip
    if sip is None:
        return []
    found = list(sip.hook_secrets)
    for hook in sip.hooks:
        found += [s for s in hook.secrets if s not in found]
    return found


def find_secrets(flag: Sequence[str] | None, config_path: str | None) -> list[str]:
    """Each --secret (a runtime hook's own, say), then the configuration's: a delivery
    verifies when any of them signed it. Without a usable config file, SIP_HOOK_SECRET
    alone is enough (on its own it is not a valid SIP configuration)."""
    given = [s for item in flag or () for s in item.split()]
    try:
        found = configured_secrets(ServerConfig.load(config_path))
    except ConfigError:
        if not given and (config_path or not os.environ.get("SIP_HOOK_SECRET", "").strip()):
            raise
        found = os.environ.get("SIP_HOOK_SECRET", "").split()
    return given + [s for s in found if s not in given]


def check_signature(body: bytes, headers: dict[str, str], secrets: Sequence[str]) -> str:
    """`verified`, `INVALID`, `unsigned` (no signature headers) or `unchecked` (no secret)."""
    if "webhook-signature" not in headers:
        return "unsigned"
    if not secrets:
        return "unchecked"
    for secret in secrets:
        # Our contract: a whsec_ secret is base64; any other is its UTF-8 bytes.
        key: str | bytes = secret if secret.startswith("whsec_") else secret.encode()
        try:
            Webhook(key).verify(body, headers, json_parse=False)
            return "verified"
        except WebhookVerificationError:
            continue
    return "INVALID"


def describe(body: bytes, headers: dict[str, str], secrets: Sequence[str]) -> str:
    """The one line printed for a delivery."""
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    room = payload.get("room") if isinstance(payload.get("room"), dict) else {}
    return (
        f"delivery event={payload.get('event', '?')} "
        f"webhook-id={headers.get('webhook-id', '-')} room={room.get('name', '-')} "
        f"bytes={len(body)} signature={check_signature(body, headers, secrets)}"
    )


INVALID_HINT = ("signed with a secret this sink does not know: a hook with its own secret? "
                "pass it with --secret (repeatable; the configured ones stay)")  # fmt: skip


def make_app(secrets: Sequence[str], status: int) -> web.Application:
    hinted: list[bool] = []  # the hint once, not under every delivery

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        said = describe(body, headers, secrets)
        print(f"{said} path={request.path}", flush=True)
        if said.endswith("signature=INVALID") and not hinted:
            hinted.append(True)
            print(f"note: {INVALID_HINT}", flush=True)
        return web.Response(status=status, text="ok\n")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", receive)
    return app


async def serve(
    app: web.Application,
    port: int,
    ctx: ssl.SSLContext,
    hosts: Sequence[str] | None = None,
    name: str = "sink",
    banner: str = "sink listening on",
) -> None:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    bound = []
    for i, host in enumerate(hosts or ("127.0.0.1", "::1")):
        try:
            await web.TCPSite(runner, host, port, ssl_context=ctx).start()
            bound.append(host)
        except OSError as exc:
            if i == 0:  # the first address must work; a missing ::1 may be tolerated
                await runner.cleanup()
                why = f"cannot listen on {host}:{port}: {exc}"
                raise SystemExit(f"sayna-sip {name}: {why}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"{banner} https://localhost:{port} ({', '.join(bound)})", flush=True)
    await stop.wait()
    await runner.cleanup()


def tls_context(data_dir: str, cert_names: Sequence[str], name: str = "sink") -> ssl.SSLContext:
    """A server context whose certificate (localhost, 127.0.0.1, ::1 and `cert_names`)
    comes from the data dir's dev CA, the one `up` makes the forwarders trust."""
    ca = dev_ca(Path(data_dir))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.ca.issue_cert(*CERT_HOSTS, *cert_names).configure_cert(ctx)
    print(f"{name} certificate from the dev CA {ca.pem_path}", flush=True)
    return ctx


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        secrets = find_secrets(args.secret, args.config)
    except ConfigError as exc:
        print(f"sayna-sip sink: {exc}", file=sys.stderr)
        return 2
    ctx = tls_context(args.data_dir, args.cert_name)
    if not secrets:
        print("no secret configured (--secret or SIP_HOOK_SECRET): signatures unchecked")
    asyncio.run(serve(make_app(secrets, args.status), args.port, ctx, args.host))
    return 0
