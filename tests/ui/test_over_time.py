"""Links over time in the UI (issue 21): a schedule made on the submit form and its runs; a run's
changes after links changed between two runs, filtered by change word, and before the run has
results; Run again (header values given anew); pause, resume and delete; a webhook's secret shown
once and its delivery in the log, and a webhook to loopback refused under the default policy."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from playwright.async_api import Browser, Locator, Page, expect

from linkprobe.webhooks import verify
from tests.conftest import Target, free_port, serving, wait_for
from tests.ui.conftest import Site, Tab, new_tab, shoot

SERVE = pytest.mark.parametrize("site", ["serve"], indirect=True)


@dataclass
class Changing:
    """A loopback site whose answers the test changes between runs: path -> status (301 and 302
    redirect to `moved_to`); the X-Token header each request carried."""

    port: int
    answers: dict[str, int]
    moved_to: str = "/d"
    tokens: list[str | None] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def changing() -> AsyncIterator[Changing]:
    state = Changing(free_port(), {"/a": 200, "/b": 404, "/c": 200, "/d": 200})

    async def answer(request: web.Request) -> web.Response:
        state.tokens.append(request.headers.get("X-Token"))
        status = state.answers.get(request.path, 404)
        if status in (301, 302):
            return web.Response(status=status, headers={"Location": state.moved_to})
        return web.Response(status=status, text=str(status))

    async with serving(answer, state.port, "127.0.0.1"):
        yield state


@dataclass
class Receiver:
    """A webhook receiver on loopback: every POST's headers and body."""

    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}/hook")

    async def receive(request: web.Request) -> web.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        state.received.append((headers, await request.read()))
        return web.Response(status=200)

    async with serving(receive, port, "127.0.0.1", method="POST"):
        yield state


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    answer = await client.post("/api/v1/tasks", json=body)
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["id"]
    return task_id


async def ended(client: httpx.AsyncClient, task_id: str) -> None:
    async def ready() -> bool:
        return bool((await client.get(f"/api/v1/tasks/{task_id}")).json()["status"] == "ready")

    await wait_for(ready, f"task {task_id} to end")


async def opened_task(page: Page, other_than: str) -> str:
    """The id of the task page the UI went to, once it is not `other_than`'s."""
    await page.wait_for_url(lambda url: "#/tasks/" in url and other_than not in url)
    return page.url.rsplit("/", 1)[1]


async def neutral(stat: Locator) -> None:
    """A change count drawn in its term's muted colour, not the change's red or green."""
    dd, dt = await stat.evaluate("s => ['dd', 'dt'].map((t) => getComputedStyle(s.querySelector(t)).color)")
    assert dd == dt, (dd, dt)


async def marked(page: Page, task_id: str, text: str, href: str) -> None:
    """The Tasks list marks the task's row as a run of something, linked to it."""
    marker = page.locator(f"tr[data-task='{task_id}'] th .origin a")
    await expect(marker).to_have_text(text)
    await expect(marker).to_have_attribute("href", href)


