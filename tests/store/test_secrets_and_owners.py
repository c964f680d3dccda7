"""Secrets kept only while a task runs, and the owner index, on both stores.

The secret checks read what the store holds at the lowest level a reader of its data would: the
bytes of the SQLite file and its WAL, or every value of every Redis key.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from linkprobe.engine import ProbeOptions
from linkprobe.store import NewTask, Store, TaskStatus
from linkprobe.store import redis_schema as k
from linkprobe.store.redis import RedisStore
from linkprobe.store.sqlite import SQLiteStore
from tests.conftest import make_store
from tests.store.test_contract import URLS, drain, results_of

SECRETS = ("Bearer tok-5f1c9e0a7b", "session=ck-77a1d0c3e2")
OPTIONS = {"retries": 1, "headers": {"Authorization": SECRETS[0], "Cookie": SECRETS[1]}}
PROBE = ProbeOptions.of(OPTIONS)


async def raw_data(store: Store) -> bytes:
    """Everything the store has written: file bytes (SQLite), every key's values (Redis)."""
    if isinstance(store, SQLiteStore):
        return raw_sqlite(store.path)
    assert isinstance(store, RedisStore)
    return await raw_redis(store.url)


def raw_sqlite(path: Path) -> bytes:
    files = [path, Path(f"{path}-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


async def raw_redis(url: str) -> bytes:
    client = aioredis.Redis.from_url(url)
    try:
        parts: list[bytes] = []
        async for key in client.scan_iter("*"):
            parts.append(repr(await _value(client, key)).encode())
        return b"\n".join(parts)
    finally:
        await client.aclose()


async def _value(client: aioredis.Redis, key: bytes) -> object:
    raw = await client.type(key)
    kind = raw.decode() if isinstance(raw, bytes) else raw
    read: dict[str, Callable[[], Awaitable[object]]] = {
        "string": lambda: client.get(key),
        "hash": lambda: client.hgetall(key),
        "list": lambda: client.lrange(key, 0, -1),
        "set": lambda: client.smembers(key),
        "zset": lambda: client.zrange(key, 0, -1),
        "stream": lambda: client.xrange(key),
    }
    return await read[kind]()


def secrets_in(data: bytes) -> list[str]:
    return [s for s in SECRETS if s.encode() in data]


async def finish(store: Store, task_id: str) -> None:
    await drain(store)


async def cancel(store: Store, task_id: str) -> None:
    await store.cancel_task(task_id)


async def dead_letter(store: Store, task_id: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:  # every worker dies holding its chunk
        record = await store.get_task(task_id)
        if record is None or record.status != TaskStatus.RUNNING:
            return
        await store.claim_chunk("doomed")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("end", [finish, cancel, dead_letter], ids=["ready", "cancelled", "dead-lettered"])
async def test_header_secrets_are_used_while_the_task_runs_and_gone_from_the_store_when_it_ends(
    store: Store, end: Callable[[Store, str], Awaitable[None]]
) -> None:
    task, _ = await store.create_task(NewTask(options=PROBE, owner="alice"), iter(URLS), chunk_size=4)
    assert task.options.headers == {"Authorization": "[redacted]", "Cookie": "[redacted]"}
    assert task.options.retries == 1
    chunk = await store.claim_chunk("w")
    assert chunk is not None and chunk.options == PROBE  # the worker sends the real values
    assert secrets_in(await raw_data(store)) == list(SECRETS)  # kept while the task runs
    await store.complete_chunk(chunk, results_of(chunk))
    await end(store, task.id)
    record = await store.get_task(task.id)
    assert record is not None and record.status in (TaskStatus.READY, TaskStatus.CANCELLED)
    assert record.options.headers == {"Authorization": "[redacted]", "Cookie": "[redacted]"}
    assert secrets_in(await raw_data(store)) == []


async def test_a_running_task_deleted_leaves_no_secret_in_the_store(store: Store) -> None:
    task, _ = await store.create_task(NewTask(options=PROBE), iter(URLS), chunk_size=4)
    assert await store.claim_chunk("w") is not None
    assert secrets_in(await raw_data(store)) == list(SECRETS)
    assert await store.delete_task(task.id)
    assert secrets_in(await raw_data(store)) == []  # SQLite: out of the WAL too


async def test_a_task_with_nothing_to_probe_never_keeps_its_secrets(store: Store) -> None:
    task, _ = await store.create_task(NewTask(options=PROBE), iter([]), chunk_size=4)
    assert task.status == TaskStatus.READY
    assert secrets_in(await raw_data(store)) == []


async def test_tasks_in_flight_count_an_owners_pending_and_running_tasks(store: Store) -> None:
    a = [(await store.create_task(NewTask(owner="a"), iter(URLS[:2]), 10))[0] for _ in range(4)]
    await store.create_task(NewTask(owner="b"), iter(URLS[:2]), 10)
    await store.create_task(NewTask(owner="a"), iter([]), 10)  # ready at once: never in flight
    assert (await store.tasks_in_flight("a"), await store.tasks_in_flight("b")) == (4, 1)
    assert await store.tasks_in_flight("nobody") == 0
    first = await store.claim_chunk("w")  # running still counts
    assert first is not None and first.task_id == a[0].id
    assert await store.tasks_in_flight("a") == 4
    await store.complete_chunk(first, results_of(first))  # ready
    await store.cancel_task(a[1].id)
    await store.delete_task(a[2].id)
    assert (await store.tasks_in_flight("a"), await store.tasks_in_flight("b")) == (1, 1)
    listed, _ = await store.list_tasks(None, None, 50, "a")
    assert len(listed) == 4 and {r.owner for r in listed} == {"a"}
    await drain(store)
    if isinstance(store, RedisStore):  # the chunk that ends a task takes it out of the index
        assert await store.r.smembers(k.owner_live("a")) == set()
    assert (await store.tasks_in_flight("a"), await store.tasks_in_flight("b")) == (0, 0)


async def test_redis_owner_index_follows_create_end_delete_and_expiry(redis_store: RedisStore) -> None:
    store = redis_store
    tasks = [(await store.create_task(NewTask(owner="a"), iter(URLS[:2]), 10))[0] for _ in range(3)]
    ids = {t.id for t in tasks}
    assert await store.r.smembers(k.owner_live("a")) == ids
    assert set(await store.r.zrange(k.owner_tasks("a"), 0, -1)) == ids
    await store.cancel_task(tasks[0].id)
    await store.delete_task(tasks[1].id)
    assert await store.r.smembers(k.owner_live("a")) == {tasks[2].id}
    assert set(await store.r.zrange(k.owner_tasks("a"), 0, -1)) == {tasks[0].id, tasks[2].id}
    await store.r.delete(k.task(tasks[2].id))  # as retention expires a task still in flight
    assert await store.tasks_in_flight("a") == 0
    assert await store.r.smembers(k.owner_live("a")) == set()
    listed, _ = await store.list_tasks(None, None, 50, "a")
    assert [r.id for r in listed] == [tasks[0].id]
    assert set(await store.r.zrange(k.owner_tasks("a"), 0, -1)) == {tasks[0].id}


@pytest.fixture
async def redis_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RedisStore]:
    opened = make_store("redis", tmp_path, request)
    assert isinstance(opened, RedisStore)
    await opened.open()
    yield opened
    await opened.close()


async def test_a_database_from_before_secrets_were_kept_apart_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    await store.open()
    running, _ = await store.create_task(NewTask(options=PROBE), iter(URLS), chunk_size=4)
    ended, _ = await store.create_task(NewTask(options=PROBE), iter(URLS), chunk_size=4)
    await store.cancel_task(ended.id)
    await store.close()
    with sqlite3.connect(path) as db:  # as the previous release stored them: options with the values
        db.execute("UPDATE tasks SET options = ?", (json.dumps(OPTIONS),))
        db.execute("ALTER TABLE tasks DROP COLUMN secrets")
    assert secrets_in(raw_sqlite(path)) == list(SECRETS)
    store = SQLiteStore(path)
    await store.open()
    try:
        for task in (running, ended):
            record = await store.get_task(task.id)
            assert record is not None and record.options.headers["Authorization"] == "[redacted]"
        chunk = await store.claim_chunk("w")
        assert chunk is not None and chunk.task_id == running.id and chunk.options == PROBE
        await drain(store)
        await store.complete_chunk(chunk, results_of(chunk))
        assert secrets_in(raw_sqlite(path)) == []
    finally:
        await store.close()
