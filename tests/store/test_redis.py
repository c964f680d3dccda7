"""The Redis store beyond the contract: what only Redis has, such as the shape of older tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from linkprobe.engine import ErrorKind, ProbeOptions, ProbeResult, failed
from linkprobe.store import NewTask, ResultFilter, TaskStatus
from linkprobe.store import redis_schema as k
from linkprobe.store.base import split_secrets
from linkprobe.store.errors import StoreUnavailable
from linkprobe.store.redis import RedisStore
from tests.conftest import RedisServer


@pytest.fixture
async def redis_store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    redis_server.flush()
    store = RedisStore(redis_server.url, block_ms=20)
    await store.open()
    yield store
    await store.close()


def old_results() -> list[ProbeResult]:
    url = "http://h.example/"
    return [
        ProbeResult(url=f"{url}ok", index=0, ok=True, status_code=200, final_url=f"{url}ok", attempts=1),
        ProbeResult(url=f"{url}missing", index=1, status_code=404, final_url=f"{url}missing", attempts=1),
        failed(f"{url}nohost", 2, ErrorKind.DNS, "no such host"),
        failed(f"{url}later", 3, ErrorKind.CANCELLED, "cancelled"),
        failed(f"mailto:{url}", 4, ErrorKind.UNSUPPORTED, "not http"),
    ]


def write_old_task(server: RedisServer, task_id: str) -> None:
    """A finished task as stored before outcome counts: `ok` and `broken` (every result not ok) in
    the task hash, results indexed in idx:ok and idx:broken, no o:<outcome> key anywhere."""
    results = old_results()
    client = redis.Redis(port=server.port)
    p = k.task_prefix(task_id)
    ok = [r.index for r in results if r.ok]
    not_ok = [r.index for r in results if not r.ok]
    client.hset(k.task(task_id), mapping={
        "id": task_id, "name": "", "description": "", "has_name": 0, "has_description": 0,
        "options": split_secrets(ProbeOptions())[0], "total": len(results), "status": "ready",
        "done": len(results), "ok": len(ok), "broken": len(not_ok), "chunks_left": 0,
        "created_at": "2026-12-01T10:00:00+00:00", "finished_at": "2026-12-01T10:00:05+00:00",
        "owner": "", "lane": f"task:{task_id}", "chunks": 1, "chunk_size": 100,
    })  # fmt: skip
    client.hset(k.counts(task_id), mapping={"s:200": 1, "s:404": 1, "e:dns": 1, "e:cancelled": 1,
                                             "e:unsupported": 1})  # fmt: skip
    client.hset(k.results(task_id), mapping={r.index: r.to_json() for r in results})
    client.zadd(f"{p}idx:all", {str(r.index): r.index for r in results})
    client.zadd(f"{p}idx:ok", {str(i): i for i in ok})
    client.zadd(f"{p}idx:broken", {str(i): i for i in not_ok})
    client.zadd(k.TASKS, {task_id: 1})


async def test_a_task_stored_before_outcome_counts_keeps_its_counts_and_outcome_filters(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    write_old_task(redis_server, "old-task")
    task = await redis_store.get_task("old-task")
    assert task is not None
    assert (task.ok, task.broken, task.unsupported, task.cancelled) == (1, 2, 1, 1)
    for outcome, indexes in (("ok", [0]), ("broken", [1, 2]), ("cancelled", [3]), ("unsupported", [4])):
        rows = await redis_store.page_rows("old-task", ResultFilter(outcome=outcome), None, 50)
        assert [idx for idx, _ in rows] == indexes, outcome
    every = await redis_store.page_rows("old-task", ResultFilter(), None, 50)
    assert [idx for idx, _ in every] == [0, 1, 2, 3, 4]


def urls(n: int) -> Iterator[str]:
    return (f"http://c{i}.example/ok" for i in range(n))


async def test_a_cancel_cut_short_by_a_redis_error_is_finished_by_the_workers(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel that fails after its first chunk leaves the task cancelling with its chunks still
    to feed: workers take them and give their URLs cancelled results, the last one ends the task."""
    task, _ = await redis_store.create_task(NewTask(), urls(20), chunk_size=2)
    complete, calls = redis_store._complete, 0

    async def failing(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RedisConnectionError("connection lost")
        return await complete(**kwargs)

    monkeypatch.setattr(redis_store, "_complete", failing)
    with pytest.raises(StoreUnavailable):
        await redis_store.cancel_task(task.id)
    monkeypatch.setattr(redis_store, "_complete", complete)
    held = await redis_store.get_task(task.id)
    assert held is not None and held.status == TaskStatus.PENDING
    while (chunk := await redis_store.claim_chunk("w")) is not None:  # a worker at its work
        await redis_store.complete_chunk(chunk, [])
    ended = await redis_store.get_task(task.id)
    assert ended is not None and (ended.status, ended.done, ended.cancelled) == (TaskStatus.CANCELLED, 20, 20)


async def test_a_cancel_before_the_chunks_are_queued_leaves_nothing_to_feed(
    redis_store: RedisStore, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel between the task's creation and the queueing of its chunks ends it: the queueing
    then does nothing (no list without a TTL, no lane, no chunk on the queue)."""
    enqueue = redis_store._enqueue

    async def cancel_first(task_id: str, *args: Any) -> None:
        await redis_store.cancel_task(task_id)
        await enqueue(task_id, *args)

    monkeypatch.setattr(redis_store, "_enqueue", cancel_first)
    task, _ = await redis_store.create_task(NewTask(), urls(20), chunk_size=2)
    assert task.status == TaskStatus.CANCELLED and task.cancelled == 20
    client = redis.Redis(port=redis_server.port)
    assert not client.exists(k.todo(task.id)) and not client.exists(k.lane(f"task:{task.id}"))
    assert client.xlen(k.QUEUE) == 0 and await redis_store.claim_chunk("w") is None
    assert -1 not in [client.ttl(key) for key in client.keys(f"{k.task_prefix(task.id)}*")]  # all expire