async def test_a_schedule_made_on_the_submit_form_runs_and_its_runs_appear(
    tab: Tab, site: Site, client: httpx.AsyncClient, target: Target, receiver: Receiver, tmp_path: Path
) -> None:
    page = tab.page
    urls = [target.url(f"/status/{code}?s={site.name}") for code in (200, 404, 500)]
    await tab.open("/schedules")
    await page.get_by_role("link", name="New schedule").click()
    await expect(page.get_by_label("Run on a schedule")).to_be_checked()  # the list's link asks for one
    await page.locator("#task-name").fill(f"nightly {site.name}")
    await page.get_by_label("Paste URLs").fill(f"# the docs' links\n{urls[0]}\n\n{urls[1]}\n {urls[2]}\n")
    await page.get_by_label("Every (interval)").fill("2s")
    await page.get_by_label("Runs to keep").fill("3")
    await page.get_by_label("Notify URL").fill(receiver.url)
    await page.get_by_role("button", name="Create schedule").click()
    await page.wait_for_url("**/#/schedules/*")
    schedule_id = page.url.rsplit("/", 1)[1]
    try:
        made = (await client.get(f"/api/v1/schedules/{schedule_id}")).json()
        assert made["task"]["urls"] == urls and made["period"]["every"] == "2s" and made["keep"] == 3
        assert made["webhook"] == {"url": receiver.url, "on": "end"}
        await expect(page.locator("#webhook-secret")).to_have_text(re.compile(r"^whsec_[A-Za-z0-9+/=]{40,}$"))
        runs = page.locator("table.runs tbody tr")
        await expect(runs.nth(1)).to_be_visible(timeout=30_000)  # a second run: newest first
        await expect(runs.nth(1).locator(".badge")).to_have_text("ready")
        await expect(runs.nth(1).locator("td").nth(3)).to_have_text("2")  # broken: the 404 and the 500
        # The run after the first is compared with it: nothing changed, each count 0.
        await expect(runs.first.locator(".change-broke dd")).to_have_text("0", timeout=30_000)
        await neutral(runs.first.locator(".change-broke"))  # a zero is not red
        await expect(page.locator(".over-runs .spark-max")).to_have_text("max 2")  # the scale, visible
        await expect(page.locator(".over-runs svg.spark rect").nth(1)).to_have_attribute("data-value", "2")
        await expect(page.locator("tr.delivery[data-delivered='true']").first).to_be_visible(timeout=30_000)
        await shoot(page, f"schedule-{site.name}", tmp_path, full_page=True)

        await page.get_by_role("navigation", name="Main").get_by_role("link", name="Schedules").click()
        row = page.locator(f"tr[data-schedule='{schedule_id}']")
        await expect(row.locator("th")).to_have_text(f"nightly {site.name}")
        await expect(row.locator("td").nth(1)).to_have_text("every 2s")
        await expect(row.locator(".badge").first).to_have_text("active")
        await expect(row.locator("svg.spark rect").nth(1)).to_have_attribute("data-value", "2")
        chart = await row.locator("svg.spark").get_attribute("aria-label") or ""
        assert chart.startswith(f"Broken links of nightly {site.name} over its runs"), chart
        await shoot(page, f"schedules-{site.name}", tmp_path)
        await expect(row.locator("td").nth(2)).to_contain_text("2 broken")  # the last run
        run_id = (await client.get(f"/api/v1/schedules/{schedule_id}")).json()["runs"][0]["task_id"]
        await page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
        await marked(page, run_id, "schedule run", f"#/schedules/{schedule_id}")  # a run told apart
        await page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than it
        for route in ("/schedules", f"/schedules/{schedule_id}"):
            await tab.open(route)
            await expect(page.locator("svg.spark").first).to_be_visible()
            assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth"), route
        await shoot(page, f"schedule-phone-{site.name}", tmp_path, full_page=True)
        assert tab.errors == []
    finally:
        await client.delete(f"/api/v1/schedules/{schedule_id}")


