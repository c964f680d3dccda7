"""What only the embedded store has: its file lock, what readiness says about its file and disk,
the purge of expired tasks, and databases of earlier releases."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from linkprobe.engine import ErrorKind, failed
from linkprobe.engine.shards import share_of
from linkprobe.store import Chunk, ChunkKind, CrawlSpec, NewTask, ResultFilter, StoreLocked, TaskStatus
from linkprobe.store.errors import StoreUnavailable
from linkprobe.store.sqlite import SQLiteStore
from tests.store.test_contract import URLS, drain, results_of


async def test_a_second_store_on_the_same_file_is_refused_before_touching_it(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "s.db")
    await first.open()
    try:
        await first.create_task(NewTask(), iter(URLS), chunk_size=4)
        assert await first.claim_chunk("w") is not None
        second = SQLiteStore(tmp_path / "s.db")
        with pytest.raises(StoreLocked, match="in use by another linkprobe process"):
            second.lock()
        with pytest.raises(StoreLocked):
            await second.open()
        stats = await first.stats()
        assert stats["queued_chunks"] == 2  # the claimed chunk was not requeued by the second
    finally:
        await first.close()
    third = SQLiteStore(tmp_path / "s.db")  # the lock goes with the process that held it
    await third.open()
    await third.close()


async def test_a_full_disk_is_reported_as_such(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        assert await store.problem() is None
        (pages,) = store.db.execute("PRAGMA page_count").fetchone()
        store.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
        urls = (f"http://host{i}.example/{'x' * 200}" for i in range(20_000))
        with pytest.raises(StoreUnavailable, match="disk full") as raised:
            await store.create_task(NewTask(), urls, chunk_size=500)
        assert "cannot rollback" not in str(raised.value)
        problem = await store.problem()
        assert problem is not None and problem.startswith("disk full")
    finally:
        await store.close()


async def test_a_lost_database_file_makes_the_store_not_ready(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        (tmp_path / "s.db").unlink()
        problem = await store.problem()
        assert problem is not None and "is missing" in problem and str(tmp_path / "s.db") in problem
    finally:
        await store.close()


async def test_finished_tasks_past_the_retention_are_purged(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", retention_s=1)
    await store.open()
    try:
        old, _ = await store.create_task(NewTask(), iter(URLS[:2]), chunk_size=10)
        await drain(store)
        running, _ = await store.create_task(NewTask(), iter(URLS[:2]), chunk_size=10)
        for _ in range(100):  # purged by the store itself, as it hands out work
            await store.claim_chunk("w")
            if await store.get_task(old.id) is None:
                break
            await asyncio.sleep(0.1)
        assert await store.get_task(old.id) is None
        assert store.db.execute("SELECT count(*) FROM results WHERE task_id = ?", (old.id,)).fetchone() == (
            0,
        )
        kept = await store.get_task(running.id)  # not finished: kept whatever its age
        assert kept is not None and kept.status == TaskStatus.RUNNING
    finally:
        await store.close()


# The tasks and chunks tables as the first releases made them (before lanes, owners and crawls).
OLD_SCHEMA = """
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
    name TEXT, description TEXT, options TEXT NOT NULL,
    status TEXT NOT NULL, total INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0, ok INTEGER NOT NULL DEFAULT 0, broken INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, idem_key TEXT UNIQUE, fingerprint TEXT
);
CREATE TABLE urls (
    task_id TEXT NOT NULL, idx INTEGER NOT NULL, url TEXT NOT NULL, PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
CREATE TABLE chunks (
    task_id TEXT NOT NULL, number INTEGER NOT NULL, start INTEGER NOT NULL, stop INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued', deliveries INTEGER NOT NULL DEFAULT 0, worker TEXT,
    PRIMARY KEY (task_id, number)
) WITHOUT ROWID;
INSERT INTO tasks (id, options, status, total, created_at)
    VALUES ('old', '{}', 'pending', 2, '2026-01-01T00:00:00+00:00');
INSERT INTO urls VALUES ('old', 0, 'http://a.example/ok'), ('old', 1, 'http://b.example/x');
INSERT INTO chunks (task_id, number, start, stop) VALUES ('old', 0, 0, 2);
"""


async def test_a_database_of_an_earlier_release_is_served_with_its_tasks(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.executescript(OLD_SCHEMA)
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        chunk = await store.claim_chunk("w")
        assert (
            chunk is not None
            and chunk.task_id == "old"
            and chunk.urls == ["http://a.example/ok", "http://b.example/x"]
        )
        assert (chunk.kind, chunk.depth, chunk.crawl) == (ChunkKind.LINKS, 0, None)
        await store.complete_chunk(chunk, results_of(chunk))
        task = await store.get_task("old")
        assert task is not None and (task.status, task.done, task.crawl, task.pages) == (
            TaskStatus.READY,
            2,
            None,
            0,
        )
        items, _ = await store.results("old", ResultFilter(), None, 10)
        assert [r["index"] for r in items] == [0, 1] and all("sources" not in r for r in items)
        crawl, _ = await store.create_task(NewTask(crawl=CrawlSpec("http://site.example/")), iter([]), 10)
        start = await store.claim_chunk("w")
        assert start is not None and (start.task_id, start.kind) == (crawl.id, ChunkKind.PAGES)
    finally:
        await store.close()


async def test_quota_counters_of_ended_windows_are_purged(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        rows = [("key", "day:old", 5, time.time() - 1), ("key", "day:now", 7, time.time() + 3600)]
        store.db.executemany("INSERT INTO usage (key_id, window, n, expires) VALUES (?, ?, ?, ?)", rows)
        await store.purge_expired()
        assert store.db.execute("SELECT window, n FROM usage").fetchall() == [("day:now", 7)]
    finally:
        await store.close()


# The results table before results were counted by outcome word, with rows as it held them.
OLD_RESULTS = """
DROP TABLE results;
CREATE TABLE results (
    task_id TEXT NOT NULL, idx INTEGER NOT NULL, ok INTEGER NOT NULL, status_code INTEGER,
    error_kind TEXT, data TEXT NOT NULL, PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
DELETE FROM counts WHERE key LIKE 'o:%';
"""


async def test_results_stored_before_outcome_counts_are_counted_and_filtered_by_outcome(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    urls = ["http://a.example/ok", "http://b.example/missing", "mailto:x@y.example", "http://d.example/x"]
    task, _ = await store.create_task(NewTask(), iter(urls), chunk_size=10)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    results = [
        *results_of(chunk)[:2],
        failed(urls[2], 2, ErrorKind.UNSUPPORTED, "mailto"),
        results_of(chunk)[3],
    ]
    await store.complete_chunk(chunk, results)
    await store.close()
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.executescript(OLD_RESULTS)
        db.executemany(
            "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?)",
            [
                (task.id, r.index, int(r.ok), r.status_code, r.error and r.error.kind.value, r.to_json())
                for r in results
            ],
        )
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        record = await store.get_task(task.id)
        assert record is not None
        assert (record.ok, record.broken, record.unsupported, record.cancelled) == (1, 2, 1, 0)
        broken, _ = await store.results(task.id, ResultFilter(outcome="broken"), None, 10)
        assert [r["index"] for r in broken] == [1, 3]
        dns, _ = await store.results(task.id, ResultFilter(error_kind="dns"), None, 10)
        assert [r["index"] for r in dns] == [3]
    finally:
        await store.close()


async def test_reads_answer_while_the_writer_is_busy(tmp_path: Path) -> None:
    """A task's view, the task list, a page of results and the stats come from the reader thread:
    a long write (a large upload being staged, a purge) in a write transaction does not hold them."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    task, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=4)
    release = threading.Event()

    def long_write() -> None:
        with store._tx() as db:  # the writer's lock and its thread, held until released
            db.execute("UPDATE tasks SET name = 'writing' WHERE id = ?", (task.id,))
            release.wait(30)

    writing = asyncio.get_running_loop().run_in_executor(store._executor, long_write)
    try:
        record = await asyncio.wait_for(store.get_task(task.id), 10)
        listed, _ = await asyncio.wait_for(store.list_tasks(None, None, 10), 10)
        rows, _ = await asyncio.wait_for(store.results(task.id, ResultFilter(), None, 10), 10)
        stats = await asyncio.wait_for(store.stats(), 10)
    finally:
        release.set()
        await writing
        await store.close()
    assert record is not None and record.name != "writing"  # the last committed state
    assert [t.id for t in listed] == [task.id] and rows == [] and stats["queued_chunks"] == 3


async def test_serve_processes_each_probe_their_own_hosts_of_every_range_and_results_keep_input_order(
    tmp_path: Path,
) -> None:
    """With serve's worker processes (`shares`), each range of a task's URLs is one chunk per
    process holding the URLs of its hosts (as `check` splits by host), claimed by that process
    first and by another once none of its own is left; every URL still gets one result, read in
    input order."""
    serving = SQLiteStore(tmp_path / "s.db", shares=2)
    await serving.open()
    processes = [SQLiteStore(tmp_path / "s.db", follower=True, share=n) for n in range(2)]
    for process in processes:
        await process.open()
    try:
        urls = [f"http://h{i % 7}.example/{'ok' if i % 2 else 'missing'}/{i}" for i in range(40)]
        task, _ = await serving.create_task(NewTask(), iter(urls), chunk_size=8)
        claimed: list[Chunk] = []
        while (chunk := await processes[0].claim_chunk("p0")) is not None:
            claimed.append(chunk)
            await processes[0].complete_chunk(chunk, results_of(chunk))
        assert len(claimed) == 10  # 5 ranges x 2 shares, this process's own first
        own, other = claimed[:5], claimed[5:]
        assert {share_of(url, 2) for c in own for url in c.urls} == {0}
        assert {share_of(url, 2) for c in other for url in c.urls} == {1}
        for chunk in claimed:  # each URL with its input index, in order within its range
            assert chunk.indexes == sorted(chunk.indexes or [])
            assert all(urls[index] == url for index, url in zip(chunk.positions, chunk.urls, strict=True))
        done = await serving.get_task(task.id)
        assert done is not None and done.status is TaskStatus.READY and done.done == len(urls)
        stored = [r["index"] for r in await drain_results(serving, task.id)]
        assert stored == list(range(len(urls)))
    finally:
        for process in processes:
            await process.close()
        await serving.close()


async def drain_results(store: SQLiteStore, task_id: str) -> list[dict[str, object]]:
    items, after = [], None
    while True:
        page, after = await store.results(task_id, ResultFilter(), after, 7)
        items += page
        if after is None:
            return items
