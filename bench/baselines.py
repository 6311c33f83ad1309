"""Baseline servers, run with the ingress's exact uvicorn settings.

`python -m bench.baselines bare --port P`: a Litestar handler that only answers 200, the
ceiling for any Python HTTP intake on this machine.
`python -m bench.baselines inproc --port P --hook-url U --ca F`: the original's
architecture, an in-process forwarder: verify LiveKit's JWT and body hash (with the
ingress's own `WebhookVerifier`), parse the
`To` host, answer 200 and POST the body to the hook from a background task (aiohttp like
the forwarder, signed
like the original, at most `--concurrency` requests in flight). No queue: what the process
holds when it dies is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import logging
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec
import uvicorn
from litestar import Litestar, Request, post
from litestar.exceptions import HTTPException

from bench import events
from sayna_sip.ingress.errors import Unauthorized
from sayna_sip.ingress.webhook import WebhookVerifier

log = logging.getLogger("bench.inproc")


def _serve(app: Litestar, port: int) -> None:
    # The same settings as sayna_sip.ingress.main.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
    )


@post("/livekit/webhook", status_code=200)
async def bare_webhook() -> dict[str, str]:
    return {"status": "received"}


class _Participant(msgspec.Struct):
    attributes: dict[str, str] = {}


class _Event(msgspec.Struct):
    id: str = ""
    participant: _Participant | None = None


_decode_event = msgspec.json.Decoder(_Event).decode


def to_host(header: str) -> str:
    """Host of a `To` header such as `"X" <sip:user@host;user=phone>` (enough for here)."""
    rest = header.split("@", 1)[-1]
    for stop in (">", ";", ":"):
        rest = rest.split(stop, 1)[0]
    return rest.strip().lower()


class InProcForwarder:
    """Verify, answer, forward in the background: the original's design, in Python."""

    def __init__(self, hook_url: str, ca_path: str, concurrency: int) -> None:
        self.hook_url = hook_url
        self._verifier = WebhookVerifier(events.API_KEY, events.API_SECRET)
        self._ctx = ssl.create_default_context(cafile=ca_path)
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def verify(self, authorization: str, body: bytes) -> _Event:
        # The ingress's own check (stdlib HS256 for LiveKit's tokens, PyJWT otherwise):
        # the same code on both sides, so the ratio measures the architecture.
        try:
            self._verifier.check_body(self._verifier.token_digest(authorization), body)
        except Unauthorized as exc:
            raise HTTPException(status_code=401, detail=exc.message) from None
        try:
            return _decode_event(body)
        except msgspec.DecodeError:
            raise HTTPException(status_code=400, detail="invalid json") from None

    def submit(self, event: _Event, body: bytes) -> None:
        attrs = event.participant.attributes if event.participant else {}
        if to_host(attrs.get("sip.h.to", "")) != events.TENANT_HOST:
            return
        task = asyncio.create_task(self._deliver(event.id, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, event_id: str, body: bytes) -> None:
        ts = str(int(time.time()))
        mac = hmac.new(
            events.HOOK_SECRET.encode(), f"v1:{ts}:{event_id}:".encode() + body, hashlib.sha256
        )
        headers = {
            "Content-Type": "application/json",
            "X-Sayna-Signature": f"v1={mac.hexdigest()}",
            "X-Sayna-Timestamp": ts,
            "X-Sayna-Event-Id": event_id,
            "X-Sayna-Signature-Version": "v1",
        }
        async with self._slots:
            try:
                async with self._client().post(self.hook_url, data=body, headers=headers) as r:
                    await r.read()
            except (aiohttp.ClientError, TimeoutError) as exc:  # the original only logged failures
                log.warning("event=inproc_delivery_failed event_id=%s error=%r", event_id, exc)

    def _client(self) -> aiohttp.ClientSession:
        """Made on first use: an aiohttp session belongs to the running loop."""
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ctx, limit=self._concurrency)
            timeout = aiohttp.ClientTimeout(sock_connect=0.5, sock_read=5.0)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._session

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


def inproc_app(hook_url: str, ca_path: str, concurrency: int) -> Litestar:
    holder: dict[str, InProcForwarder] = {}

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        holder["fwd"] = InProcForwarder(hook_url, ca_path, concurrency)
        yield
        await holder["fwd"].close()

    @post("/livekit/webhook", status_code=200)
    async def webhook(request: Request[Any, Any, Any]) -> dict[str, str]:
        body = await request.body()
        fwd = holder["fwd"]
        fwd.submit(fwd.verify(request.headers.get("authorization", ""), body), body)
        return {"status": "received"}

    return Litestar([webhook], lifespan=[lifespan])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    parser.add_argument("kind", choices=["bare", "inproc"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hook-url", default="")
    parser.add_argument("--ca", default="")
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    if args.kind == "bare":
        _serve(Litestar([bare_webhook]), args.port)
    else:
        _serve(inproc_app(args.hook_url, args.ca, args.concurrency), args.port)


if __name__ == "__main__":
    main()