@SERVE
async def test_a_reruns_changes_counted_listed_and_filtered_by_change(
    tab: Tab, client: httpx.AsyncClient, changing: Changing, tmp_path: Path
) -> None:
    page = tab.page
    first = await create(client, {"urls": [changing.url(p) for p in changing.answers], "name": "site links"})
    await ended(client, first)
    changing.answers.update({"/a": 404, "/b": 200, "/c": 301})  # broke, fixed, now redirects to /d

    await tab.open(f"/tasks/{first}")
    await expect(page.locator("h1 .badge")).to_have_text("ready")
    await expect(page.locator("#changes-card")).to_have_count(0)  # a first run: nothing to compare with
    await page.get_by_role("button", name="Run again: site links").click()
    second = await opened_task(page, first)
    card = page.locator("#changes-card")
    await expect(card).to_be_visible()
    await expect(card.locator(".change-broke dd")).to_have_text("1", timeout=30_000)
    await expect(card.locator(".change-fixed dd")).to_have_text("1")
    await expect(card.locator(".change-changed dd")).to_have_text("1")
    await expect(card.locator(".change-new dd")).to_have_text("0")
    await expect(card.locator(".change-gone dd")).to_have_text("0")
    await shoot(page, "rerun-serve", tmp_path)
    await tab.open("/")
    await marked(page, second, "re-run", f"#/tasks/{first}")
    await expect(page.locator(f"tr[data-task='{first}'] .origin")).to_have_count(0)  # a first run: no mark
    await page.go_back()
    card = page.locator("#changes-card")

    await card.get_by_role("link", name="1 broke: show them").click()
    await page.wait_for_url(f"**/#/tasks/{second}/changes?change=broke")
    rows = page.locator("tr.change")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator(".link-url")).to_have_text(changing.url("/a"))
    await expect(rows.first.locator("td").nth(2)).to_contain_text("ok 200")
    await expect(rows.first.locator("td").nth(3)).to_contain_text("broken 404")
    await expect(page.get_by_label("Change", exact=True)).to_have_value("broke")

    await page.get_by_label("Change", exact=True).select_option("changed")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator(".link-url")).to_have_text(changing.url("/c"))
    await expect(rows.first.locator("td").nth(3)).to_contain_text(f"→ {changing.url('/d')}")
    assert page.url.endswith("changes?change=changed")  # the address says the filter
    await page.get_by_label("Change", exact=True).select_option("gone")
    await expect(rows).to_have_count(0)
    await expect(page.locator(".results .empty")).to_have_text("Nothing gone since the previous run.")
    await page.get_by_label("Change", exact=True).select_option("")
    await expect(rows).to_have_count(3)
    await shoot(page, "changes-serve", tmp_path)

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="CSV").click()
    saved = tmp_path / "changes.csv"
    await (await download_info.value).save_as(saved)
    listed = {row["url"]: row["change"] for row in csv.DictReader(io.StringIO(saved.read_text()))}
    assert listed == {changing.url("/a"): "broke", changing.url("/b"): "fixed", changing.url("/c"): "changed"}
    assert tab.errors == []


@SERVE
async def test_run_again_asks_for_the_header_values_the_first_run_dropped(
    tab: Tab, client: httpx.AsyncClient, changing: Changing
) -> None:
    page = tab.page
    body = {"urls": [changing.url("/a")], "name": "with token", "options": {"headers": {"X-Token": "first"}}}
    first = await create(client, body)
    await ended(client, first)
    await tab.open(f"/tasks/{first}")
    await page.get_by_role("button", name="Run again: with token").click()
    dialog = page.get_by_role("dialog", name="Header values needed")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("alert")).to_contain_text("missing: X-Token")  # the API's reason
    await dialog.get_by_label("X-Token").fill("second")
    await dialog.get_by_role("button", name="Run again with these").click()
    second = await opened_task(page, first)
    await expect(page.locator("h1 .badge")).to_have_text("ready")
    record = (await client.get(f"/api/v1/tasks/{second}")).json()
    assert record["rerun_of"] == first, record
    assert changing.tokens[-1] == "second", changing.tokens  # the new value went out, not the first's
    assert len(tab.errors) == 1 and "status of 422" in tab.errors[0], tab.errors  # the refusal asked about


@SERVE
async def test_pause_resume_and_delete_a_schedule(
    tab: Tab, client: httpx.AsyncClient, target: Target
) -> None:
    page = tab.page
    body = {
        "task": {"urls": [target.url("/status/200")]},
        "period": {"cron": "0 3 * * *"},
        "name": "at three",
    }
    answer = await client.post("/api/v1/schedules", json=body)
    assert answer.status_code == 201, answer.text
    schedule_id = answer.json()["id"]
    path = f"/api/v1/schedules/{schedule_id}"

    await tab.open(f"/schedules/{schedule_id}")
    await expect(page.locator("h1 .badge")).to_have_text("active")
    await expect(page.locator("table.runs")).to_have_count(0)  # no run yet: the page still works
    await expect(page.locator(".card .empty")).to_contain_text("No runs yet: the first is due")
    await page.get_by_role("button", name="Pause at three").click()
    await expect(page.locator("h1 .badge")).to_have_text("paused")
    await expect(page.locator(".next-run")).to_have_text("paused")
    assert (await client.get(path)).json()["paused"] is True

    await tab.open("/schedules")
    row = page.locator(f"tr[data-schedule='{schedule_id}']")
    await expect(row.locator("td").nth(1)).to_have_text("cron 0 3 * * * (UTC)")
    await row.get_by_role("button", name="Resume at three").click()
    await expect(row.locator(".badge")).to_have_text("active")
    assert (await client.get(path)).json()["paused"] is False
    await expect(page.get_by_role("status").filter(has_text="Schedule updated.")).to_have_count(1)

    await row.get_by_role("button", name="Delete at three").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete schedule").click()
    await expect(row).to_have_count(0)
    assert (await client.get(path)).status_code == 404
    await tab.open(f"/schedules/{schedule_id}")
    await expect(page.get_by_role("heading", name="This schedule no longer exists")).to_be_visible()
    await tab.open("/tasks/no-such-task/changes")
    await expect(page.get_by_role("heading", name="This task no longer exists")).to_be_visible()
    await expect(page.locator(".empty p")).to_contain_text("Task no-such-task was deleted, or never existed")
    assert all("status of 404" in error for error in tab.errors), tab.errors  # the deleted one's GET


