"""Crawl tasks and sources in the store contract, on both stores: the crawl's frontier and seen-set
live in the store (Store.discover), so any number of workers share one crawl and exactly one result
per unique URL holds while work is added on the fly."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

import orjson
import redis.asyncio as aioredis

from linkprobe.extract.document import MAX_PLACES
from linkprobe.store import Chunk, ChunkKind, CrawlSpec, Found, NewTask, ResultFilter, Store, TaskStatus
from linkprobe.store.accounts import KeyStore, RedisKeys, SQLiteKeys, Window
from linkprobe.store.base import Retention
from linkprobe.store.redis import RedisStore
from linkprobe.store.sqlite import SQLiteStore
from tests.conftest import RedisServer
from tests.store.test_contract import URLS, claim_within, drain, results_of

START = "http://site.example/"


PAGES, LINKS, FRAGMENTS = ChunkKind.PAGES, ChunkKind.LINKS, ChunkKind.FRAGMENTS


def page(name: str) -> str:
    return f"http://site.example/{name}"


async def crawl(store: Store, chunk_size: int = 10, **spec: Any) -> tuple[str, Chunk]:
    """A new crawl task and its first chunk (the start page), claimed."""
    task, _ = await store.create_task(NewTask(crawl=CrawlSpec(START, **spec)), iter([]), chunk_size)
    chunk = await store.claim_chunk("w")
    assert chunk is not None and chunk.task_id == task.id
    return task.id, chunk


async def claim_all(store: Store) -> list[Chunk]:
    """Every chunk on the queue (claimed, left unfinished), in input order."""
    chunks = []
    while (chunk := await store.claim_chunk("w")) is not None:
        chunks.append(chunk)
    return sorted(chunks, key=lambda c: c.start)


async def task(store: Store, task_id: str) -> Any:
    record = await store.get_task(task_id)
    assert record is not None
    return record


async def all_results(store: Store, task_id: str, flt: ResultFilter | None = None) -> list[dict[str, Any]]:
    items, _ = await store.results(task_id, flt or ResultFilter(), None, 1000)
    return items


def places(*found: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"document": document, "line": line} for document, line in found]


async def test_a_crawl_task_keeps_its_spec_and_starts_with_its_start_page(store: Store) -> None:
    spec = CrawlSpec(START, max_depth=2, max_pages=9, include=["^http://x/"], exclude=["/skip"], max_urls=50)
    created, _ = await store.create_task(NewTask(crawl=spec), iter([]), chunk_size=10)
    assert (created.crawl, created.total, created.pages) == (spec, 1, 0)
    listed, _ = await store.list_tasks(None, None, 10)
    assert [(t.id, t.crawl) for t in listed] == [(created.id, spec)]
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    assert (chunk.start, chunk.urls, chunk.kind, chunk.depth, chunk.crawl) == (0, [START], PAGES, 0, spec)
    plain, _ = await store.create_task(NewTask(), iter(URLS[:2]), chunk_size=10)
    other = await store.claim_chunk("w")
    assert other is not None and other.task_id == plain.id
    assert (other.kind, other.depth, other.crawl) == (LINKS, 0, None)
    assert (await task(store, plain.id)).crawl is None


async def test_discover_adds_new_urls_in_chunks_of_one_kind_with_consecutive_indexes(store: Store) -> None:
    task_id, first = await crawl(store, chunk_size=2)
    found = [Found(page("a"), 3, PAGES), Found("http://ext.example/1", 4), Found(page("b"), 5, PAGES),
             Found("http://ext.example/2", 6), Found(page("c"), 7, PAGES), Found("http://ext.example/1", 8),
             Found(page("c#top"), 9, FRAGMENTS), Found(START, 10, PAGES)]  # fmt: skip
    await store.discover(first, 0, START, found)
    record = await task(store, task_id)
    assert (record.total, record.pages, record.done) == (7, 1, 0)
    chunks = await claim_all(store)
    shape = [(c.kind, c.depth, c.start, c.urls) for c in chunks]
    assert shape == [
        (PAGES, 1, 1, [page("a"), page("b")]),
        (PAGES, 1, 3, [page("c")]),
        (LINKS, 1, 4, ["http://ext.example/1", "http://ext.example/2"]),
        (FRAGMENTS, 1, 6, [page("c#top")]),
    ]
    assert all(c.crawl == first.crawl for c in chunks)
    await store.discover(chunks[0], 1, page("a"), [Found(page("d"), 1, PAGES)])
    deeper = await store.claim_chunk("w")
    assert deeper is not None and (deeper.kind, deeper.depth, deeper.start, deeper.urls) == (
        PAGES, 2, 7, [page("d")],
    )  # fmt: skip


async def test_a_redelivered_page_adds_nothing_twice(store: Store) -> None:
    task_id, first = await crawl(store)
    found = [Found(page("a"), 1, PAGES), Found(page("b"), 2), Found(page("a"), 3, PAGES)]
    await store.discover(first, 0, START, found)
    again = None
    for _ in range(10):  # the worker went silent; another one gets the page again
        chunk = await claim_within(store, 10)
        if chunk is not None and chunk.start == 0:
            again = chunk
            break
        if chunk is not None:  # the pages it found: done by the other worker
            await store.complete_chunk(chunk, results_of(chunk))
    assert again is not None and again.deliveries == 2
    await store.discover(again, 0, START, [*found, Found(page("new"), 4, PAGES)])
    await store.discover(first, 0, START, found)  # the slow first delivery, late
    record = await task(store, task_id)
    assert (record.total, record.pages) == (3, 1)
    await store.complete_chunk(again, results_of(again))
    await drain(store)
    items = await all_results(store, task_id)
    assert [r["url"] for r in items] == [START, page("a"), page("b")]
    assert items[1]["sources"] == {"total": 2, "places": places((START, 1), (START, 3))}
    assert (await task(store, task_id)).status == TaskStatus.READY


async def test_seen_urls_only_gain_sources_and_each_url_has_one_result(store: Store) -> None:
    task_id, first = await crawl(store)
    await store.discover(first, 0, START, [Found(page("a"), 1, PAGES), Found(page("b"), 2, PAGES)])
    await store.complete_chunk(first, results_of(first))
    pages = await store.claim_chunk("w")
    assert pages is not None and pages.urls == [page("a"), page("b")]
    await store.discover(pages, 1, page("a"), [Found(START, 7, PAGES), Found(page("b"), 8, PAGES)])
    await store.discover(pages, 2, page("b"), [Found(page("a"), 9, PAGES), Found(page("c"), 4)])
    await store.complete_chunk(pages, results_of(pages))
    await drain(store)
    record = await task(store, task_id)
    assert (record.status, record.total, record.done, record.pages) == (TaskStatus.READY, 4, 4, 3)
    items = await all_results(store, task_id)
    assert [r["url"] for r in items] == [START, page("a"), page("b"), page("c")]
    assert [r["sources"] for r in items] == [
        {"total": 1, "places": places((page("a"), 7))},
        {"total": 2, "places": places((START, 1), (page("b"), 9))},
        {"total": 2, "places": places((START, 2), (page("a"), 8))},
        {"total": 1, "places": places((page("b"), 4))},
    ]


async def test_places_are_capped_and_the_total_is_counted(store: Store) -> None:
    task_id, first = await crawl(store)
    link = "http://ext.example/often"
    await store.discover(first, 0, START, [Found(link, line) for line in range(1, MAX_PLACES + 6)])
    await store.complete_chunk(first, results_of(first))
    await drain(store)
    items = await all_results(store, task_id)
    listed = places(*((START, n) for n in range(1, MAX_PLACES + 1)))
    assert items[1]["sources"] == {"total": MAX_PLACES + 5, "places": listed}


async def test_a_seen_url_found_on_another_page_keeps_counting_up_to_the_cap(store: Store) -> None:
    task_id, first = await crawl(store)
    link = "http://ext.example/often"
    found = [Found(page("p"), 1, PAGES), *(Found(link, n) for n in range(2, MAX_PLACES + 1))]
    await store.discover(first, 0, START, found)
    await store.complete_chunk(first, results_of(first))
    chunks = await claim_all(store)
    assert [(c.kind, c.urls) for c in chunks] == [(PAGES, [page("p")]), (LINKS, [link])]
    await store.discover(chunks[0], 1, page("p"), [Found(link, 50), Found(link, 51)])
    for chunk in chunks:
        await store.complete_chunk(chunk, results_of(chunk))
    items = await all_results(store, task_id)
    assert items[2]["sources"]["total"] == MAX_PLACES + 1
    lines = [(p["document"], p["line"]) for p in items[2]["sources"]["places"]]
    assert lines == [*((START, n) for n in range(2, MAX_PLACES + 1)), (page("p"), 50)]


async def test_pages_beyond_max_pages_are_only_checked(store: Store) -> None:
    task_id, first = await crawl(store, max_pages=3)
    await store.discover(first, 0, START, [Found(page(n), 1, PAGES) for n in "abcd"])
    chunks = await claim_all(store)
    assert [(c.kind, c.urls) for c in chunks] == [
        (PAGES, [page("a"), page("b")]),
        (LINKS, [page("c"), page("d")]),
    ]
    await store.discover(chunks[0], 1, page("a"), [Found(page("e"), 1, PAGES)])
    more = await claim_all(store)
    assert [(c.kind, c.urls) for c in more] == [(LINKS, [page("e")])]
    assert (await task(store, task_id)).total == 6


async def test_a_crawl_discovers_no_more_than_max_urls(store: Store) -> None:
    task_id, first = await crawl(store, max_urls=4)
    await store.discover(first, 0, START, [Found(page(n), i, PAGES) for i, n in enumerate("abcdef")])
    chunks = await claim_all(store)
    assert [u for c in chunks for u in c.urls] == [page("a"), page("b"), page("c")]
    await store.discover(chunks[0], 1, page("a"), [Found(page("z"), 5), Found(page("b"), 6)])
    record = await task(store, task_id)
    assert (record.total, record.pages) == (4, 2)
    assert await store.claim_chunk("w") is None
    for chunk in (first, *chunks):
        await store.complete_chunk(chunk, results_of(chunk))
    items = await all_results(store, task_id)
    assert [r["url"] for r in items] == [START, page("a"), page("b"), page("c")]
    assert items[2]["sources"]["total"] == 2  # a seen URL still gains the place


async def owned_crawls(store: Store, owner: str | None, per_day: int | None, count: int) -> list[Chunk]:
    """`count` crawls of one owner, their start pages claimed (in creation order)."""
    spec = CrawlSpec(START, urls_per_day=per_day)
    ids = [
        (await store.create_task(NewTask(owner=owner, crawl=spec), iter([]), 10))[0].id for _ in range(count)
    ]
    chunks = {c.task_id: c for c in await claim_all(store)}
    return [chunks[task_id] for task_id in ids]


async def usage_keys(store: Store) -> KeyStore:
    """The key store beside this task store: it counts the same usage (KeyStore.take)."""
    keys = SQLiteKeys(store.path) if isinstance(store, SQLiteStore) else RedisKeys(store.url)  # type: ignore[attr-defined]
    await keys.open()
    return keys


async def used_today(keys: KeyStore, owner: str) -> int:
    count = await keys.take(owner, Window.today(), 0, 10**9)  # counts nothing: reads the counter
    assert count is not None
    return count


def links(*names: str) -> list[Found]:
    return [Found(page(name), i, PAGES) for i, name in enumerate(names)]


async def test_crawls_of_one_owner_together_discover_no_more_than_the_days_quota(store: Store) -> None:
    keys = await usage_keys(store)
    try:
        assert await keys.take("alice", Window.today(), 2, 10) == 2  # the API charged the start URLs
        first, second = await owned_crawls(store, "alice", 10, 2)
        await store.discover(first, 0, START, links(*"abcde"))
        assert await used_today(keys, "alice") == 2 + 5  # every URL the crawl added, charged
        await store.discover(second, 0, START, links(*"vwxyz"))
        assert await used_today(keys, "alice") == 10
        assert (await task(store, second.task_id)).total == 1 + 3  # what the quota had left
        more = [c for c in await claim_all(store) if c.task_id == first.task_id]
        await store.discover(more[0], 1, page("a"), links("f", "b"))
        assert (await task(store, first.task_id)).total == 1 + 5  # f dropped, b already seen
        assert await used_today(keys, "alice") == 10
        assert await keys.take("alice", Window.today(), 1, 10) is None  # submissions see it too
    finally:
        await keys.close()


async def test_a_redelivered_page_is_charged_once(store: Store) -> None:
    keys = await usage_keys(store)
    try:
        (first,) = await owned_crawls(store, "alice", 100, 1)
        await store.discover(first, 0, START, links(*"abc"))
        await store.discover(first, 0, START, links(*"abcdef"))  # the same page, delivered again
        assert (await task(store, first.task_id)).total == 4
        assert await used_today(keys, "alice") == 3
    finally:
        await keys.close()


async def test_crawls_of_no_owner_or_an_unlimited_one_are_not_charged(store: Store) -> None:
    keys = await usage_keys(store)
    try:
        no_owner, unlimited = [
            *await owned_crawls(store, None, 1, 1),
            *await owned_crawls(store, "admin", None, 1),
        ]
        for chunk in (no_owner, unlimited):
            await store.discover(chunk, 0, START, links(*"abc"))
            assert (await task(store, chunk.task_id)).total == 4
        assert await used_today(keys, "admin") == 0
    finally:
        await keys.close()


async def test_a_crawl_is_ready_only_once_every_discovered_url_has_a_result(store: Store) -> None:
    task_id, first = await crawl(store)
    await store.discover(first, 0, START, [Found(page("a"), 1, PAGES), Found("http://ext.example/", 2)])
    await store.complete_chunk(first, results_of(first))
    record = await task(store, task_id)
    assert (record.status, record.total, record.done, record.pages) == (TaskStatus.RUNNING, 3, 1, 1)
    chunks = await claim_all(store)
    await store.complete_chunk(chunks[1], results_of(chunks[1]))  # the link is done, the page not yet
    assert (await task(store, task_id)).status == TaskStatus.RUNNING
    await store.store_results(chunks[0], results_of(chunks[0]))  # its result, before its links
    await store.discover(chunks[0], 1, page("a"), [Found(page("deep"), 3, PAGES)])
    await store.complete_chunk(chunks[0], [])
    record = await task(store, task_id)
    assert (record.status, record.total, record.done) == (TaskStatus.RUNNING, 4, 3)
    assert await drain(store) == 1
    record = await task(store, task_id)
    assert (record.status, record.total, record.done, record.pages) == (TaskStatus.READY, 4, 4, 2)


async def test_cancel_gives_discovered_urls_a_result_and_stops_the_crawl(store: Store) -> None:
    task_id, first = await crawl(store, chunk_size=2)
    await store.discover(first, 0, START, [Found(page(n), 1, PAGES) for n in "abc"])
    await store.complete_chunk(first, results_of(first))
    cancelled = await store.cancel_task(task_id)
    assert cancelled is not None and cancelled.status == TaskStatus.CANCELLED
    assert (cancelled.total, cancelled.done, cancelled.by_error.get("cancelled")) == (4, 4, 3)
    await store.discover(first, 1, page("a"), [Found(page("late"), 1, PAGES)])
    assert (await task(store, task_id)).total == 4
    assert await store.claim_chunk("w") is None
    items = await all_results(store, task_id)
    assert [(r["url"], (r["error"] or {}).get("kind")) for r in items] == [
        (START, "dns"), (page("a"), "cancelled"), (page("b"), "cancelled"), (page("c"), "cancelled"),
    ]  # fmt: skip
    assert items[1]["sources"] == {"total": 1, "places": places((START, 1))}


async def test_delete_removes_a_crawl_and_everything_it_found(store: Store) -> None:
    task_id, first = await crawl(store, chunk_size=2)
    await store.discover(first, 0, START, [Found(page(n), 1, PAGES) for n in "abc"])
    await store.store_results(first, results_of(first))
    assert await store.delete_task(task_id)
    await store.discover(first, 0, START, [Found(page("late"), 1, PAGES)])  # a worker, after the delete
    await store.complete_chunk(first, results_of(first))
    assert await store.get_task(task_id) is None
    assert await store.claim_chunk("w") is None
    assert await leftovers(store, task_id) == []


async def leftovers(store: Store, task_id: str) -> list[str]:
    """What the store still holds of a task: table names (SQLite) or key names (Redis)."""
    if isinstance(store, SQLiteStore):  # every table with a task_id column
        with sqlite3.connect(store.path) as db:
            tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            tables = [
                t for t in tables if "task_id" in {row[1] for row in db.execute(f"PRAGMA table_info({t})")}
            ]
            return [
                t for t in tables if db.execute(f"SELECT 1 FROM {t} WHERE task_id = ?", (task_id,)).fetchone()
            ]
    assert isinstance(store, RedisStore)
    client = aioredis.Redis.from_url(store.url, decode_responses=True)
    try:
        found: list[str] = [key async for key in client.scan_iter(f"*{task_id}*")]
        return found
    finally:
        await client.aclose()


async def test_sources_come_with_result_pages_filters_and_streams(store: Store) -> None:
    task_id, first = await crawl(store)
    found = [Found("http://ext.example/ok", 2), Found("http://ext.example/missing", 3),
             Found("http://ext.example/ok", 4)]  # fmt: skip
    await store.discover(first, 0, START, found)
    await store.complete_chunk(first, results_of(first))
    await drain(store)
    expected = [None, {"total": 2, "places": places((START, 2), (START, 4))},
                {"total": 1, "places": places((START, 3))}]  # fmt: skip
    items = await all_results(store, task_id)
    assert [r.get("sources") for r in items] == expected
    assert "sources" not in items[0]
    page_one, cursor = await store.results(task_id, ResultFilter(), 0, 1)
    assert [r["sources"] for r in page_one] == expected[1:2] and cursor == 1
    broken = await all_results(store, task_id, ResultFilter(outcome="broken"))
    assert [r.get("sources") for r in broken] == [None, expected[2]]
    streamed = [json.loads(row) async for row in store.stream_results(task_id, ResultFilter())]
    assert streamed == items


async def test_document_sources_given_at_creation_come_with_the_results(store: Store) -> None:
    sources = {0: {"total": 1, "places": places(("README.md", 3))},
               2: {"total": 12, "places": places(*(("docs/a.html", n) for n in range(10)))}}  # fmt: skip
    given = [(0, sources[0]), (2, orjson.Fragment(orjson.dumps(sources[2])))]  # a dict, or its JSON (intake)
    created, _ = await store.create_task(NewTask(sources=given), iter(URLS[:3]), chunk_size=2)
    assert created.crawl is None
    await drain(store)
    items = await all_results(store, created.id)
    assert [r.get("sources") for r in items] == [sources[0], None, sources[2]]
    streamed = [json.loads(row) async for row in store.stream_results(created.id, ResultFilter())]
    assert streamed == items
    assert await store.delete_task(created.id) and await leftovers(store, created.id) == []


async def test_plain_tasks_have_no_sources(store: Store) -> None:
    created, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=4)
    await drain(store)
    items = await all_results(store, created.id)
    assert len(items) == 10 and all("sources" not in r for r in items)


async def test_pages_expanded_at_once_share_one_seen_set(store: Store) -> None:
    task_id, first = await crawl(store, chunk_size=50)
    await store.discover(first, 0, START, [Found(page(f"p{i}"), i, PAGES) for i in range(20)])
    await store.complete_chunk(first, results_of(first))
    pages = await store.claim_chunk("w")
    assert pages is not None and len(pages.urls) == 20
    shared = [Found(f"http://ext.example/{n}", n) for n in range(10)]
    await asyncio.gather(*(
        store.discover(pages, pages.start + i, url, [*shared, Found(f"{url}/own", 1)])
        for i, url in enumerate(pages.urls)
    ))  # fmt: skip
    await store.complete_chunk(pages, results_of(pages))
    await drain(store)
    record = await task(store, task_id)
    assert (record.status, record.total, record.done, record.pages) == (TaskStatus.READY, 51, 51, 21)
    items = await all_results(store, task_id)
    urls = [r["url"] for r in items]
    assert len(set(urls)) == len(urls) == 51 and [r["index"] for r in items] == list(range(51))
    totals = {r["url"]: r["sources"]["total"] for r in items if r["url"].startswith("http://ext.")}
    assert totals == {f"http://ext.example/{n}": 20 for n in range(10)}


async def test_discovered_chunks_take_turns_with_other_tasks(store: Store) -> None:
    crawl_id, first = await crawl(store, chunk_size=1)
    big, _ = await store.create_task(NewTask(), (f"http://big{i}.example/ok" for i in range(10)), 1)
    await store.discover(first, 0, START, [Found(page(n), 1, PAGES) for n in "abc"])
    turns = []
    for _ in range(6):
        chunk = await store.claim_chunk("w")
        assert chunk is not None
        turns.append(chunk.task_id)
    assert turns.count(crawl_id) == turns.count(big.id) == 3
    assert turns[:2] == [big.id, crawl_id]


async def test_a_finished_crawl_goes_with_the_retention(store: Store) -> None:
    task_id, first = await crawl(store)
    await store.discover(first, 0, START, [Found(page("a"), 1, PAGES), Found("http://ext.example/", 2)])
    await store.complete_chunk(first, results_of(first))
    await drain(store)
    assert (await task(store, task_id)).status == TaskStatus.READY
    if isinstance(store, SQLiteStore):
        store.retention = Retention(0)
        assert await store.purge_expired() == 1
        assert await leftovers(store, task_id) == []
        return
    assert isinstance(store, RedisStore)  # Redis expires every key of the task by itself
    client = aioredis.Redis.from_url(store.url, decode_responses=True)
    try:
        keys = await leftovers(store, task_id)
        assert len(keys) >= 8
        ttls = {key: await client.ttl(key) for key in keys}
        assert all(0 < ttl <= store.retention.ttl for ttl in ttls.values()), ttls
    finally:
        await client.aclose()


async def test_a_page_expanded_while_a_redis_cancel_runs_adds_nothing(redis_server: RedisServer) -> None:
    """The cancel reads the task's chunks, then gives their URLs `cancelled` results: a page's links
    added in between would have no result. The page lands right there (a hook on the read)."""
    redis_server.flush()
    store = RedisStore(redis_server.url, block_ms=20)
    await store.open()
    try:
        task_id, first = await crawl(store)
        read = store.r.smembers

        async def discover_meanwhile(key: str) -> Any:
            await store.discover(first, 0, START, [Found(page("a"), 1, PAGES)])
            return await read(key)

        store.r.smembers = discover_meanwhile  # the cancel reads the done chunks after their list
        cancelled = await store.cancel_task(task_id)
        assert cancelled is not None and (cancelled.status, cancelled.total, cancelled.done) == (
            TaskStatus.CANCELLED, 1, 1,
        )  # fmt: skip
        assert [r["url"] for r in await all_results(store, task_id)] == [START]
    finally:
        await store.close()


async def test_a_redis_cancel_racing_a_delete_leaves_nothing(redis_server: RedisServer) -> None:
    redis_server.flush()
    store = RedisStore(redis_server.url, block_ms=20)
    await store.open()
    try:
        task_id, first = await crawl(store)
        await store.discover(first, 0, START, [Found(page("a"), 1, PAGES)])
        read = store.r.smembers

        async def delete_meanwhile(key: str) -> Any:
            store.r.smembers = read
            assert await store.delete_task(task_id)
            return await read(key)

        store.r.smembers = delete_meanwhile  # the delete lands in the middle of the cancel
        assert await store.cancel_task(task_id) is None
        assert await store.get_task(task_id) is None
        assert await leftovers(store, task_id) == []
    finally:
        await store.close()
