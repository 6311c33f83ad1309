"""Console test helpers: the whole stack under `sayna-sip up`, and headless Chromium on it."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
async def stack(tmp_path: Path, https_sink: HttpsSink) -> AsyncIterator[Stack]:
    """`sayna-sip up` (one forwarder, AUTH_REQUIRED, short retries) trusting the sink's CA."""
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


@asynccontextmanager
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
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        await context.grant_permissions(["clipboard-read", "clipboard-write"])
        pg = await context.new_page()
        pg.set_default_timeout(15_000)
        expect.set_options(timeout=15_000)  # expect()'s own default is 5 s: too short under load
        yield pg
        await browser.close()


@pytest.fixture
async def page(stack: Stack) -> AsyncIterator[Any]:
    """A Chromium page, for the console on `stack`."""
    async with chromium_page() as pg:
        yield pg
