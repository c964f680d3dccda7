"""What only the embedded store has: its file lock, what readiness says about its file and disk,
and the purge of expired tasks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from linkprobe.engine import StoreUnavailable
from linkprobe.store import NewTask, StoreLocked, TaskStatus
from linkprobe.store.sqlite import SQLiteStore
from tests.store.test_contract import URLS, drain


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
