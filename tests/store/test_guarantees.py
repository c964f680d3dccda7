"""The service's promises under ordinary use, on both stores, with real processes probing the
loopback target: every task ends with exactly one result per URL, small tasks get their turn beside
a large one, cancel keeps what was probed, progress moves while a task runs, orphans come back."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from linkprobe.engine import Engine, EngineConfig
from linkprobe.store import NewTask, ResultFilter, Store, TaskStatus
from linkprobe.worker import Worker
from tests.conftest import RedisServer, Service, Target, start_service, start_worker

ENV = {"LINKPROBE_RECLAIM_IDLE_S": "3", "LINKPROBE_MAX_DELIVERIES": "3", "LINKPROBE_RETENTION_S": "600"}


def farm(target: Target, count: int, path: str, block: int = 0) -> list[str]:
    """URLs spread over many loopback hosts (per-host limits do not serialise them)."""
    return [target.url(path, host=f"127.{block + 10}.{i // 200}.{i % 200 + 1}") for i in range(count)]


@pytest.fixture(params=["sqlite", "redis"])
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Service]:
    """`linkprobe serve` on SQLite, or `linkprobe api` and a `linkprobe worker` on Redis."""
    if request.param == "sqlite":
        running = await start_service(tmp_path, "serve", "--db", str(tmp_path / "s.db"), env=ENV)
        yield running
        await running.stop()
        return
    redis_server: RedisServer = request.getfixturevalue("private_redis")
    running = await start_service(tmp_path, "api", "--redis-url", redis_server.url, env=ENV, name="api")
    worker = await start_worker(tmp_path, redis_server.url, ENV)
    yield running
    worker.terminate()
    await worker.wait()
    await running.stop()


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url, timeout=60) as opened:
        yield opened


async def submit(client: httpx.AsyncClient, urls: list[str]) -> str:
    response = await client.post("/api/v1/tasks", json={"urls": urls})
    assert response.status_code == 202, response.text
    task_id: str = response.json()["id"]
    return task_id


async def task_of(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/api/v1/tasks/{task_id}")).json()
    return body


async def wait_for(
    client: httpx.AsyncClient, task_id: str, statuses: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    """The task once its status is one of `statuses` (a condition wait, not a time limit on speed)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        task = await task_of(client, task_id)
        if task["status"] in statuses:
            return task
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"task {task_id} still {task['status']} after {timeout}s: {task}")
        await asyncio.sleep(0.1)


