"""One frontier for every crawler: `linkprobe crawl` and workers over each store find the same
pages and links on the same local site (the `site` fixture), with the same counts of where."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from linkprobe.engine import Engine, EngineConfig, ProbeOptions
from linkprobe.frontier import ChunkKind, CrawlSpec, Found, plan_discovery
from linkprobe.store import NewTask, ResultFilter, Store
from linkprobe.worker import Worker
from tests.cli.test_crawl import crawl as cli_crawl
from tests.conftest import Site, wait_for

PAGES, LINKS = ChunkKind.PAGES, ChunkKind.LINKS

# Every URL a crawl of /index.html with fragments checked finds: its verdict (ok, the status of a
# broken page, or the error kind) and how many links to it the site's pages hold.
EXPECTED = {
    "/index.html": ("ok", 4),  # linked by itself, a, b and deep/3
    "/a.html": ("ok", 2),  # by index, and as a.html#top
    "/b.html": ("ok", 2),  # as b.html#intro and b.html#nope
    "/b.html#intro": ("ok", 1),
    "/b.html#nope": ("missing_fragment", 1),
    "/a.html#top": ("missing_fragment", 1),
    "/missing.html": (404, 2),
    "/private/secret.html": ("unsupported", 1),  # robots.txt disallows it
    "/img.png": ("ok", 1),
    "/deep/1.html": ("ok", 1),
    "/deep/2.html": ("ok", 1),
    "/deep/3.html": ("ok", 1),
    "ext": ("ok", 1),  # the external site's page: checked, never followed
    "mailto:team@site.example": ("unsupported", 1),
}


def found_by(site: Site, results: list[dict[str, Any]]) -> dict[str, tuple[object, int]]:
    """Results (as the API and `-f json` write them) by site path, as EXPECTED says them."""
    external = site.url("/ext.html", "127.0.0.2")
    return {
        ("ext" if r["url"] == external else r["url"].removeprefix(site.url(""))): (
            "ok" if r["ok"] else (r["error"] or {}).get("kind") or r["status_code"],
            (r.get("sources") or {"total": 0})["total"],
        )
        for r in results
    }


async def test_linkprobe_crawl_finds_the_expected_pages_and_links(site: Site) -> None:
    run = await cli_crawl("--format", "json", "--check-fragments", site.url("/index.html"))
    assert found_by(site, json.loads(run.out)) == EXPECTED, run.err


async def test_workers_over_each_store_find_the_same(store: Store, site: Site) -> None:
    spec = CrawlSpec(site.url("/index.html"), check_fragments=True)
    task, _ = await store.create_task(NewTask(crawl=spec, options=ProbeOptions(retries=0)), iter([]), 3)
    async with Engine(EngineConfig(allow_private=True)) as engine:
        worker = Worker(store, engine, slots=4)
        running = asyncio.create_task(worker.run())
        try:
            await wait_for(lambda: _ready(store, task.id), "the crawl to end")
        finally:
            await worker.shutdown(running)
    results, _ = await store.results(task.id, ResultFilter(), None, 1000)
    assert found_by(site, results) == EXPECTED
    record = await store.get_task(task.id)
    assert record is not None and record.pages == 8  # six pages, the missing one and the image


async def _ready(store: Store, task_id: str) -> bool:
    record = await store.get_task(task_id)
    return record is not None and record.status == "ready"


def test_a_plan_gives_new_urls_the_next_indexes_by_kind_within_the_limits() -> None:
    """The plan every crawler follows: seen URLs only gain places; new ones get the next indexes,
    pages first, a page past max_pages only checked, nothing past max_urls."""
    spec = CrawlSpec("http://s/", max_pages=2, max_urls=6)
    found = [Found("http://s/a", 1), Found("http://s/p", 2, PAGES), Found("http://s/q", 3, PAGES),
             Found("http://s/", 4, PAGES), Found("http://s/a", 5), Found("http://s/x", 6)]  # fmt: skip
    plan = plan_discovery(found, {"http://s/": 0}, total=3, scheduled=1, spec=spec, chunk_size=1)
    assert plan.new == ["http://s/p", "http://s/a", "http://s/q"]  # q: the page budget is spent; x: max_urls
    assert plan.chunks == [(PAGES, 3, 4), (LINKS, 4, 5), (LINKS, 5, 6)]
    assert {idx: [linked.lines for linked in links] for idx, links in plan.places.items()} == {
        4: [[1], [5]],
        3: [[2]],
        5: [[3]],
        0: [[4]],
    }
    assert plan.scheduled == 2
