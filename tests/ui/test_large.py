"""A 1,000,000-URL task, running: the task page shows one page of results and asks for nothing more.

The load time is measured and printed (a figure for reports, never asserted); what is asserted is
what the browser holds: the rows in the page and the result requests it made.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import Service, Target, start_service
from tests.ui.conftest import new_tab

MILLION = 1_000_000
PAGE_ROWS = 50


@pytest.fixture
async def big_service(tmp_path: Path) -> AsyncIterator[Service]:
    running = await start_service(tmp_path, "serve", "--db", str(tmp_path / "big.db"))
    yield running
    await running.stop()


async def load_task_page(page: Page, url: str) -> float:
    """Milliseconds from navigation start until the first page of results is on screen."""
    await page.goto(url)
    await expect(page.locator("tbody.result")).to_have_count(PAGE_ROWS, timeout=60_000)
    elapsed: float = await page.evaluate("performance.now()")
    return elapsed


async def test_a_million_url_task_page_holds_one_page_of_results(
    browser: Browser, big_service: Service, target: Target
) -> None:
    body = "\n".join(target.url(f"/status/200?m={i}") for i in range(MILLION))
    async with httpx.AsyncClient(base_url=big_service.url, timeout=600) as client:
        small = await client.post(
            "/api/v1/tasks", json={"urls": [target.url(f"/status/200?b={i}") for i in range(60)]}
        )
        big = await client.post("/api/v1/tasks", content=body, headers={"content-type": "text/plain"})
        assert big.status_code == 202, big.text
        task_id = big.json()["id"]
        context, tab = await new_tab(browser, big_service.url)
        try:
            baseline = await load_task_page(tab.page, f"{big_service.url}/#/tasks/{small.json()['id']}")
            tab.requests.clear()
            loaded = await load_task_page(tab.page, f"{big_service.url}/#/tasks/{task_id}")
            await expect(tab.page.locator("h1 .badge")).to_have_text("running")
            await tab.page.wait_for_timeout(3000)  # let live progress run for a while
            await tab.page.get_by_role("button", name="Next →").click()
            await expect(tab.page.locator("tbody.result").first).to_have_attribute(
                "data-index", str(PAGE_ROWS)
            )

            assert await tab.page.locator("tbody.result").count() == PAGE_ROWS
            results = tab.api_calls(f"/tasks/{task_id}/results")
            assert results and all(re.search(rf"[?&]limit={PAGE_ROWS}(&|$)", url) for url in results), results
            assert not any("format=" in url for url in results)
            assert not tab.api_calls("format="), "the page downloaded a whole result set"
            done = (await client.get(f"/api/v1/tasks/{task_id}")).json()["progress"]["done"]
            print(f"\n1M-URL task page: first page shown in {loaded:.0f} ms (60-URL task: {baseline:.0f} ms, "
                  f"ratio {loaded / baseline:.2f}); {len(results)} result requests of {PAGE_ROWS} rows; "
                  f"{done} URLs done meanwhile")  # fmt: skip
        finally:
            await context.close()
            await client.delete(f"/api/v1/tasks/{task_id}")
