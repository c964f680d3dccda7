"""The UI with an API that wants a key: it asks once, keeps it for the tab and sends it everywhere,
the event stream included (read with fetch(), since EventSource cannot send headers).

API keys are not in this service yet, so a small gate in front of the real `linkprobe serve` plays
their part: `/api/*` without `Authorization: Bearer <key>` answers 401 with a detail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession, web
from playwright.async_api import Browser, Request, expect

from tests.conftest import Target, free_port
from tests.ui.conftest import Site, new_tab

KEY = "lp_test_key_0123456789"


@pytest.fixture
async def gated(serve_site: Site) -> AsyncIterator[str]:
    async with ClientSession(auto_decompress=False) as session:

        async def gate(request: web.Request) -> web.StreamResponse:
            if request.path.startswith("/api/") and request.headers.get("Authorization") != f"Bearer {KEY}":
                return web.json_response({"detail": "an API key is required"}, status=401)
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            body = await request.read()
            async with session.request(request.method, f"{serve_site.url}{request.rel_url}", headers=headers,
                                       data=body, allow_redirects=False) as upstream:  # fmt: skip
                response = web.StreamResponse(status=upstream.status, headers=upstream.headers)
                response.headers.popall("Transfer-Encoding", None)
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                return response

        app = web.Application()
        app.router.add_route("*", "/{path:.*}", gate)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}"
        await runner.cleanup()


async def test_the_ui_asks_for_a_key_and_sends_it_with_every_call(
    browser: Browser, gated: str, target: Target
) -> None:
    context, tab = await new_tab(browser, gated)
    sent: list[tuple[str, str | None]] = []

    def record(request: Request) -> None:
        if "/api/" in request.url:
            sent.append((request.url, request.headers.get("authorization")))

    tab.page.on("request", record)
    try:
        await tab.open("/")
        dialog = tab.page.get_by_role("dialog", name="API key needed")
        await expect(dialog).to_contain_text("an API key is required")
        await dialog.get_by_label("API key").fill(KEY)
        await dialog.get_by_role("button", name="Use key").click()
        await expect(tab.page.get_by_role("heading", name="Tasks")).to_be_visible()

        await tab.page.get_by_role("link", name="New task").first.click()
        await tab.page.get_by_label("Paste URLs").fill(
            "\n".join(target.url(f"/slow?s=0.3&k={i}") for i in range(24))
        )
        await tab.page.get_by_role("button", name="Start checking").click()
        await expect(tab.page.locator("h1 .badge")).to_have_text("ready", timeout=60_000)
        events = [auth for url, auth in sent if url.endswith("/events")]
        assert events and set(events) == {f"Bearer {KEY}"}
        assert all(auth == f"Bearer {KEY}" for _, auth in sent[1:])  # every call after the first 401
        assert await tab.page.evaluate("sessionStorage.getItem('linkprobe.apiKey')") == KEY
    finally:
        await context.close()


async def test_refusing_to_give_a_key_shows_the_reason(browser: Browser, gated: str) -> None:
    context, tab = await new_tab(browser, gated)
    try:
        await tab.open("/")
        await tab.page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
        await expect(tab.page.locator("#notice .banner.error")).to_contain_text("an API key is required")
    finally:
        await context.close()
