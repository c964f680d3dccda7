"""What the UI shows is what is true: live numbers while URLs hang, a cancelled task (and how far it
got, in the task list), field errors, redirects, a crawl of its site only, an upload without a base,
the blocked hint, phones, and each error kind's own colour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.conftest import Target, free_port, wait_for
from tests.ui.conftest import Site, Tab, new_tab, shoot

SERVE = pytest.mark.parametrize("site", ["serve"], indirect=True)


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    answer = await client.post("/api/v1/tasks", json=body)
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["id"]
    return task_id


@SERVE
async def test_live_numbers_while_urls_hang_then_a_cancelled_task(
    tab: Tab, target: Target, client: httpx.AsyncClient
) -> None:
    page = tab.page
    urls = [target.url(f"/status/200?live={i}") for i in range(20)] + [
        target.url(f"/hang?live={i}") for i in range(3)
    ]
    task_id = await create(
        client, {"urls": urls, "name": "hanging", "options": {"timeout": 60, "retries": 0}}
    )
    await tab.open(f"/tasks/{task_id}")
    await expect(page.locator(".stat.ok dd")).to_have_text("20")
    await expect(page.locator("tbody.result")).to_have_count(20)  # rows appear as they are stored
    await expect(page.locator(".stat.left dd")).to_have_text(
        "waiting on 3 URLs", timeout=15_000
    )  # not a stale estimate
    await expect(page.locator(".stat.rate dd")).to_have_text("0 URLs/s", timeout=20_000)  # the recent rate
    await expect(page.locator("h1 .badge")).to_have_text("running")

    await page.get_by_role("button", name="Cancel hanging").click()
    await page.get_by_role("button", name="Cancel task").click()
    await expect(page.locator("h1 .badge")).to_have_text("cancelled")
    await expect(page.locator(".stat.cancelled dd")).to_have_text("3")
    await expect(page.locator(".stat.broken dd")).to_have_text("0")
    await expect(page.locator(".percent")).to_have_text("86 % checked")
    await expect(page.locator(".connection")).to_contain_text("Cancelled")
    await expect(page.get_by_role("button", name="Cancel hanging")).to_have_count(0)  # nothing left to stop
    await page.get_by_label("Outcome", exact=True).select_option("cancelled")
    await expect(page.locator("tbody.result .pill.cancelled")).to_have_count(3)
    await expect(page.locator("tbody.result .pill.broken")).to_have_count(0)
    assert tab.errors == []


@SERVE
async def test_the_task_list_shows_how_far_a_cancelled_task_got(
    tab: Tab, target: Target, client: httpx.AsyncClient
) -> None:
    urls = [target.url(f"/status/200?got={i}") for i in range(6)] + [
        target.url(f"/hang?got={i}") for i in range(2)
    ]
    body = {"urls": urls, "name": "got far", "options": {"timeout": 60, "retries": 0}}
    task_id = await create(client, body)

    async def quick_ones_done() -> bool:
        return bool((await client.get(f"/api/v1/tasks/{task_id}")).json()["progress"]["done"] == 6)

    await wait_for(quick_ones_done, "the six quick URLs")
    assert (await client.post(f"/api/v1/tasks/{task_id}/cancel")).status_code == 200
    await tab.open("/")
    row = tab.page.locator(f"tr[data-task='{task_id}']")
    await expect(row.locator(".badge")).to_have_text("cancelled")
    await expect(row).to_contain_text("6 / 8 checked, 2 cancelled")
    bar = row.get_by_role("progressbar", name="got far progress")
    await expect(bar).to_have_attribute("max", "8")
    await expect(bar).to_have_attribute("value", "6")  # how far it got, not full
    assert tab.errors == []


@SERVE
async def test_a_cap_error_is_shown_next_to_its_field(tab: Tab, target: Target) -> None:
    page = tab.page
    await tab.open("/new")
    timeout = page.get_by_label("Timeout (s)", exact=True)
    await expect(timeout).to_have_attribute("max", "60")  # the service's cap, from GET /api/v1/service
    await expect(timeout).to_have_value("10")
    await page.get_by_label("Paste URLs").fill(target.url("/status/200"))
    await timeout.fill("100")
    await page.get_by_role("button", name="Start checking").click()
    error = page.locator("#opt-timeout-error")
    await expect(error).to_contain_text("above the cap of 60 (LINKPROBE_CAP_TIMEOUT)")
    await expect(error).to_have_attribute("role", "alert")
    await expect(timeout).to_be_focused()
    await expect(timeout).to_have_attribute("aria-invalid", "true")
    assert "opt-timeout-error" in (await timeout.get_attribute("aria-describedby") or "")
    assert await error.is_visible() and await page.evaluate(
        "(() => { const r = document.querySelector('#opt-timeout-error').getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= innerHeight; })()"
    )
    await expect(page.locator("#notice .banner")).to_have_count(0)
    await timeout.fill("5")
    await page.get_by_role("button", name="Start checking").click()
    await page.wait_for_url("**/#/tasks/*")


@SERVE
async def test_redirects_marked_and_filtered(
    tab: Tab, target: Target, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    page = tab.page
    moved, temporary, plain = target.url("/moved"), target.url("/redirect/1"), target.url("/status/200")
    task_id = await create(client, {"urls": [moved, temporary, plain], "name": "Redirects to update"})
    await tab.open(f"/tasks/{task_id}")
    await expect(page.locator("h1 .badge")).to_have_text("ready")
    first = page.locator("tbody.result").first
    await expect(first.locator(".pill.permanent")).to_have_text("permanent 301")
    await expect(first.locator(".note.redirect .final")).to_have_text(plain)
    await expect(first.locator("td").first).to_have_text("0")  # numbered from 0, as the API and CLI
    await page.get_by_label("Redirects", exact=True).select_option("permanent")
    await expect(page.locator("tbody.result")).to_have_count(1)
    await shoot(page, "redirects-serve", tmp_path)
    await page.get_by_label("Redirects", exact=True).select_option("any")
    await expect(page.locator("tbody.result")).to_have_count(2)
    await expect(page.locator("tbody.result .pill.temporary")).to_have_text("temporary 302")


@SERVE
async def test_a_crawl_of_the_site_only(tab: Tab, pages: str, tmp_path: Path) -> None:
    page = tab.page
    await tab.open("/new")
    await page.get_by_label("Crawl a site").check()
    await page.get_by_label("Start URL").fill(f"{pages}/index.html")
    await page.get_by_label("Only the site's own pages and links").check()
    await page.get_by_role("button", name="Start checking").click()
    await page.wait_for_url("**/#/tasks/*")
    await expect(page.locator("h1 .badge")).to_have_text("ready", timeout=60_000)
    urls = await page.locator("tbody.result .link-url").all_text_contents()
    assert urls and all(url.startswith(pages) for url in urls), urls
    await page.get_by_label("Outcome", exact=True).select_option("broken")
    await expect(page.locator("tbody.result")).not_to_have_count(0)
    await page.locator("tbody.result button.expand").first.click()
    found = page.locator("tr.details .sources li a").first
    await expect(found).to_have_attribute("href", f"{pages}/index.html")
    await shoot(page, "crawl-site-serve", tmp_path)


DOCUMENT = (
    '<a href="https://example.invalid/abs">abs</a> <a href="guide/next.html">next</a>\n'
    '<a href="#top">top</a> <a href="/about">about</a>\n'
)


@SERVE
async def test_an_upload_without_a_base_says_why_at_upload_and_per_link(tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    document = tmp_path / "page.html"
    document.write_text(DOCUMENT)
    await tab.open("/new")
    warning = page.locator("#base-url-warning")
    await expect(warning).to_be_hidden()
    await page.get_by_label("…or upload a file").set_input_files(str(document))
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text("relative links")
    await page.get_by_label("Base URL (optional)").fill("https://example.invalid/docs/")
    await expect(warning).to_be_hidden()
    await page.get_by_label("Base URL (optional)").fill("")
    await page.get_by_role("button", name="Start checking").click()
    await page.wait_for_url("**/#/tasks/*")
    await expect(page.locator("h1 .badge")).to_have_text("ready", timeout=60_000)
    relative = page.locator("tbody.result", has_text="guide/next.html")
    await expect(relative.locator(".note.why")).to_contain_text("Relative link: it needs a base URL")


async def test_a_blocked_url_says_how_to_allow_it(
    browser: Browser, strict_site: Site, target: Target
) -> None:
    async with httpx.AsyncClient(base_url=strict_site.url) as client:
        task_id = await create(client, {"urls": [target.url("/status/200")]})
    context, tab = await new_tab(browser, strict_site.url)
    try:
        await tab.open(f"/tasks/{task_id}")
        row = tab.page.locator("tbody.result").first
        await expect(row.locator(".note.why")).to_contain_text("LINKPROBE_ALLOW_PRIVATE=true")
        await expect(row.locator(".note.why")).to_contain_text("--allow-private")
    finally:
        await context.close()


# How many lines a word is rendered on (its rectangles): 2 when it is broken inside.
WORD_LINES = """(el, word) => {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const at = node.data.indexOf(word);
        if (at >= 0) {
            const range = document.createRange();
            range.setStart(node, at);
            range.setEnd(node, at + word.length);
            return range.getClientRects().length;
        }
    }
    return 0;
}"""
# Elements inside these whose style breaks words anywhere (the cause of "TL S").
BREAK_ALL = """(roots) => roots.flatMap((root) => [root, ...root.querySelectorAll('*')])
    .filter((el) => getComputedStyle(el).wordBreak === 'break-all').map((el) => el.tagName)"""


@SERVE
async def test_a_phone_shows_whole_urls_and_compact_finished_rows(
    browser: Browser, site: Site, target: Target, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    long_url = target.url("/status/404?" + "&".join(f"parameter{i}=value{i}" for i in range(12)))
    task_id = await create(client, {"urls": [long_url, target.url("/status/200")], "name": "phone"})
    context, tab = await new_tab(browser, site.url, viewport={"width": 390, "height": 844})
    try:
        page = tab.page
        await tab.open(f"/tasks/{task_id}")
        await expect(page.locator("h1 .badge")).to_have_text("ready")
        shown = page.locator("tbody.result .link-url").first
        await expect(shown).to_have_text(long_url)  # all of it, no ellipsis, no hover needed
        box = await shown.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        assert await shown.evaluate("(el) => el.scrollWidth <= el.clientWidth")
        await page.locator("tbody.result button.expand").first.click()
        timings = page.locator("tr.details dd", has_text="TLS").first
        assert await timings.evaluate(WORD_LINES, "TLS") == 1  # the word on one line: not "TL S"
        broken = await page.locator("tr.details, tbody.result").evaluate_all(BREAK_ALL)
        assert broken == [], f"break-all (breaks inside words) on {broken}"
        await shoot(page, "task-phone-long-url-serve", tmp_path, full_page=True)
        await tab.open("/")
        row = page.locator(f"tr[data-task='{task_id}']")
        await expect(row.get_by_role("button", name="Delete phone")).to_be_visible()
        await expect(row.get_by_role("button", name="Cancel phone")).to_have_count(0)
        height = (await row.bounding_box() or {"height": 999})["height"]
        assert height < 300, f"a finished task's card is {height}px tall on a phone"
    finally:
        await context.close()


@SERVE
async def test_the_task_list_shows_tasks_created_elsewhere(tab: Tab, client: httpx.AsyncClient) -> None:
    await tab.open("/")
    await expect(tab.page.locator("h1")).to_have_text("Tasks")
    task_id = await create(client, {"urls": ["http://[::1"], "name": "made elsewhere"})
    await expect(tab.page.locator(f"tr[data-task='{task_id}']")).to_contain_text(
        "made elsewhere", timeout=15_000
    )


# Each bar of a chart as the browser paints it: its label -> [r, g, b] (a 1-pixel canvas resolves any
# CSS colour, oklch() included, to sRGB).
BAR_COLOURS = """(figure) => {
    const paint = document.createElement('canvas').getContext('2d', { willReadFrequently: true });
    return Object.fromEntries([...figure.querySelectorAll('text.chart-label')].map((label) => {
        paint.clearRect(0, 0, 1, 1);
        paint.fillStyle = getComputedStyle(label.nextElementSibling).fill;
        paint.fillRect(0, 0, 1, 1);
        return [label.textContent, [...paint.getImageData(0, 0, 1, 1).data.slice(0, 3)]];
    }));
}"""


def lab(rgb: list[int]) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB colour."""
    linear = [(c / 255 / 12.92) if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    r, g, b = linear
    xyz = (
        (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047,
        0.2126 * r + 0.7152 * g + 0.0722 * b,
        (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883,
    )
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in xyz]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def difference(one: list[int], other: list[int]) -> float:
    """CIE76 colour difference: 2.3 is just noticeable; above 10, two colours are told apart at a glance."""
    return float(sum((a - b) ** 2 for a, b in zip(lab(one), lab(other), strict=True)) ** 0.5)


async def error_colours(tab: Tab, task_id: str, kinds: int) -> dict[str, list[int]]:
    await tab.open(f"/tasks/{task_id}")
    await expect(tab.page.locator("h1 .badge")).to_have_text("ready", timeout=30_000)
    errors = tab.page.locator("figure.chart", has=tab.page.locator("figcaption", has_text="Errors"))
    await expect(errors.locator("rect")).to_have_count(kinds)
    colours: dict[str, list[int]] = await errors.evaluate(BAR_COLOURS)
    return colours


async def test_each_error_kind_has_its_own_colour_in_every_chart(
    tab: Tab, target: Target, client: httpx.AsyncClient
) -> None:
    refused = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    looping, unsupported, invalid = target.url("/loop/a"), "mailto:someone@example.com", "example.com:80/"
    options = {"max_redirects": 3, "retries": 0, "timeout": 1}
    many = await create(client, {"urls": [
        refused, looping, unsupported, invalid, target.url("/redirect/6"), target.url("/hang?colour=1"),
    ], "options": options})  # fmt: skip
    colours = await error_colours(tab, many, 6)
    assert set(colours) == {
        "connect_refused", "redirect_loop", "unsupported", "invalid_url", "too_many_redirects", "timeout",
    }  # fmt: skip
    close = [
        (one, other, round(difference(colours[one], colours[other]), 1))
        for i, one in enumerate(colours) for other in list(colours)[i + 1:]
        if difference(colours[one], colours[other]) < 10
    ]  # fmt: skip
    assert close == [], f"error kinds hard to tell apart in one chart: {close}"
    # Another task, its kinds in another order (by count): each keeps its colour.
    again_urls = [unsupported, f"{unsupported}.org", invalid, *(f"{refused}{n}" for n in range(3))]
    few = await create(client, {"urls": again_urls, "options": options})
    again = await error_colours(tab, few, 3)
    assert list(again) == ["connect_refused", "unsupported", "invalid_url"]
    assert again == {kind: colours[kind] for kind in again}
    assert tab.errors == []