async def results_of(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    stream = await client.get(f"/api/v1/tasks/{task_id}/results", params={"format": "ndjson"})
    return [json.loads(line) for line in stream.text.splitlines()]


async def assert_exactly_one_result_per_url(client: httpx.AsyncClient, task_id: str, urls: list[str]) -> None:
    task = await task_of(client, task_id)
    rows = await results_of(client, task_id)
    assert task["status"] == "ready", task
    assert [(r["index"], r["url"]) for r in rows] == list(enumerate(urls))
    assert task["progress"]["done"] == task["progress"]["total"] == len(urls)
    assert sum(task["by_status"].values()) + sum(task["by_error"].values()) == len(urls)


async def test_hundreds_of_small_tasks_beside_a_large_one_all_end_with_one_result_per_url(
    client: httpx.AsyncClient, target: Target
) -> None:
    large_urls = farm(target, 4000, "/slow?s=0.05")
    large = await submit(client, large_urls)
    await wait_for(client, large, ("running",), 60)
    first_small = [target.url("/status/200", host="127.9.0.1")]
    alone = await submit(client, first_small)
    # A one-URL task gets its turn while the large one runs (generous bound: a condition wait).
    await wait_for(client, alone, ("ready",), 30)
    assert (await task_of(client, large))["status"] == "running"
    small: dict[str, list[str]] = {}
    for i in range(120):  # one after another
        urls = [target.url(f"/status/{200 + i % 5}", host=f"127.9.1.{i + 1}")]
        small[await submit(client, urls)] = urls
    batches = [[target.url("/status/200", host=f"127.9.2.{i + 1}")] * (1 + i % 4) for i in range(120)]
    ids = await asyncio.gather(*(submit(client, urls) for urls in batches))  # all at once
    small.update(zip(ids, batches, strict=True))
    for task_id, urls in small.items():
        await wait_for(client, task_id, ("ready",), 120)
        await assert_exactly_one_result_per_url(client, task_id, urls)
    await wait_for(client, large, ("ready",), 300)
    await assert_exactly_one_result_per_url(client, large, large_urls)


async def test_cancel_mid_task_keeps_the_results_already_probed(
    client: httpx.AsyncClient, target: Target
) -> None:
    urls = farm(target, 3000, "/slow?s=0.2", block=1)
    task_id = await submit(client, urls)
    done = 0
    for _ in range(600):
        if (done := (await task_of(client, task_id))["progress"]["done"]) >= 100:
            break
        await asyncio.sleep(0.05)
    assert done >= 100
    cancelled = (await client.post(f"/api/v1/tasks/{task_id}/cancel")).json()
    assert cancelled["status"] == "cancelled"
    rows = await results_of(client, task_id)
    assert [r["index"] for r in rows] == list(range(len(urls)))
    probed = [r for r in rows if (r["error"] or {}).get("kind") != "cancelled"]
    assert len(probed) >= done and all(r["status_code"] == 200 for r in probed)
    assert cancelled["by_status"].get("200", 0) == len(probed)


async def test_progress_of_a_running_task_moves_at_least_every_second(
    client: httpx.AsyncClient, target: Target
) -> None:
    # One chunk (progress used to move once, at its end) on four hosts: 32 at a time, for seconds.
    urls = [target.url("/slow?s=0.25", host=f"127.12.0.{i % 4 + 1}") for i in range(500)]
    task_id = await submit(client, urls)
    seen: list[int] = []
    while (task := await task_of(client, task_id))["status"] != "ready":
        if not seen or task["progress"]["done"] != seen[-1]:
            seen.append(task["progress"]["done"])
        await asyncio.sleep(0.25)
    assert len([done for done in seen if 0 < done < len(urls)]) >= 3, seen
    await assert_exactly_one_result_per_url(client, task_id, urls)


async def test_a_stuck_chunk_is_delivered_again_without_a_restart(store: Store, target: Target) -> None:
    """A worker goes silent holding a chunk (stopped mid-chunk, the store still open): another one
    takes the chunk over once its lease runs out, and the task ends with one result per URL."""
    urls = [target.url("/slow?s=1", host=f"127.11.0.{i + 1}") for i in range(6)]
    task, _ = await store.create_task(NewTask(), iter(urls), chunk_size=10)
    async with Engine(EngineConfig(allow_private=True)) as engine:
        stuck = Worker(store, engine, slots=1, heartbeat_s=3600)
        running = asyncio.create_task(stuck.run())
        for _ in range(1000):
            if stuck.active:  # it holds the chunk
                break
            await asyncio.sleep(0.01)
        await stuck.shutdown(running)  # gone without acknowledging it, no restart of the store
        rescuer = Worker(store, engine, slots=1, heartbeat_s=0.05)
        rescuing = asyncio.create_task(rescuer.run())
        try:
            for _ in range(400):
                record = await store.get_task(task.id)
                if record is not None and record.status == TaskStatus.READY:
                    break
                await asyncio.sleep(0.05)
        finally:
            await rescuer.shutdown(rescuing)
    assert record is not None and (record.status, record.done, record.ok) == (TaskStatus.READY, 6, 6)
    items, _ = await store.results(task.id, ResultFilter(), None, 100)
    assert [item["index"] for item in items] == list(range(6))


async def test_a_second_serve_on_the_same_database_exits_3_and_touches_nothing(
    tmp_path: Path, target: Target
) -> None:
    db = tmp_path / "one.db"
    first = await start_service(tmp_path, "serve", "--db", str(db), env=ENV)
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as api:
            urls = farm(target, 300, "/slow?s=0.3", block=3)
            task_id = await submit(api, urls)
            await wait_for(api, task_id, ("running",), 60)
            second = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "linkprobe", "serve", "--db", str(db), "--port", "0",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await asyncio.wait_for(second.communicate(), 60)
            assert second.returncode == 3
            assert "in use by another linkprobe process" in err.decode()
            await wait_for(api, task_id, ("ready",), 120)  # its running chunks were not requeued
            await assert_exactly_one_result_per_url(api, task_id, urls)
            assert (await api.get("/readyz")).json() == {"status": "ready"}
    finally:
        await first.stop()
    with sqlite3.connect(db) as opened:  # no chunk was handed out twice
        assert opened.execute("SELECT max(deliveries) FROM chunks").fetchone() == (1,)


async def test_a_one_url_task_is_not_kept_waiting_behind_hanging_ones(
    client: httpx.AsyncClient, target: Target
) -> None:
    # Four hosts: 32 connections hang (per-host limit) and the chunks holding the others wait.
    hanging = [target.url("/hang", host=f"127.13.0.{i % 4 + 1}") for i in range(2500)]
    response = await client.post("/api/v1/tasks", json={"urls": hanging, "options": {"timeout": 60}})
    assert response.status_code == 202, response.text
    big = response.json()["id"]
    await wait_for(client, big, ("running",), 60)
    small = await submit(client, [target.url("/status/200", host="127.13.1.1")])
    # Every regular slot holds a hanging chunk: the small task still gets its turn (condition wait).
    await wait_for(client, small, ("ready",), 60)
    await assert_exactly_one_result_per_url(client, small, [target.url("/status/200", host="127.13.1.1")])
    assert (await task_of(client, big))["progress"]["done"] == 0
    assert (await client.delete(f"/api/v1/tasks/{big}")).status_code == 204
