"""The tenant hook stand-in: an HTTPS server that records when each event id arrived.

`python -m bench.sink --port P --cert C --key K`. A raw ASGI app on uvicorn (uvloop,
httptools) so the sink costs as little CPU as possible. The event id comes from the
`webhook-id` / `X-Sayna-Event-Id` header, else from the body's `id`.
Control routes (same server): GET /_count, GET /_arrivals, GET /_seqs (the
`Sayna-Call-Seq` of each first arrival), POST /_fail_once (a JSON list of event ids:
the first request of each is answered 500 and not recorded), POST /_reset.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_ID_HEADERS = (b"webhook-id", b"x-sayna-event-id")
_CALL_SEQ = b"sayna-call-seq"


class _Body(msgspec.Struct):
    id: str = ""


_decode_id = msgspec.json.Decoder(_Body).decode
_decode_ids = msgspec.json.Decoder(list[str]).decode
_encode = msgspec.json.encode


class Recorder:
    """First arrival time (and Call-Seq) per event id, how many arrivals were repeats,
    and the ids whose next request is refused once."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.seqs: dict[str, int] = {}
        self.fail_once: set[str] = set()
        self.refused = 0
        self.requests = 0
        self.duplicates = 0

    def record(self, event_id: str, at: float, call_seq: int = 0) -> bool:
        """False: refused (answer 500), as asked by /_fail_once."""
        self.requests += 1
        if event_id in self.fail_once:
            self.fail_once.discard(event_id)
            self.refused += 1
            return False
        if event_id in self.arrivals:
            self.duplicates += 1
        else:
            self.arrivals[event_id] = at
            if call_seq:
                self.seqs[event_id] = call_seq
        return True

    def stats(self) -> dict[str, int]:
        return {
            "count": len(self.arrivals),
            "requests": self.requests,
            "duplicates": self.duplicates,
            "refused": self.refused,
        }

    def reset(self) -> None:
        self.arrivals.clear()
        self.seqs.clear()
        self.fail_once.clear()
        self.requests = self.duplicates = self.refused = 0


def _call_seq(headers: list[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name == _CALL_SEQ and value.isdigit():
            return int(value)
    return 0


def _event_id(headers: list[tuple[bytes, bytes]], body: bytes) -> str:
    for name, value in headers:
        if name in _ID_HEADERS:
            return value.decode()
    try:
        return _decode_id(body).id
    except msgspec.DecodeError:
        return ""


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _reply(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def build_app(recorder: Recorder) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = await _read_body(receive)
        path = scope["path"]
        if path == "/_count":
            await _reply(send, 200, _encode(recorder.stats()))
        elif path == "/_arrivals":
            await _reply(send, 200, _encode(recorder.arrivals))
        elif path == "/_seqs":
            await _reply(send, 200, _encode(recorder.seqs))
        elif path == "/_fail_once":
            recorder.fail_once.update(_decode_ids(body))
            await _reply(send, 200, b"{}")
        elif path == "/_reset":
            recorder.reset()
            await _reply(send, 200, b"{}")
        else:
            headers = scope["headers"]
            at = time.time()
            if recorder.record(_event_id(headers, body), at, _call_seq(headers)):
                await _reply(send, 200, b'{"ok":true}')
            else:
                await _reply(send, 500, b'{"error":"refused once"}')

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sink")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    uvicorn.run(
        build_app(Recorder()),
        host="127.0.0.1",
        port=args.port,
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
