"""`sayna-sip listen`: a tenant's local receiver, for trying an app before it has TLS.

Serves HTTPS like `sayna-sip sink` (same port, certificate from the data dir's dev CA,
same signature check) and prints each delivery whole: its headers, its body and whether
the signature verifies. With `--forward-to URL` it relays the delivery (same method,
body and webhook headers) to a plain-HTTP dev server, prints that server's answer and
answers the forwarder with it, so retries and dead letters go as for a real tenant; a
dev server that does not answer gets the forwarder a 502 (504 on a timeout): retried.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from sayna_sip.cli import sink
from sayna_sip.common.errors import ConfigError

# Not relayed: the connection's own headers, which the client sets for the new hop.
HOP_BY_HOP = frozenset(
    ("host", "content-length", "connection", "keep-alive", "transfer-encoding", "te",
     "upgrade", "proxy-connection", "expect")
)  # fmt: skip
# Relayed back to the forwarder besides status and body: what its retry rules read.
ANSWER_HEADERS = ("Content-Type", "Retry-After")
EXCERPT = 200


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sayna-sip listen", description=__doc__.split("\n\n")[0])
    sink.add_receiver_args(p)
    p.add_argument(
        "--forward-to",
        metavar="URL",
        help="relay each delivery to this URL (e.g. http://localhost:3000/webhooks) and "
        "answer with its answer",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=8.0,
        help="seconds to wait for the dev server (default 8, under the forwarder's 10)",
    )
    p.add_argument(
        "--body-limit",
        type=int,
        default=4096,
        metavar="BYTES",
        help="print at most this much of each body (default 4096; 0: all)",
    )
    return p


def check_target(url: str) -> str:
    """The --forward-to URL, or a ConfigError that says what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--forward-to must be an http:// or https:// URL, not {url!r}")
    return url


def excerpt(data: bytes, limit: int) -> str:
    text = data[:limit].decode(errors="replace") if limit else data.decode(errors="replace")
    more = len(data) - limit if limit and len(data) > limit else 0
    return text + (f"… ({more} more bytes)" if more else "")


def relayed_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}


def show(request: web.Request, body: bytes, secrets: Sequence[str], limit: int) -> list[str]:
    """The delivery as printed: sink's one-line summary, then every header and the body."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    lines = [f"{sink.describe(body, headers, secrets)} path={request.path_qs}"]
    lines += [f"  {name}: {value}" for name, value in sorted(headers.items())]
    lines.append(f"  body: {excerpt(body, limit)}")
    return lines


async def relay(
    session: aiohttp.ClientSession, target: str, request: web.Request, body: bytes,
    timeout: float,
) -> tuple[web.Response, str]:  # fmt: skip
    """Send the delivery on; the answer for the forwarder and the line that says it."""
    started = time.monotonic()
    try:
        async with session.request(
            request.method, target, data=body, allow_redirects=False,
            headers=relayed_headers(dict(request.headers)),
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as answer:  # fmt: skip
            data = await answer.read()
            took = (time.monotonic() - started) * 1000
            kept = {h: answer.headers[h] for h in ANSWER_HEADERS if h in answer.headers}
            said = f"  answer {answer.status} from {target} in {took:.0f} ms: "
            said += excerpt(data, EXCERPT).replace("\n", " ")
            return web.Response(status=answer.status, body=data, headers=kept), said
    except TimeoutError:
        why, status = f"did not answer within {timeout:g} s", 504
    except aiohttp.ClientConnectorError as exc:
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        why, status = f"is not answering ({'connection refused' if refused else exc.os_error})", 502
    except aiohttp.ClientError as exc:
        why, status = f"failed: {exc or type(exc).__name__}", 502
    text = f"sayna-sip listen: the dev server at {target} {why}"
    said = f"  forward failed: {text.removeprefix('sayna-sip listen: ')}: answered {status}, "
    said += "the forwarder will retry"
    return web.Response(status=status, text=text + "\n"), said


def make_app(
    secrets: Sequence[str], target: str | None, timeout: float = 8.0, limit: int = 4096
) -> web.Application:
    async def receive(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        lines = show(request, body, secrets, limit)
        if target is None:
            response, said = web.Response(text="ok\n"), "  answered 200"
        else:
            response, said = await relay(request.app[SESSION], target, request, body, timeout)
        if lines[0].endswith("signature=INVALID"):
            lines.append(f"  note: {sink.INVALID_HINT}")
        print("\n".join([*lines, said]), flush=True)  # one write: concurrent deliveries stay whole
        return response

    async def session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(auto_decompress=True) as client:
            app[SESSION] = client
            yield

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", receive)
    return app


SESSION = web.AppKey("session", aiohttp.ClientSession)


async def probe(target: str) -> bool:
    """Whether something accepts connections at the target's address (said at start)."""
    parts = urlsplit(target)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(1.0):
            _, writer = await asyncio.open_connection(parts.hostname, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        secrets = sink.find_secrets(args.secret, args.config)
        target = check_target(args.forward_to) if args.forward_to else None
    except ConfigError as exc:
        print(f"sayna-sip listen: {exc}", file=sys.stderr)
        return 2
    ctx = sink.tls_context(args.data_dir, args.cert_name, "listen")
    if not secrets:
        print("no secret configured (--secret or SIP_HOOK_SECRET): signatures unchecked")
    url = f"https://localhost:{args.port}/webhooks"
    there = " (local.yaml's localhost hook points there)" if args.port == 8443 else ""
    print(f"hook URL: {url}{there}; for another: sayna-sip hooks set HOST {url}", flush=True)
    if target is None:
        print("answering 200 (--forward-to URL relays to your dev server)", flush=True)
    else:
        print(f"forwarding each delivery to {target}; its answer goes back", flush=True)
        if not asyncio.run(probe(target)):
            print(f"note: nothing answers at {target} yet: deliveries get 502 until it does")
    app = make_app(secrets, target, args.timeout, args.body_limit)
    asyncio.run(sink.serve(app, args.port, ctx, args.host, "listen", "listening on"))
    return 0
