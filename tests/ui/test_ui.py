"""The web UI end to end: Debian's Chromium drives the real UI against `linkprobe serve` and against
the front of the distributed topology (front + two API replicas + workers + Redis)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import Target
from tests.ui.conftest import Site, Tab, new_tab, shoot


def urls_for(target: Target, tag: str) -> list[str]:
    """60 URLs: 30 ok, 20 not found, 8 slow enough that the task is watched while it runs, 2 redirects."""
    ok = [target.url(f"/status/200?{tag}={i}") for i in range(30)]
    missing = [target.url(f"/status/404?{tag}={i}") for i in range(20)]
    slow = [target.url(f"/slow?s=1.5&{tag}={i}") for i in range(8)]
    return [target.url("/redirect/2"), *slow, *ok, *missing, target.url(f"/redirect/1?{tag}")]


async def submit(page: Page, name: str, urls: list[str]) -> str:
    await page.get_by_role("link", name="New task").first.click()
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Paste URLs").fill("\n".join(urls))
    await page.get_by_role("button", name="Start checking").click()
    await page.wait_for_url("**/#/tasks/*")
    return page.url.rsplit("/", 1)[-1]


async def progress_values(page: Page, total: int) -> list[int]:
    """The progress bar's value, sampled until it reaches `total` (no reload in between)."""
    seen: list[int] = []
    bar = page.locator("#task-progress")
    for _ in range(600):
        value = int(await bar.get_attribute("value") or 0)
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == total:
            return seen
        await page.wait_for_timeout(100)
    raise AssertionError(f"progress stuck at {seen}")


async def result_rows(page: Page) -> int:
    return await page.locator("tbody.result").count()


WITH_KEYS = pytest.mark.parametrize("site", ["serve", "serve-keys", "front"], indirect=True)


async def keys_were_needed(site: Site, tab: Tab) -> None:
    """On a site with keys required: the API refuses a call without one, and the UI asked for it."""
    if site.key:
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(f"{site.url}/api/v1/tasks")).status_code == 401
        assert tab.keys_entered == 1, "the UI should ask for the key once per tab"


def latency_counts(label: str) -> dict[str, int]:
    """The latency chart's accessible name ("Latency. ≤ 10 ms: 3, slower: 1") as bucket -> count."""
    return {name.strip(): int(n) for name, n in re.findall(r"([^.,:]+): (\d+)", label.split(". ", 1)[1])}


@WITH_KEYS
async def test_submit_watch_filter_page_details_and_download(
    tab: Tab, site: Site, target: Target, tmp_path: Path
) -> None:
    page = tab.page
    await tab.open("/")
    urls = urls_for(target, f"t{site.name}")
    task_id = await submit(page, f"Docs links ({site.name})", urls)
    await keys_were_needed(site, tab)
    seen = await progress_values(page, len(urls))
    assert seen[0] < len(urls), f"the task page never showed the task running: {seen}"
    await expect(page.locator("h1 .badge")).to_have_text("ready")
    await expect(page.locator(".stat.ok dd")).to_have_text("40")
    await expect(page.locator(".stat.broken dd")).to_have_text("20")
    assert tab.api_calls(f"/api/v1/tasks/{task_id}/events"), "progress did not come from the event stream"
    await expect(page.locator("figure.chart svg[aria-label^='Status codes']")).to_have_count(1)
    latency = page.locator("figure.chart svg[aria-label^='Latency']")
    await expect(latency.locator("rect.bar")).not_to_have_count(0)
    buckets = latency_counts(await latency.get_attribute("aria-label") or "")
    assert sum(buckets.values()) == len(urls), buckets  # every URL was attempted, each counted once
    slow = sum(n for name, n in buckets.items() if name in ("≤ 2500 ms", "≤ 5000 ms"))
    assert slow >= 8, buckets  # the eight 1.5 s answers
    await shoot(page, f"task-{site.name}", tmp_path)

    await expect(page.locator("tbody.result")).to_have_count(50)  # one page of 50 of the 60
    await page.get_by_role("button", name="Next →").click()
    await expect(page.locator("tbody.result")).to_have_count(10)
    await page.get_by_role("button", name="← Previous").click()
    await expect(page.locator("tbody.result").first).to_have_attribute("data-index", "0")

    details = page.get_by_role("button", name=f"Details of {urls[0]}")
    await details.click()
    await expect(details).to_have_attribute("aria-expanded", "true")
    chain = page.locator("#details-0 .chain li")
    await expect(chain).to_have_count(3)  # the URL, the hop it redirected to, the final answer
    await expect(chain.nth(0)).to_contain_text(f"302 {urls[0]}")
    await expect(chain.nth(2)).to_contain_text(f"200 {target.url('/status/200')}")
    await expect(page.locator("#details-0")).to_contain_text("Timings")
    await shoot(page, f"details-{site.name}", tmp_path)

    await page.get_by_label("Outcome", exact=True).select_option("broken")
    await expect(page.locator("tbody.result")).to_have_count(20)
    await expect(page.locator("tbody.result .pill.ok")).to_have_count(0)
    await page.get_by_label("Outcome", exact=True).select_option("")
    await page.get_by_label("Status code", exact=True).fill("404")
    await page.get_by_label("URL contains", exact=True).fill(f"T{site.name}=1")  # any case: =1, =10..=19
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("tbody.result")).to_have_count(11)

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="CSV").click()
    download = await download_info.value
    saved = tmp_path / "filtered.csv"
    await download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert len(rows) == 11 and {row["status_code"] for row in rows} == {"404"}
    assert tab.errors == []


