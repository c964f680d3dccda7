"""The results' URL search (`?q=`): a case-insensitive substring of the input URL, on every store."""

from __future__ import annotations

from linkprobe.store import NewTask, ResultFilter, Store
from tests.store.test_contract import drain

URLS = [
    "http://Docs.example/ok",
    "http://shop.example/missing",
    "http://docs.example/guide/x",
    "http://blog.example/ok",
]


async def indexes(store: Store, task_id: str, flt: ResultFilter, limit: int = 100) -> list[int]:
    items, _ = await store.results(task_id, flt, None, limit)
    return [int(item["index"]) for item in items]


async def test_url_search_is_a_case_insensitive_substring(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=2)
    await drain(store)
    assert await indexes(store, task.id, ResultFilter(url_contains="DOCS.example")) == [0, 2]
    assert await indexes(store, task.id, ResultFilter(url_contains="/ok")) == [0, 3]
    assert await indexes(store, task.id, ResultFilter(url_contains="nowhere")) == []


async def test_url_search_combines_with_filters_pages_and_streams(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS * 3), chunk_size=5)
    await drain(store)
    flt = ResultFilter(outcome="ok", url_contains="docs")
    page, cursor = await store.results(task.id, flt, None, 2)
    assert [r["index"] for r in page] == [0, 4] and cursor is not None
    rest, end = await store.results(task.id, flt, cursor, 100)
    assert [r["index"] for r in rest] == [8] and end is None
    streamed = [row async for row in store.stream_results(task.id, ResultFilter(url_contains="shop"))]
    assert len(streamed) == 3


async def test_url_search_folds_case_beyond_ascii(store: Store) -> None:
    """Unicode case folding on every store: `ärger` finds `Ärger`, `straße` finds `STRASSE`."""
    urls = [
        "http://x.example/Ärger",
        "http://x.example/ärger-2",
        "http://x.example/STRASSE",
        "http://x.example/a",
    ]
    task, _ = await store.create_task(NewTask(), iter(urls), chunk_size=2)
    await drain(store)
    assert await indexes(store, task.id, ResultFilter(url_contains="ärger")) == [0, 1]
    assert await indexes(store, task.id, ResultFilter(url_contains="ÄRGER")) == [0, 1]
    assert await indexes(store, task.id, ResultFilter(url_contains="straße")) == [2]
