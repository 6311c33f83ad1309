"""The tenant portal in headless Chromium, on the whole stack: a `/console#token=…` link
shows its host and nothing of any other, keeps the token out of the address bar, and the
admin console hands such links out and shows a hook's history."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import Stack
from tests.console.test_console import login
from tests.fixtures.https_sink import HttpsSink

pytestmark = pytest.mark.timeout(120)
A, B = "pbx.tenant-a.example", "pbx.tenant-b.example"


async def _two_hooks(stack: Stack, https_sink: HttpsSink) -> None:
    async with stack.api() as api:
        hooks = [{"host": h, "url": https_sink.url(f"/{h}")} for h in (A, B)]
        assert (await api.post("/sip/hooks", json={"hooks": hooks})).status_code == 200
        for action in ("disable", "enable"):  # history of B that A must not see
            assert (await api.post(f"/sip/hooks/{B}/{action}", json={})).status_code == 200


async def _shows_nothing_of_b(page: Any) -> None:
    html = await page.content()
    assert B not in html and "tenant-b" not in html


async def test_a_portal_link_opens_its_host_only_and_leaves_the_address_bar(
    stack: Stack, page: Any, https_sink: HttpsSink
) -> None:
    from playwright.async_api import expect

    await _two_hooks(stack, https_sink)
    async with stack.api() as api:
        minted = (await api.post(f"/sip/hooks/{A}/access-tokens", json={"ttl": "1h"})).json()
    await page.goto(f"{stack.base}{minted['portal_path']}")
    await expect(page.locator("#view h1")).to_have_text(A)
    await expect(page.locator("#history")).to_contain_text("upsert_hooks")
    assert "token" not in page.url and page.url.endswith("/console")
    assert await page.evaluate("sessionStorage.getItem('sayna-sip-token')") == minted["token"]
    assert await page.evaluate("document.body.dataset.mode") == "tenant"
    await expect(page.locator("#token-dialog")).to_be_hidden()
    await _shows_nothing_of_b(page)

    # The tenant acts on its own hook; its history names its token, not "admin".
    await page.click("#disable")
    await expect(page.locator("#hook-state")).to_contain_text("disabled")
    await expect(page.locator("#history tbody tr").first).to_contain_text(minted["token_id"])

    await page.click('[data-nav="dead-letters"]')
    await expect(page.locator("#dead-letters")).to_be_visible()
    assert await page.locator("#dead-filter [name=host]").count() == 0
    await _shows_nothing_of_b(page)

    await page.reload()  # the tab keeps its token: still the portal, still A only
    await page.goto(f"{stack.base}/console")
    await expect(page.locator("#view h1")).to_have_text(A)
    await _shows_nothing_of_b(page)

    # Another host's address by hand: the portal goes back to its own host (the ingress
    # would answer 404 anyway), and nothing of it stays on the page or in the address.
    await page.goto(f"{stack.base}/console#/hooks/{B}")
    await expect(page.locator("#view h1")).to_have_text(A)
    assert B not in page.url
    await _shows_nothing_of_b(page)


async def test_the_admin_shares_a_portal_link_that_works_in_another_tab(
    stack: Stack, page: Any, https_sink: HttpsSink
) -> None:
    from playwright.async_api import expect

    await _two_hooks(stack, https_sink)
    await login(page, stack)
    row = page.locator(f'#hooks tr[data-host="{A}"]')
    await row.locator("button.share").click()
    link = page.locator("#portal-link code")
    await expect(link).to_contain_text("/console#token=")
    url = await link.inner_text()
    assert url.startswith(stack.base)

    tenant_tab = await page.context.new_page()  # its own sessionStorage: no admin token
    await tenant_tab.goto(url)
    await expect(tenant_tab.locator("#view h1")).to_have_text(A)
    await _shows_nothing_of_b(tenant_tab)

    await page.goto(f"{stack.base}/console#/hooks/{B}")  # the admin sees B's history
    await expect(page.locator("#history")).to_contain_text("enable_hook")
    await expect(page.locator("#history")).to_contain_text("admin")