@SERVE
async def test_a_webhook_set_on_the_submit_form_shows_its_secret_once_and_its_delivery(
    tab: Tab, target: Target, receiver: Receiver
) -> None:
    page = tab.page
    await tab.open("/new")
    await page.get_by_label("Paste URLs").fill(target.url("/status/200?hook=1"))
    await page.get_by_label("Notify URL").fill(receiver.url)
    await page.get_by_role("button", name="Start checking").click()
    task_id = await opened_task(page, "/new")
    secret = page.locator("#webhook-secret")
    await expect(secret).to_have_text(re.compile(r"^whsec_"))
    shown = await secret.text_content() or ""
    delivered = page.locator("tr.delivery[data-delivered='true']")
    await expect(delivered).to_have_count(1, timeout=30_000)
    await expect(delivered.locator("td").nth(2)).to_contain_text("HTTP 200")
    await expect(delivered.get_by_role("link")).to_have_attribute("href", f"#/tasks/{task_id}")
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    verify(shown, headers, body)  # the secret shown is the one the delivery is signed with

    await page.reload()
    await expect(page.locator("tr.delivery")).to_have_count(1)
    await expect(page.locator("#webhook-secret")).to_have_count(0)  # shown once
    assert tab.errors == []


@SERVE
async def test_a_reruns_pages_work_before_it_has_results(
    tab: Tab, client: httpx.AsyncClient, target: Target
) -> None:
    page = tab.page
    body = {"urls": [target.url("/hang?early=1")], "name": "early", "options": {"timeout": 60, "retries": 0}}
    first = await create(client, body)
    assert (await client.post(f"/api/v1/tasks/{first}/cancel")).status_code == 200
    answer = await client.post(f"/api/v1/tasks/{first}/rerun")
    assert answer.status_code == 202, answer.text
    second = answer.json()["id"]
    try:
        await tab.open(f"/tasks/{second}")
        card = page.locator("#changes-card")
        await expect(card).to_contain_text("Counted when this run ends.")
        await card.get_by_role("link", name="List the changes").click()
        await expect(page.get_by_role("heading", name="Changes since the previous run")).to_be_visible()
        await expect(page.locator(".warning")).to_contain_text("This run is still going")
        await expect(page.locator(".results .empty")).to_be_visible()  # not checked yet: not gone
        await expect(page.locator("tr.change")).to_have_count(0)
        assert tab.errors == []
    finally:
        await client.post(f"/api/v1/tasks/{second}/cancel")


