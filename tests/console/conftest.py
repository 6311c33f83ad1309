"""Console test helpers: the whole stack under `sayna-sip up`, and headless Chromium on it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.https_sink import HttpsSink
from tests.fixtures.livekit import API_KEY, API_SECRET
from tests.stack.test_up import Proc, free_port, free_port_pair

TOKEN = "console-test-token-0123456789"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Stack:
    base: str  # the ingress, e.g. http://127.0.0.1:PORT
    up: Proc

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base,
            # JSON on every call: the ingress takes changes as JSON only, bodyless ones too.
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            timeout=10,
        )


@pytest.fixture
async def console(tmp_path: Path, https_sink: HttpsSink) -> AsyncIterator[tuple[Stack, Any]]:
    """The stack and a browser page, started side by side: chromium's start (~2 s) runs
    while `up` boots instead of after it."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it with apt-get)")
    async with contextlib.AsyncExitStack() as started:
        stack_cm, page_cm = _stack(tmp_path, https_sink), chromium_page()
        entered = await asyncio.gather(
            stack_cm.__aenter__(), page_cm.__aenter__(), return_exceptions=True
        )
        for cm, got in zip((stack_cm, page_cm), entered, strict=True):
            if not isinstance(got, BaseException):
                started.push_async_exit(cm)
        stack, page = entered
        for got in entered:
            if isinstance(got, BaseException):
                raise got
        assert isinstance(stack, Stack)
        yield stack, page


@pytest.fixture
def stack(console: tuple[Stack, Any]) -> Stack:
    """`sayna-sip up` (one forwarder, AUTH_REQUIRED, short retries) trusting the sink's CA."""
    return console[0]


@pytest.fixture
def page(console: tuple[Stack, Any]) -> Any:
    """A headless Chromium page (Debian's chromium, driven by playwright) at 1280x800."""
    return console[1]


@contextlib.asynccontextmanager
async def _stack(tmp_path: Path, https_sink: HttpsSink) -> AsyncIterator[Stack]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIP_", "NATS_", "AUTH_"))}
    env.pop("LIVEKIT_URL", None)
    port = free_port()
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        ROUTER_PORT=str(free_port()),
        FORWARDER_PORT=str(free_port_pair()),
        LIVEKIT_API_KEY=API_KEY,
        LIVEKIT_API_SECRET=API_SECRET,
        SIP_ROOM_PREFIX="sip-",
        SIP_ALLOWED_ADDRESSES="127.0.0.1",
        SIP_HOOK_SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        SIP_HOOK_CA_BUNDLE=str(https_sink.ca_path),
        SIP_RETRY_SCHEDULE="0s,1s,1s",
        AUTH_REQUIRED="true",
        AUTH_API_SECRET=TOKEN,
        PYTHONUNBUFFERED="1",
    )
    args = ["up", "--forwarders", "1", "--data-dir", str(tmp_path / "data"), "--nats-port", "0"]
    up = await Proc.start(args, env)
    try:
        await up.wait_for(r"event=stack_ready", timeout=60)
        yield Stack(f"http://127.0.0.1:{port}", up)
    finally:
        await up.stop()


@contextlib.asynccontextmanager
async def chromium_page() -> AsyncIterator[Any]:
    """A headless Chromium page (Debian's chromium, driven by playwright) at 1280x800."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it with apt-get)")
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            await context.grant_permissions(["clipboard-read", "clipboard-write"])
            pg = await context.new_page()
            pg.set_default_timeout(15_000)
            expect.set_options(timeout=15_000)  # expect()'s own default, 5 s, is short under load
            yield pg
        finally:
            await browser.close()
