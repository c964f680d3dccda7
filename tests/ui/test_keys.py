"""The UI with keys required, on a real `linkprobe serve` (LINKPROBE_AUTH=required, a key made with
`linkprobe keys create`): it asks once, keeps the key for the tab and sends it everywhere, the event
stream included (read with fetch(), since EventSource cannot send headers). The core browser tests
of test_ui.py also run there (site "serve-keys") and on the keyed front."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, Request, expect

from tests.conftest import Target
from tests.ui.conftest import Site, new_tab


async def test_the_ui_asks_for_a_key_and_sends_it_with_every_call(
    browser: Browser, serve_keys_site: Site, target: Target
) -> None:
    key = serve_keys_site.key
    assert key and (await httpx.AsyncClient().get(f"{serve_keys_site.url}/api/v1/tasks")).status_code == 401
    context, tab = await new_tab(browser, serve_keys_site.url)
    sent: list[tuple[str, str | None]] = []

    def record(request: Request) -> None:
        if "/api/" in request.url:
            sent.append((request.url, request.headers.get("authorization")))

    tab.page.on("request", record)
    try:
        await tab.open("/")
        dialog = tab.page.get_by_role("dialog", name="API key needed")
        await expect(dialog).to_contain_text("an API key is required")
        await dialog.get_by_label("API key").fill(key)
        await dialog.get_by_role("button", name="Use key").click()
        await expect(tab.page.get_by_role("heading", name="Tasks")).to_be_visible()

        await tab.page.get_by_role("link", name="New task").first.click()
        await tab.page.get_by_label("Paste URLs").fill(
            "\n".join(target.url(f"/slow?s=0.3&k={i}") for i in range(24))
        )
        await tab.page.get_by_role("button", name="Start checking").click()
        await expect(tab.page.locator("h1 .badge")).to_have_text("ready", timeout=60_000)
        events = [auth for url, auth in sent if url.endswith("/events")]
        assert events and set(events) == {f"Bearer {key}"}
        assert all(auth == f"Bearer {key}" for _, auth in sent[1:])  # every call after the first 401
        assert await tab.page.evaluate("sessionStorage.getItem('linkprobe.apiKey')") == key
    finally:
        await context.close()


async def test_refusing_to_give_a_key_shows_the_reason(browser: Browser, serve_keys_site: Site) -> None:
    context, tab = await new_tab(browser, serve_keys_site.url)
    try:
        await tab.open("/")
        await tab.page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
        await expect(tab.page.locator("#notice .banner.error")).to_contain_text("an API key is required")
    finally:
        await context.close()


async def test_a_wrong_key_is_refused_with_the_api_reason(browser: Browser, serve_keys_site: Site) -> None:
    context, tab = await new_tab(browser, serve_keys_site.url)
    try:
        await tab.open("/")
        dialog = tab.page.get_by_role("dialog", name="API key needed")
        await dialog.get_by_label("API key").fill("lp_not_a_key_0123456789abcdef")
        await dialog.get_by_role("button", name="Use key").click()
        await expect(tab.page.locator("#notice .banner.error")).to_contain_text("unknown or revoked API key")
    finally:
        await context.close()