async def test_a_webhook_to_a_private_address_is_refused_under_the_default_policy(
    browser: Browser, strict_site: Site, receiver: Receiver
) -> None:
    context, tab = await new_tab(browser, strict_site.url)
    page = tab.page
    try:
        await tab.open("/")  # a new service: no tasks, and no pager for its one empty page
        await expect(page.get_by_text("No tasks yet.")).to_be_visible()
        await expect(page.get_by_role("navigation", name="Task pages")).to_be_hidden()
        await tab.open("/new?schedule=1")
        await page.get_by_label("Paste URLs").fill("https://example.invalid/")
        await page.get_by_label("Every (interval)").fill("1d")
        await page.get_by_label("Notify URL").fill(receiver.url)
        await page.get_by_role("button", name="Create schedule").click()
        error = page.locator("#webhook-url-error")  # said under its field, no schedule made
        await expect(error).to_contain_text("webhook.url is refused")
        await expect(page.get_by_label("Notify URL")).to_be_focused()
        async with httpx.AsyncClient(base_url=strict_site.url) as client:
            assert (await client.get("/api/v1/schedules")).json()["items"] == []

        await page.get_by_label("Run on a schedule").uncheck()
        await page.get_by_role("button", name="Start checking").click()  # the task runs anyway
        await opened_task(page, "/new")
        refusal = page.locator(".webhook [role=alert]")
        await expect(refusal).to_contain_text("The webhook was not set: webhook.url is refused")
        assert receiver.received == []
    finally:
        await context.close()


@SERVE
async def test_pause_and_resume_by_keyboard_keep_the_focus_on_the_schedules_button(
    tab: Tab, client: httpx.AsyncClient, target: Target
) -> None:
    page = tab.page
    urls = [target.url(f"/status/200?n={n}") for n in range(4)]
    task = {"urls": urls, "options": {"timeout": 5, "headers": {"X-Token": "hush"}}}
    body = {"task": task, "period": {"cron": "0 4 * * *"}, "name": "at four"}
    answer = await client.post("/api/v1/schedules", json=body)
    assert answer.status_code == 201, answer.text
    schedule_id = answer.json()["id"]
    try:
        await tab.open(f"/schedules/{schedule_id}")
        checks = page.get_by_role("region", name="What each run checks")  # what it checks, said
        await expect(checks).to_contain_text("4 URLs, the first 3:")
        await expect(checks.locator("li")).to_have_text(urls[:3])
        await expect(checks).to_contain_text("and 1 more.")
        await expect(checks.locator(".options-line")).to_have_text("Options: headers X-Token · timeout 5")
        assert "hush" not in (await checks.text_content() or "")  # a header's value is never shown
        await page.get_by_role("button", name="Pause at four").focus()
        await page.keyboard.press("Enter")
        await expect(page.locator("h1 .badge")).to_have_text("paused")  # the head redrawn
        await expect(page.get_by_role("button", name="Resume at four")).to_be_focused()

        await tab.open("/schedules")
        row = page.locator(f"tr[data-schedule='{schedule_id}']")
        await row.get_by_role("button", name="Resume at four").focus()
        await page.keyboard.press("Enter")
        await expect(row.locator(".badge")).to_have_text("active")  # the table redrawn
        await expect(row.get_by_role("button", name="Pause at four")).to_be_focused()
        # Changed elsewhere: the list's refresh redraws the table, the focus stays on the row's button.
        assert (await client.post(f"/api/v1/schedules/{schedule_id}/pause")).status_code == 200
        await expect(row.locator(".badge")).to_have_text("paused")
        await expect(row.get_by_role("button", name="Resume at four")).to_be_focused()
        assert tab.errors == []
    finally:
        await client.delete(f"/api/v1/schedules/{schedule_id}")


@SERVE
async def test_a_schedules_refused_fields_are_said_in_plain_words_under_each(
    tab: Tab, target: Target
) -> None:
    page = tab.page
    await tab.open("/new?schedule=1")
    keep = page.get_by_label("Runs to keep")
    await expect(keep).to_have_attribute("max", "1000")  # the API's bounds, from its schema
    await expect(keep).to_have_attribute("min", "1")
    await page.get_by_label("Paste URLs").fill(target.url("/status/200"))
    await page.get_by_label("Every (interval)").fill("5x")
    await keep.fill("0")
    await page.get_by_role("button", name="Create schedule").click()
    every = page.locator("#schedule-every-error")
    await expect(every).to_contain_text("'5x' is not an interval")
    said = await every.text_content() or ""
    assert "Value error" not in said and "period.every" not in said, said
    await expect(page.locator("#schedule-keep-error")).to_have_text("Must be at least 1.")
    await expect(keep).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Every (interval)")).to_be_focused()
    await expect(page.locator("#notice .banner")).to_have_count(0)
    assert all("status of 422" in error for error in tab.errors), tab.errors