@WITH_KEYS
async def test_cancel_and_delete_with_confirmation(
    tab: Tab, site: Site, target: Target, client: httpx.AsyncClient
) -> None:
    page = tab.page
    await tab.open("/")
    task_id = await submit(page, "to cancel", [target.url(f"/slow?s=20&c{site.name}={i}") for i in range(40)])
    await keys_were_needed(site, tab)
    await expect(page.locator("h1 .badge")).to_have_text("running")
    await page.get_by_role("button", name="Cancel to cancel").click()
    await page.get_by_role("button", name="Keep it").click()  # the confirmation can be refused
    await expect(page.locator("h1 .badge")).to_have_text("running")
    await page.get_by_role("button", name="Cancel to cancel").click()
    await page.get_by_role("button", name="Cancel task").click()
    await expect(page.locator("h1 .badge")).to_have_text("cancelled")
    assert (await client.get(f"/api/v1/tasks/{task_id}")).json()["status"] == "cancelled"

    await page.get_by_role("button", name="Delete to cancel").click()
    await page.get_by_role("button", name="Delete task").click()
    await page.wait_for_url("**/#/")
    await expect(page.locator(f"tr[data-task='{task_id}']")).to_have_count(0)
    assert (await client.get(f"/api/v1/tasks/{task_id}")).status_code == 404

    await tab.open(f"/tasks/{task_id}")  # a deleted task says so
    await expect(page.get_by_role("heading", name="This task no longer exists")).to_be_visible()


async def test_task_list_is_paged_newest_first(tab: Tab, site: Site, client: httpx.AsyncClient) -> None:
    for i in range(22):
        answer = await client.post(
            "/api/v1/tasks", json={"urls": ["http://[::1"], "name": f"list-{site.name}-{i}"}
        )
        assert answer.status_code == 202
    await tab.open("/")
    first = tab.page.locator("table.tasks tbody tr").first
    await expect(first).to_contain_text(f"list-{site.name}-21")
    await expect(tab.page.locator("table.tasks tbody tr")).to_have_count(20)
    await tab.page.get_by_role("button", name="Older →").click()
    await expect(tab.page.locator("table.tasks tbody tr").first).to_contain_text(f"list-{site.name}-1")


async def test_an_invalid_option_shows_the_api_detail(tab: Tab, target: Target) -> None:
    page = tab.page
    await tab.open("/new")
    await page.get_by_label("Paste URLs").fill(target.url("/status/200"))
    await page.get_by_label("Accepted status codes").fill("two hundred")
    await page.get_by_role("button", name="Start checking").click()
    banner = page.locator("#notice .banner.error")
    await expect(banner).to_contain_text("accept")
    assert "#/new" in page.url  # nothing was submitted, the form keeps what was typed
    await expect(page.get_by_label("Paste URLs")).to_have_value(target.url("/status/200"))


async def test_screens_in_light_dark_and_on_a_phone(
    browser: Browser, site: Site, target: Target, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    urls = urls_for(target, f"s{site.name}")
    body = {"urls": urls, "name": "Release notes links", "description": "Every link of the 2.4 release notes"}
    task = (await client.post("/api/v1/tasks", json=body)).json()
    desktop, phone = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
    screens = [("light", desktop, "light"), ("dark", desktop, "dark"), ("phone", phone, "light")]
    for name, viewport, scheme in screens:
        context, tab = await new_tab(browser, site.url, site.key, viewport=viewport, color_scheme=scheme)
        await tab.open(f"/tasks/{task['id']}")
        await expect(tab.page.locator("h1 .badge")).to_have_text("ready", timeout=60_000)
        await expect(tab.page.locator("tbody.result")).to_have_count(50)
        overflow = await tab.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow}px"
        await shoot(tab.page, f"task-{name}-{site.name}", tmp_path)
        if name == "light":
            await tab.open("/")
            await expect(tab.page.locator("table.tasks tbody tr").first).to_be_visible()
            await shoot(tab.page, f"tasks-{site.name}", tmp_path)
            await tab.open("/new")
            await tab.page.get_by_text("Advanced options").click()
            await shoot(tab.page, f"new-{site.name}", tmp_path)
        if name == "phone":  # the submit form's crawl mode fits a phone too
            await tab.open("/new")
            await tab.page.get_by_label("Crawl a site").check()
            await tab.page.get_by_text("Crawl options").click()
            overflow = await tab.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the crawl form scrolls sideways by {overflow}px on a phone"
            await shoot(tab.page, f"new-crawl-phone-{site.name}", tmp_path, full_page=True)
        assert tab.errors == []
        await context.close()


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => !(el.labels && el.labels.length))
  .filter((el) => !el.getAttribute('aria-label') && !el.textContent.trim())
  .map((el) => el.outerHTML)"""


async def test_keyboard_and_screen_reader_basics(
    tab: Tab, site: Site, target: Target, client: httpx.AsyncClient
) -> None:
    page = tab.page
    await tab.open("/new")
    assert await page.evaluate(UNLABELLED) == []
    await expect(page.get_by_label("Paste URLs")).to_be_focused()  # the form starts where the typing is
    task = (
        await client.post(
            "/api/v1/tasks", json={"urls": [target.url("/redirect/1"), target.url("/status/404")]}
        )
    ).json()
    await tab.open(f"/tasks/{task['id']}")
    await expect(page.locator("h1 .badge")).to_have_text("ready", timeout=60_000)
    assert await page.evaluate(UNLABELLED) == []
    toggle = page.get_by_role("button", name=f"Details of {target.url('/redirect/1')}")
    await toggle.focus()
    await page.keyboard.press("Enter")
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(page.locator("#details-0")).to_be_visible()
    await page.keyboard.press("Space")
    await expect(page.locator("#details-0")).to_be_hidden()
    chart = page.get_by_role("img", name=re.compile(r"^Status codes\. 200: 1, 404: 1"))
    await expect(chart).to_have_count(1)  # the chart's numbers are readable without seeing it
