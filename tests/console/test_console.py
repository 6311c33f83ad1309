"""The operator console in headless Chromium, on the whole stack: what an on-call person sees
and does — the token prompt, hooks, deliveries with their attempts, resend, rotation,
disable/enable, test sends and dead-letter redrive — each checked on what the page shows."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import TOKEN, Stack
from tests.fixtures.https_sink import HttpsSink, Reply

pytestmark = pytest.mark.timeout(120)
HOST = "pbx.tenant-a.example"
# `SAYNA_SCREENSHOTS=docs/images make test` refreshes the pictures in docs/operations.md.
SHOTS = os.environ.get("SAYNA_SCREENSHOTS")


async def snap(page: Any, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=str(Path(SHOTS) / f"console-{name}.png"), full_page=True)


async def login(page: Any, stack: Stack, path: str = "") -> None:
    from playwright.async_api import expect

    await page.goto(f"{stack.base}/console{path}")
    dialog = page.locator("#token-dialog")
    await expect(dialog).to_be_visible()  # the API answered 401: the page asks for the token
    await page.fill("#token-input", TOKEN)
    await page.click("#token-save")
    await expect(dialog).to_be_hidden()


async def test_without_the_token_the_page_shows_nothing_and_the_api_refuses(
    stack: Stack, page: Any
) -> None:
    from playwright.async_api import expect

    async with stack.api() as api:
        assert (
            await api.post(
                "/sip/hooks", json={"hooks": [{"host": HOST, "url": "https://127.0.0.1:9/x"}]}
            )
        ).status_code == 200
    async with httpx.AsyncClient(base_url=stack.base) as anonymous:
        shell = await anonymous.get("/console")
        assert shell.status_code == 200 and HOST not in shell.text
        assert (await anonymous.get("/sip/hooks")).status_code == 401

    await page.goto(f"{stack.base}/console")
    await expect(page.locator("#token-dialog")).to_be_visible()
    await expect(page.locator("#error")).to_be_hidden()  # the prompt, no 401 bar behind it
    await page.click("#token-cancel")
    await expect(page.locator("#view")).not_to_contain_text(HOST)

    await page.click("#token-button")
    await page.fill("#token-input", "wrong-token-wrong-token")
    await page.click("#token-save")
    await expect(page.locator("#error")).to_contain_text("401")
    await expect(page.locator("#view")).not_to_contain_text(HOST)


async def test_add_a_hook_see_it_listed_and_delete_it(
    stack: Stack, page: Any, https_sink: HttpsSink
) -> None:
    from playwright.async_api import expect

    await login(page, stack)
    await expect(page.locator("#hooks")).to_contain_text("No hooks yet.")
    form = page.locator("#add-hook")
    await form.locator("[name=host]").fill(HOST)
    await form.locator("[name=url]").fill(https_sink.url("/a"))
    await form.locator("button[type=submit]").click()
    row = page.locator(f'#hooks tr[data-host="{HOST}"]')
    await expect(row).to_contain_text("runtime")
    await expect(row).to_contain_text("enabled")
    await snap(page, "hooks")

    # A refused input is shown, not swallowed.
    await form.locator("[name=host]").fill("bad host")
    await form.locator("[name=url]").fill("http://insecure.example.com/")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#error")).to_contain_text("400")

    page.once("dialog", lambda d: d.accept())
    await row.locator("button", has_text="Delete").click()
    await expect(page.locator("#hooks")).to_contain_text("No hooks yet.")
    async with stack.api() as api:
        assert (await api.get("/sip/hooks")).json()["hooks"] == []


async def test_usable_at_phone_width_and_on_a_malformed_address(
    stack: Stack, page: Any, https_sink: HttpsSink
) -> None:
    from playwright.async_api import expect

    async with stack.api() as api:
        await api.post("/sip/hooks", json={"hooks": [{"host": HOST, "url": https_sink.url("/a")}]})
    await page.set_viewport_size({"width": 390, "height": 844})
    await login(page, stack)
    row = page.locator(f'#hooks tr[data-host="{HOST}"]')
    await expect(row).to_be_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"

    # A hand-edited address with a malformed %-escape: an error, not a blank page.
    await page.goto(f"{stack.base}/console#/hooks/pbx%E0%A4%A")
    await expect(page.locator("#error")).to_contain_text("malformed %-escape")
    await expect(page.locator("#view")).to_contain_text("cannot be read")
    await page.goto(f"{stack.base}/console#/hooks")  # and the next address works again
    await expect(row).to_be_visible()
    await expect(page.locator("#error")).to_be_hidden()


async def test_a_hook_page_rotates_disables_enables_and_test_sends(
    stack: Stack, page: Any, https_sink: HttpsSink
) -> None:
    from playwright.async_api import expect

    async with stack.api() as api:
        r = await api.post(
            "/sip/hooks", json={"hooks": [{"host": HOST, "url": https_sink.url("/a")}]}
        )
        assert r.status_code == 200, r.text
    await login(page, stack, f"#/hooks/{HOST}")
    await expect(page.locator("h1")).to_have_text(HOST)
    await expect(page.locator("#hook-secrets")).to_contain_text("global secret")

    await page.click("#test-send")
    await expect(page.locator("#test-result")).to_contain_text("status 200")
    assert len(https_sink.received("/a")) == 1

    await page.click("#rotate")
    secret = page.locator("#new-secret")
    await expect(secret).to_contain_text("whsec_")
    shown = await secret.inner_text()
    await expect(page.locator("#hook-secrets li")).to_have_count(2)  # new + the global, expiring
    await snap(page, "hook")
    await page.click("#copy-secret")
    assert await page.evaluate("navigator.clipboard.readText()") == shown
    await page.reload()
    await expect(page.locator("#hook-secrets li")).to_have_count(2)
    await expect(page.locator("#new-secret")).to_have_count(0)  # shown once only
    assert shown not in await page.content()

    await page.click("#disable")
    await expect(page.locator("#hook-state")).to_contain_text("disabled")
    await page.click("#enable")
    await expect(page.locator("#hook-state")).to_contain_text("enabled")
    async with stack.api() as api:
        hook = (await api.get("/sip/hooks")).json()["hooks"][0]
    assert hook["enabled"] is True and len(hook["secrets"]) == 2


async def test_a_hook_page_lists_its_endpoints_with_header_names_only(
    stack: Stack, page: Any, https_sink: HttpsSink
) -> None:
    from playwright.async_api import expect

    value = "Bearer crm-key-never-shown-0123"
    async with stack.api() as api:
        r = await api.post(
            "/sip/hooks", json={"hooks": [{"host": HOST, "url": https_sink.url("/a")}]}
        )
        assert r.status_code == 200, r.text
        r = await api.post(
            f"/sip/hooks/{HOST}/endpoints",
            json={"id": "crm", "url": https_sink.url("/crm"), "headers": {"Authorization": value}},
        )
        assert r.status_code == 201, r.text
    await login(page, stack, f"#/hooks/{HOST}")
    rows = page.locator("#endpoints tbody tr")
    await expect(rows).to_have_count(2)
    crm = page.locator('#endpoints tr[data-endpoint="crm"]')
    await expect(crm.locator(".endpoint-headers")).to_have_text("Authorization")
    assert "crm-key-never-shown" not in await page.content()
    await crm.locator(".endpoint-test").click()
    await expect(page.locator("#test-result")).to_contain_text("status 200")
    (sent,) = https_sink.received("/crm")
    assert sent.headers["authorization"] == value

    # An event to both endpoints, resent from its page to one: the same webhook-id again.
    from tests.fixtures.livekit import sip_event

    event = sip_event(room="sip-call-5", to=f"sip:+1555@{HOST}")
    await _webhook(stack, event)
    await _until(stack, f"/sip/deliveries/{event['id']}", lambda d: len(d["attempts"]) == 2)
    await page.goto(f"{stack.base}/console#/deliveries/{event['id']}")
    buttons = page.locator("#resend button")
    await expect(buttons).to_have_text(["Resend to default", "Resend to crm", "Resend to all"])
    asked: list[str] = []

    async def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.once("dialog", accept)
    await buttons.nth(1).click()
    await expect(page.locator("#resend-result")).to_contain_text(
        f"resent to {HOST} (crm) with webhook-id {event['id']}"
    )
    assert asked == [f"Resend event {event['id']} to endpoint crm of {HOST}? It arrives "
                     "again with the same webhook-id."]  # fmt: skip
    again = (await https_sink.wait_for(3, "/crm"))[2]
    assert again.headers["webhook-id"] == event["id"]
    assert len(https_sink.received("/a")) == 1  # the other endpoint's only copy

    await page.goto(f"{stack.base}/console#/hooks/{HOST}")
    await expect(rows).to_have_count(2)
    await crm.locator(".endpoint-delete").click()
    await expect(rows).to_have_count(1)


async def _webhook(stack: Stack, event: dict[str, Any]) -> None:
    from tests.fixtures.livekit import signed_webhook

    body, headers = signed_webhook(event)
    async with httpx.AsyncClient(base_url=stack.base) as client:
        r = await client.post("/livekit/webhook", content=body, headers=headers)
    assert r.status_code == 200, r.text


async def _until(stack: Stack, path: str, done: Any) -> Any:
    """Poll the API (records and dead letters land a moment after the delivery)."""
    async with stack.api() as api, asyncio.timeout(20):
        while True:
            r = await api.get(path)
            if r.status_code == 200 and done(r.json()):
                return r.json()
            await asyncio.sleep(0.1)


async def _pending_retry(tmp_path: Path, event_id: str, due_in: float) -> None:
    """A failed attempt with its retry `due_in` seconds away, straight into the records
    (the stack's own retries are 1 s apart: over before a page could show one)."""
    import json
    import time

    import nats

    from sayna_sip.common import records
    from sayna_sip.common.records import AttemptRecord

    now = time.time()
    rec = AttemptRecord(event_id=event_id, event="participant_joined", room="sip-call-9",
                        host=HOST, attempt=1, outcome="failed", status=503, started_at=now,
                        retry_at=now + due_in)  # fmt: skip
    nc = await nats.connect(json.loads((tmp_path / "data" / "up.json").read_text())["nats_url"])
    try:
        await nc.jetstream().publish(records.subject(rec), records.encode(rec))
    finally:
        await nc.close()


async def test_deliveries_with_attempts_and_a_dead_letter_redriven(
    stack: Stack, page: Any, https_sink: HttpsSink, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    from tests.fixtures.livekit import sip_event

    key = "crm-key-never-shown-4567"
    https_sink.program("/d", Reply(500, b"tenant down"), then=Reply(200, b"thanks"))
    async with stack.api() as api:
        hook = {"host": HOST, "url": https_sink.url("/d"), "headers": {"X-Crm-Key": key}}
        r = await api.post("/sip/hooks", json={"hooks": [hook]})
        assert r.status_code == 200, r.text
    event = sip_event(room="sip-call-1", to=f"sip:+1555@{HOST}")
    await _webhook(stack, event)
    await _until(stack, f"/sip/deliveries/{event['id']}", lambda d: len(d["attempts"]) >= 2)

    await login(page, stack, f"#/hooks/{HOST}")
    await expect(page.locator("#deliveries")).to_contain_text(event["id"])
    await page.fill("#find-id", event["id"])
    await page.click("#find button")
    timeline = page.locator("#attempts li")
    await expect(timeline).to_have_count(2)
    await expect(timeline.nth(0)).to_contain_text("status 500")
    await expect(timeline.nth(0)).to_contain_text("tenant down")
    await expect(timeline.nth(1)).to_contain_text("delivered")
    await expect(page.locator("#route")).to_contain_text("matched")
    await expect(page.locator("#resend button")).to_have_text(["Resend"])  # one endpoint
    # What was sent: the headers (signature and custom value redacted), the body, and when
    # the failed attempt's retry was due; nothing is pending any more.
    await expect(timeline.nth(0).locator(".retry-at")).to_contain_text("next try due")
    await expect(timeline.nth(1).locator(".retry-at")).to_have_count(0)
    sent = timeline.nth(1).locator(".request-headers")
    await expect(sent).to_have_attribute("open", "")
    await expect(sent).to_contain_text("webhook-signature: v1,<redacted>")
    await expect(sent).to_contain_text("X-Crm-Key: <redacted>")
    await expect(sent).to_contain_text(f"webhook-id: {event['id']}")
    await expect(page.locator("#request-body")).to_contain_text(f'"id": "{event["id"]}"')
    await expect(page.locator("#next-retry")).to_have_count(0)
    assert key not in await page.content()
    assert https_sink.received("/d")[1].headers["x-crm-key"] == key
    await snap(page, "delivery")

    # A retry still pending: its due time, local and relative, at the top.
    await _pending_retry(tmp_path, "EV_pending_1", due_in=3600)
    await page.goto(f"{stack.base}/console#/deliveries/EV_pending_1")
    await expect(page.locator("#next-retry")).to_contain_text("in 1 h")
    await expect(page.locator("#request-body")).to_contain_text("No longer stored")
    await expect(page.locator("#resend")).to_have_count(0)  # no route: nothing to resend

    # Disabled: the next events are dead letters; enabled again, they are redriven from the
    # page: one selected, then all shown (select-all ticks every row).
    async with stack.api() as api:
        assert (await api.post(f"/sip/hooks/{HOST}/disable")).status_code == 200
    dead = [sip_event(room=f"sip-call-{i}", to=f"sip:+1555@{HOST}") for i in (2, 3, 4)]
    for one in dead:
        await _webhook(stack, one)
    await _until(stack, "/sip/dead-letters", lambda d: len(d["dead_letters"]) == 3)
    async with stack.api() as api:
        assert (await api.post(f"/sip/hooks/{HOST}/enable")).status_code == 200
    await page.goto(f"{stack.base}/console#/dead-letters")
    await expect(page.locator("#find-id")).to_have_value("")  # not the id looked at before
    row = page.locator("#dead-letters tbody tr", has_text=dead[0]["id"])
    await expect(row).to_contain_text("hook disabled")
    await snap(page, "dead-letters")
    await row.locator("input[type=checkbox]").check()
    await page.click("#redrive-selected")
    await expect(page.locator("#redrive-result")).to_contain_text("redriven 1")
    await expect(page.locator("#dead-letters tbody tr")).to_have_count(2)
    await page.locator("#select-all").check()
    await expect(page.locator("#dead-letters tbody input:checked")).to_have_count(2)
    await page.click("#redrive-all")  # before: 400 invalid_body (no filter given)
    await expect(page.locator("#redrive-result")).to_contain_text("redriven 2")
    await expect(page.locator("#dead-letters")).to_contain_text("No dead letters.")
    await https_sink.wait_for(5, "/d")
    got = {r.headers["webhook-id"] for r in https_sink.received("/d")[2:]}
    assert got == {one["id"] for one in dead}


async def test_deliveries_filtered_paged_live_with_local_times_and_reasons_on_a_phone(
    stack: Stack, page: Any, https_sink: HttpsSink, tmp_path: Path
) -> None:
    import json
    import time

    import nats
    from playwright.async_api import expect

    from sayna_sip.common import records
    from sayna_sip.common.records import AttemptRecord
    from tests.fixtures.livekit import sip_event

    https_sink.program("/f", Reply(410), then=Reply(200))  # the first event dies: `gone`
    async with stack.api() as api:
        r = await api.post(
            "/sip/hooks", json={"hooks": [{"host": HOST, "url": https_sink.url("/f")}]}
        )
        assert r.status_code == 200, r.text
    # 200 older attempts straight into the records, then 2 events (4 records): a page holds
    # 200 records, 198 of them attempts; the next page the 4 oldest.
    nats_url = json.loads((tmp_path / "data" / "up.json").read_text())["nats_url"]
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for i in range(200):
        rec = AttemptRecord(event_id=f"EV_old_{i:03}", event="room_started", room="sip-old",
                            host=HOST, attempt=1, outcome="delivered", status=200,
                            started_at=time.time() - 3600)  # fmt: skip
        await js.publish(records.subject(rec), records.encode(rec))
    await nc.close()
    gone, kept = (sip_event(room=f"sip-call-{n}", to=f"sip:+1555@{HOST}") for n in ("a", "b"))
    for one in (gone, kept):
        await _webhook(stack, one)
        await _until(stack, f"/sip/deliveries/{one['id']}", lambda d: len(d["attempts"]) >= 1)

    await login(page, stack, f"#/hooks/{HOST}")
    table = page.locator("#deliveries tbody tr")
    await expect(table).to_have_count(198)
    await expect(table.first).to_contain_text("ago")  # local time, and how long ago
    await page.click("#older")
    await expect(table).to_have_count(4)
    await page.goto(f"{stack.base}/console#/hooks/{HOST}")
    await expect(table).to_have_count(198)  # the first page again, its own filter form
    form = page.locator("#delivery-filter")
    await form.locator("[name=room]").fill("sip-call-b")
    await form.locator("button").click()
    await expect(table).to_have_count(1)
    await expect(table).to_contain_text(kept["id"])
    await form.locator("[name=room]").fill("")
    await form.locator("[name=outcome]").select_option("dead")
    await form.locator("button").click()
    await expect(table).to_have_count(1)
    await expect(table).to_contain_text(gone["id"])

    # Live: a new delivery appears without a reload.
    await page.goto(f"{stack.base}/console#/hooks/{HOST}")
    await page.check("#live")
    late = sip_event(room="sip-call-c", to=f"sip:+1555@{HOST}")
    await _webhook(stack, late)
    await expect(page.locator("#deliveries")).to_contain_text(late["id"], timeout=20_000)
    await page.uncheck("#live")

    # Dead letters on a phone: the event type is a column, the reason stays on screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"{stack.base}/console#/dead-letters")
    row = page.locator("#dead-letters tbody tr", has_text=gone["id"])
    await expect(row.locator("td.reason")).to_have_text("gone")
    box = await row.locator("td.reason").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390, box
    await page.set_viewport_size({"width": 1280, "height": 800})
    await expect(row).to_contain_text("participant_joined")
