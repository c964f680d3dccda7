"""Human errors in the browser: the event stream drops and reconnects, the API goes away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.conftest import Service, Target, start_service
from tests.ui.conftest import Tab, new_tab


@pytest.fixture
async def own_service(tmp_path: Path) -> AsyncIterator[Service]:
    """A `linkprobe serve` of this test's own, which the test stops and restarts."""
    running = await start_service(tmp_path, "serve", "--db", str(tmp_path / "own.db"))
    yield running
    await running.stop()


@pytest.fixture
async def own_tab(browser: Browser, own_service: Service) -> AsyncIterator[Tab]:
    context, opened = await new_tab(browser, own_service.url)
    yield opened
    await context.close()


async def test_live_progress_survives_a_restart_of_the_service(
    own_tab: Tab, own_service: Service, target: Target, tmp_path: Path
) -> None:
    page = own_tab.page
    urls = "\n".join(target.url(f"/slow?s=0.5&restart={i}") for i in range(48))
    await own_tab.open("/new")
    await page.get_by_label("Paste URLs").fill(urls)
    await page.get_by_role("button", name="Start checking").click()
    await expect(page.locator("h1 .badge")).to_have_text("running")
    await expect(page.locator(".connection")).to_have_text("Live")

    await own_service.stop(kill=True)  # the stream drops mid-task
    await expect(page.locator(".connection")).to_contain_text("Reconnecting")
    restarted = await start_service(
        tmp_path, "serve", "--db", str(tmp_path / "own.db"), port=own_service.port
    )
    try:
        await expect(page.locator("h1 .badge")).to_have_text("ready", timeout=90_000)
        await expect(page.locator(".stat dd").first).to_have_text("48 / 48")
        assert len(own_tab.api_calls("/events")) >= 2  # the page reconnected by itself, no reload
    finally:
        await restarted.stop()


async def test_an_unreachable_api_is_explained(own_tab: Tab, own_service: Service) -> None:
    page = own_tab.page
    await own_tab.open("/new")
    await page.get_by_label("Paste URLs").fill("https://example.com/")
    await own_service.stop()
    await page.get_by_role("button", name="Start checking").click()
    await expect(page.locator("#notice .banner.error")).to_contain_text("cannot be reached")
    await expect(page.get_by_label("Paste URLs")).to_have_value("https://example.com/")  # nothing lost
