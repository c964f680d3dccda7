"""Re-runs and their changes (POST .../rerun, GET .../changes) and the result cache (max_age) on
both stores (the shared service), against loopback targets whose answers the tests change between
runs (links break, heal and start redirecting)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiohttp import web

from tests.conftest import Target, free_port, serving, wait_for


async def ended(api: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = {}

    async def over() -> bool:
        nonlocal task
        task = (await api.get(f"/api/v1/tasks/{task_id}")).json()
        return task["status"] in ("ready", "cancelled")

    await wait_for(over, f"task {task_id} to end")
    return task


async def counted(api: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = {}

    async def has_changes() -> bool:
        nonlocal task
        task = (await api.get(f"/api/v1/tasks/{task_id}")).json()
        return task["changes"] is not None

    await wait_for(has_changes, f"the changes of {task_id} to be counted")
    return task


def links(target: Target) -> dict[str, str]:
    """Five links of a fresh name each (the target is shared by the session)."""
    run = uuid.uuid4().hex[:8]
    return {name: target.url(f"/answer/{run}-{name}") for name in ("ok", "breaks", "heals", "moves", "same")}


async def test_a_rerun_reports_what_broke_healed_and_moved(api: httpx.AsyncClient, target: Target) -> None:
    url = links(target)
    target.answers[url["heals"].rsplit("/", 1)[1]] = 404
    response = await api.post("/api/v1/tasks", json={"urls": list(url.values()), "name": "nightly"})
    first = await ended(api, response.json()["id"])
    target.answers[url["breaks"].rsplit("/", 1)[1]] = 500
    target.answers[url["heals"].rsplit("/", 1)[1]] = 200
    target.answers[url["moves"].rsplit("/", 1)[1]] = "/status/200"

    response = await api.post(f"/api/v1/tasks/{first['id']}/rerun")
    assert response.status_code == 202, response.text
    again = response.json()
    assert response.headers["location"] == f"/api/v1/tasks/{again['id']}"
    assert (again["rerun_of"], again["name"], again["progress"]["total"]) == (first["id"], "nightly", 5)
    await ended(api, again["id"])

    page = (await api.get(f"/api/v1/tasks/{again['id']}/changes")).json()
    assert page["since"] == first["id"]
    assert [(i["url"], i["change"]) for i in page["items"]] == sorted(
        [(url["breaks"], "broke"), (url["heals"], "fixed"), (url["moves"], "changed")]
    )
    moved = next(i for i in page["items"] if i["change"] == "changed")
    assert moved["previous"]["final_url"] == url["moves"]
    assert moved["current"]["final_url"] == target.url("/status/200")
    broke = (await api.get(f"/api/v1/tasks/{again['id']}/changes?change=broke")).json()
    assert [i["url"] for i in broke["items"]] == [url["breaks"]]
    task = await counted(api, again["id"])
    counts = {"since": first["id"], "broke": 1, "fixed": 1, "changed": 1, "new": 0, "gone": 0}
    assert task["changes"] == counts
    assert (await api.get(f"/api/v1/tasks/{first['id']}")).json()["changes"] is None  # re-runs nothing


async def test_changes_paged_and_streamed_new_and_gone_since_any_task(
    api: httpx.AsyncClient, target: Target
) -> None:
    url = links(target)
    before = list(url.values())[:4]
    after = list(url.values())[1:]  # the first URL is gone, the last one new
    target.answers[url["breaks"].rsplit("/", 1)[1]] = 200
    first = (await api.post("/api/v1/tasks", json={"urls": before})).json()
    await ended(api, first["id"])
    target.answers[url["breaks"].rsplit("/", 1)[1]] = 404
    second = (await api.post("/api/v1/tasks", json={"urls": after})).json()
    await ended(api, second["id"])
    expected = sorted([(url["ok"], "gone"), (url["same"], "new"), (url["breaks"], "broke")])

    seen: list[tuple[str, str]] = []
    cursor: str | None = None
    while True:
        query = {"since": first["id"], "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(f"/api/v1/tasks/{second['id']}/changes", params=query)).json()
        seen += [(i["url"], i["change"]) for i in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == expected
    since = f"/api/v1/tasks/{second['id']}/changes?since={first['id']}"
    lines = (await api.get(f"{since}&format=ndjson")).text.splitlines()
    assert [(item["url"], item["change"]) for item in map(json.loads, lines)] == expected
    gone = next(json.loads(line) for line in lines if json.loads(line)["change"] == "gone")
    assert gone["current"] is None and gone["previous"]["outcome"] == "ok"
    rows = list(csv.DictReader(io.StringIO((await api.get(f"{since}&format=csv")).text)))
    assert [(row["url"], row["change"]) for row in rows] == expected
    assert rows[0].keys() >= {"previous_status_code", "current_error_kind"}


async def test_changes_need_a_previous_run(api: httpx.AsyncClient, target: Target) -> None:
    task = (await api.post("/api/v1/tasks", json={"urls": [target.url("/status/200")]})).json()
    response = await api.get(f"/api/v1/tasks/{task['id']}/changes")
    assert response.status_code == 422 and "?since=" in response.json()["detail"]
    response = await api.get(f"/api/v1/tasks/{task['id']}/changes?since=nope")
    assert response.status_code == 404 and "nope" in response.json()["detail"]
    assert (await api.post("/api/v1/tasks/nope/rerun")).status_code == 404


async def test_a_running_reruns_unchecked_urls_are_not_gone(api: httpx.AsyncClient, target: Target) -> None:
    hang = target.url(f"/hang?rerun={uuid.uuid4().hex[:8]}")
    body = {"urls": [target.url("/status/200"), hang], "options": {"timeout": 60, "retries": 0}}
    first = (await api.post("/api/v1/tasks", json=body)).json()
    await wait_for(lambda: _probed(api, first["id"], 1), "the first run's quick URL checked")
    await api.post(f"/api/v1/tasks/{first['id']}/cancel")
    await ended(api, first["id"])
    second = (await api.post(f"/api/v1/tasks/{first['id']}/rerun")).json()
    try:
        await wait_for(lambda: _probed(api, second["id"], 1), "the re-run's quick URL checked")
        url = f"/api/v1/tasks/{second['id']}/changes"
        page = (await api.get(url)).json()
        assert page["running"] is True and page["items"] == []  # the hanging URL is not gone
        assert (await api.get(url, params={"change": "gone", "format": "ndjson"})).text == ""
    finally:
        await api.post(f"/api/v1/tasks/{second['id']}/cancel")
    await ended(api, second["id"])
    assert (await api.get(f"/api/v1/tasks/{second['id']}/changes")).json()["running"] is False


async def _probed(api: httpx.AsyncClient, task_id: str, count: int) -> bool:
    task = (await api.get(f"/api/v1/tasks/{task_id}")).json()
    return bool(task["progress"]["done"] >= count)


async def test_a_rerun_needs_the_header_values_again(api: httpx.AsyncClient, target: Target) -> None:
    token = uuid.uuid4().hex
    options = {"headers": {"X-Token": "first", "X-Other": "o"}}
    task = (
        await api.post("/api/v1/tasks", json={"urls": [target.url(f"/headers/{token}")], "options": options})
    ).json()
    await ended(api, task["id"])
    refused = await api.post(f"/api/v1/tasks/{task['id']}/rerun")
    assert refused.status_code == 422
    assert "X-Other, X-Token" in refused.json()["detail"]
    partly = await api.post(f"/api/v1/tasks/{task['id']}/rerun", json={"headers": {"X-Token": "x"}})
    assert partly.status_code == 422 and "missing: X-Other" in partly.json()["detail"]
    given = {"headers": {"X-Token": "second", "X-Other": "o"}}
    again = await api.post(f"/api/v1/tasks/{task['id']}/rerun", json=given)
    assert again.status_code == 202, again.text
    assert again.json()["options"]["headers"] == {"X-Token": "[redacted]", "X-Other": "[redacted]"}
    await ended(api, again.json()["id"])
    assert target.headers[token]["X-Token"] == "second"


async def test_a_rerun_is_idempotent_under_its_key(api: httpx.AsyncClient, target: Target) -> None:
    task = (await api.post("/api/v1/tasks", json={"urls": [target.url("/status/200")]})).json()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    one = await api.post(f"/api/v1/tasks/{task['id']}/rerun", headers=key)
    two = await api.post(f"/api/v1/tasks/{task['id']}/rerun", headers=key)
    assert one.status_code == two.status_code == 202 and one.json()["id"] == two.json()["id"]
    other = (await api.post("/api/v1/tasks", json={"urls": [target.url("/status/201")]})).json()
    conflict = await api.post(f"/api/v1/tasks/{other['id']}/rerun", headers=key)
    assert conflict.status_code == 409


async def test_a_crawl_rerun_finds_pages_that_came_and_went(api: httpx.AsyncClient) -> None:
    port = free_port()
    pages = {
        "/index.html": '<a href="/a.html">a</a> <a href="/b.html">b</a>',
        "/a.html": "<p>a</p>",
        "/b.html": "<p>b</p>",
    }

    async def serve(request: web.Request) -> web.Response:
        body = pages.get(request.path)
        if body is None:
            return web.Response(status=404, text="not found")
        return web.Response(text=body, content_type="text/html")

    async with serving(serve, port, host="127.0.0.1"):
        start = f"http://127.0.0.1:{port}/index.html"
        first = (await api.post("/api/v1/tasks", json={"crawl": {"start": start}})).json()
        await ended(api, first["id"])
        pages["/index.html"] = '<a href="/a.html">a</a> <a href="/c.html">c</a>'
        del pages["/a.html"]
        again = (await api.post(f"/api/v1/tasks/{first['id']}/rerun")).json()
        assert again["crawl"]["start"] == start and again["rerun_of"] == first["id"]
        await ended(api, again["id"])
    page = (await api.get(f"/api/v1/tasks/{again['id']}/changes")).json()
    base = f"http://127.0.0.1:{port}"
    assert [(i["url"], i["change"]) for i in page["items"]] == [
        (f"{base}/a.html", "broke"), (f"{base}/b.html", "gone"), (f"{base}/c.html", "new"),
    ]  # fmt: skip
    assert (await counted(api, again["id"]))["changes"]["new"] == 1


async def results_of(api: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    await ended(api, task_id)
    items: list[dict[str, Any]] = (await api.get(f"/api/v1/tasks/{task_id}/results")).json()["items"]
    return items


async def test_results_reused_within_max_age_and_probed_again_after(
    api: httpx.AsyncClient, target: Target
) -> None:
    token = uuid.uuid4().hex
    urls = [target.url(f"/count/{token}-a"), target.url(f"/count/{token}-b")]
    hits = [f"/count/{token}-a", f"/count/{token}-b"]
    options = {"max_age": 600, "timeout": 7}
    first = (await api.post("/api/v1/tasks", json={"urls": urls, "options": options})).json()
    probed = await results_of(api, first["id"])
    assert [target.hits[path] for path in hits] == [1, 1]
    assert ["cached_from" in r for r in probed] == [False, False]  # said only by a reused result

    again = (await api.post("/api/v1/tasks", json={"urls": urls[::-1], "options": options})).json()
    reused = await results_of(api, again["id"])
    assert [target.hits[path] for path in hits] == [1, 1]  # not probed again
    assert [(r["url"], r["cached_from"]) for r in reused] == [(urls[1], first["id"]), (urls[0], first["id"])]
    assert [r["checked_at"] for r in reused] == [r["checked_at"] for r in probed[::-1]]
    assert again["progress"]["total"] == 2 and (await ended(api, again["id"]))["progress"]["ok"] == 2
    table = (await api.get(f"/api/v1/tasks/{again['id']}/results", params={"format": "csv"})).text
    assert [(r["url"], r["cached_from"]) for r in csv.DictReader(io.StringIO(table))] == [
        (urls[1], first["id"]), (urls[0], first["id"]),
    ]  # fmt: skip
    table = (await api.get(f"/api/v1/tasks/{first['id']}/results", params={"format": "csv"})).text
    assert [r["cached_from"] for r in csv.DictReader(io.StringIO(table))] == ["", ""]  # probed

    other = {"max_age": 600, "timeout": 8}  # other effective options: their own probes
    third = (await api.post("/api/v1/tasks", json={"urls": urls[:1], "options": other})).json()
    assert "cached_from" not in (await results_of(api, third["id"]))[0]
    assert target.hits[hits[0]] == 2

    checked = datetime.fromisoformat(probed[1]["checked_at"])
    await wait_for(lambda: datetime.now(UTC) - checked > timedelta(seconds=1.5), "the result to age 1.5 s")
    late = (
        await api.post("/api/v1/tasks", json={"urls": urls[1:], "options": {**options, "max_age": 1}})
    ).json()
    assert "cached_from" not in (await results_of(api, late["id"]))[0]  # too old: probed again
    assert target.hits[hits[1]] == 2


async def test_a_rerun_of_documents_keeps_where_each_link_was_found(
    api: httpx.AsyncClient, target: Target
) -> None:
    page = f'<a href="{target.url("/status/200")}">a</a>\n<p>\n<a href="{target.url("/status/404")}">b</a>\n'
    files = [("file", ("docs.html", page.encode(), "text/html"))]
    first = (await api.post("/api/v1/tasks", files=files)).json()
    await ended(api, first["id"])
    again = (await api.post(f"/api/v1/tasks/{first['id']}/rerun")).json()
    before, after = await results_of(api, first["id"]), await results_of(api, again["id"])
    assert [(r["url"], r["sources"]) for r in after] == [(r["url"], r["sources"]) for r in before]
    assert after[1]["sources"]["places"] == [{"document": "docs.html", "line": 3}]
    plain = (await api.post("/api/v1/tasks", json={"urls": [target.url("/status/200")]})).json()
    await ended(api, plain["id"])
    rerun = (await api.post(f"/api/v1/tasks/{plain['id']}/rerun")).json()
    assert "sources" not in (await results_of(api, rerun["id"]))[0]
