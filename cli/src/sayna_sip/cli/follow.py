"""A live subscription that follows its stack: `deliveries tail` (and `listen`) keep
printing across a restart of `sayna-sip up`, and say when they lost it.

nats-py reconnects on its own to the URL it has, which is enough when the stack comes
back on the same port. When the NATS came from the `up` running here, its `up.json` is
watched too: gone means that `up` stopped, a new NATS URL means a new `up` to follow.
Every change is one line on stderr, so a quiet tail is a quiet stack, not a lost one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from nats.aio.client import Client

from sayna_sip.common import natsconn, upstate
from sayna_sip.common.config import NatsConfig
from sayna_sip.common.validate import nats_urls

POLL = 0.5  # seconds between looks at the connection and up.json

Subscribe = Callable[[Client], Awaitable[None]]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Follower:
    """Keeps one subscription alive on whichever NATS the stack has now."""

    def __init__(
        self, nats: NatsConfig, source: str, data_dir: str | Path, subscribe: Subscribe
    ) -> None:
        self.nats = nats
        self.from_up = source.startswith("the `sayna-sip up`")
        self.data_dir = data_dir
        self.subscribe = subscribe
        self.lost: str | None = None  # why, while the stack is lost

    async def run(self, nc: Client) -> None:
        """Subscribe on `nc`, then follow the stack until cancelled (Ctrl-C)."""
        await self.subscribe(nc)
        try:
            while True:
                await asyncio.sleep(POLL)
                nc = await self._step(nc)
        finally:
            with contextlib.suppress(Exception):
                await natsconn.close(nc)

    async def _step(self, nc: Client) -> Client:
        if self.from_up:
            running = upstate.read(self.data_dir)
            if running is None:
                self._lose("the `sayna-sip up` running here stopped; waiting for it to start")
                return nc
            url = ",".join(nats_urls(running.nats_url, "NATS_URL"))
            if url != self.nats.url:
                return await self._switch(nc, url)
        if not nc.is_connected:
            self._lose(f"NATS at {self.nats.display} is not answering; waiting for it")
        elif self.lost is not None:
            self.lost = None
            say(f"stack back: following NATS at {self.nats.display}")
        return nc

    async def _switch(self, nc: Client, url: str) -> Client:
        """A new `up` here (a new NATS URL): move the subscription to it."""
        wanted = replace(self.nats, url=url)
        try:
            fresh = await natsconn.connect(wanted, name="sayna-sip-tail")
        except natsconn.NatsUnavailable:
            self._lose(f"the `sayna-sip up` here moved to {wanted.display}, not answering yet")
            return nc
        with contextlib.suppress(Exception):
            await natsconn.close(nc)
        self.nats, self.lost = wanted, None
        await self.subscribe(fresh)
        say(f"stack back: following the new `sayna-sip up` here (NATS at {wanted.display})")
        return fresh

    def _lose(self, why: str) -> None:
        if self.lost is None:
            say(f"lost the stack: {why} (Ctrl-C stops)")
        self.lost = why
