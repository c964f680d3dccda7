"""Crawls and documents in the UI: a site crawled from the submit form (its limits and patterns
reach the API, the task shows the pages fetched), a document uploaded with its format and base
URL, and each result's "Found in" with the places and their total, as the API reports them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.conftest import Target
from tests.ui.conftest import Site, Tab, shoot

# The page is linked 12 times: more places than a result lists (10), so "Found in" shows the total.
GUIDE = "# Guide\nSee [the page](../status/200) and [a missing one](../status/404).\n" + "".join(
    f"\nAgain ({i}) [the page](../status/200).\n" for i in range(11)
)


async def open_new(tab: Tab, name: str) -> Page:
    await tab.open("/new")
    await tab.page.get_by_label("Name").fill(name)
    return tab.page


async def start(page: Page) -> str:
    await page.get_by_role("button", name="Start checking").click()
    await expect(page).to_have_url(re.compile(r"#/tasks/"))  # an assertion: the key prompt is answered
    await expect(page.locator("h1 .badge")).to_have_text("ready", timeout=60_000)
    return page.url.rsplit("/", 1)[-1]


async def found_in_matches_the_api(page: Page, client: httpx.AsyncClient, task_id: str, part: str) -> Any:
    """Filters the table to the one URL containing `part`, opens its details and checks "Found in"
    shows the API's places and total. Returns the API's sources."""
    await page.get_by_label("URL contains", exact=True).fill(part)
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("tbody.result")).to_have_count(1)
    answer = (await client.get(f"/api/v1/tasks/{task_id}/results", params={"q": part})).json()
    (result,) = answer["items"]
    sources = result["sources"]
    await page.get_by_role("button", name=f"Details of {result['url']}").click()
    found = page.locator(f"#details-{result['index']} .sources")
    total = sources["total"]
    await expect(found.locator(".sources-total")).to_have_text("1 place" if total == 1 else f"{total} places")
    lines: dict[str, list[int]] = {}  # each document once, with its lines
    for place in sources["places"]:
        lines.setdefault(place["document"], []).append(place["line"])
    listed = [
        f"{doc}, line{'s' if len(at) > 1 else ''} {', '.join(map(str, at))}" for doc, at in lines.items()
    ]
    more = total - len(sources["places"])
    await expect(found.locator("li")).to_have_text([*listed, *([f"…and {more} more"] if more else [])])
    return sources


async def test_crawl_a_site_from_the_form(
    tab: Tab, site: Site, pages: str, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    page = await open_new(tab, f"Site crawl ({site.name})")
    await page.get_by_label("Crawl a site").check()
    await expect(page.get_by_label("Paste URLs")).to_be_hidden()
    await page.get_by_label("Start URL").fill(f"{pages}/index.html")
    await page.get_by_label("Max depth").fill("5")
    await page.get_by_label("Max pages").fill("20")
    await page.get_by_text("Crawl options").click()
    await page.get_by_label("Exclude (one regular expression a line)").fill("/deep/3\n")
    await page.get_by_label("Check #fragments of the site's pages").check()
    task_id = await start(page)

    task = (await client.get(f"/api/v1/tasks/{task_id}")).json()
    crawl = task["crawl"]
    assert (crawl["start"], crawl["max_depth"], crawl["max_pages"]) == (f"{pages}/index.html", 5, 20)
    assert crawl["exclude"] == ["/deep/3"] and crawl["check_fragments"] and not crawl["ignore_robots"]
    await expect(page.locator(".crawl-line")).to_contain_text(f"Crawl of {pages}/index.html")
    assert task["progress"]["pages"] >= 4  # index, a, b, deep/1, deep/2 (deep/3 excluded)
    await expect(page.locator(".stat.pages dd")).to_have_text(str(task["progress"]["pages"]))
    sources = await found_in_matches_the_api(page, client, task_id, "/missing.html")
    assert sources["total"] == 2  # linked from index.html and deep/1.html
    await shoot(page, f"crawl-{site.name}", tmp_path, full_page=True)
    assert tab.errors == []


async def test_upload_a_document_with_its_format_and_base_url(
    tab: Tab, site: Site, target: Target, client: httpx.AsyncClient
) -> None:
    page = await open_new(tab, f"Guide ({site.name})")
    # A .txt name would be read as a URL list: the format field makes it Markdown.
    await page.get_by_label("…or upload a file").set_input_files(
        {"name": "guide.txt", "mimeType": "text/plain", "buffer": GUIDE.encode()}
    )
    await page.get_by_label("File format").select_option("markdown")
    await page.get_by_label("Base URL (optional)").fill(target.url("/docs/"))
    task_id = await start(page)
    await expect(page.locator("tbody.result")).to_have_count(2)  # one result per unique URL
    await expect(page.locator(".stat.ok dd")).to_have_text("1")
    sources = await found_in_matches_the_api(page, client, task_id, "/status/200")
    assert sources["total"] == 12 and len(sources["places"]) == 10
    assert {place["document"] for place in sources["places"]} == {"guide.txt"}
    assert tab.errors == []
