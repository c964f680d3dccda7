"""Distributed mode under faults: real worker processes, API replicas and a private redis-server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from linkprobe.store.redis_schema import GROUP, QUEUE
from tests.api.test_tasks import wait_status
from tests.conftest import RedisServer, Service, Target, start_service, start_worker

ENV = {
    "LINKPROBE_CHUNK_SIZE": "50",
    "LINKPROBE_RECLAIM_IDLE_S": "1.5",
    "LINKPROBE_MAX_DELIVERIES": "3",
    "LINKPROBE_RETENTION_S": "600",
}


def farm(target: Target, count: int, path: str = "/slow?s=0.02") -> list[str]:
    return [target.url(path, host=f"127.0.{i // 200}.{i % 200 + 1}") for i in range(count)]


@pytest.fixture
async def api(tmp_path: Path, private_redis: RedisServer) -> AsyncIterator[Service]:
    service = await start_service(tmp_path, "api", "--redis-url", private_redis.url, env=ENV, name="api")
    yield service
    await service.stop()


async def results_of(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    stream = await client.get(f"/api/v1/tasks/{task_id}/results", params={"format": "ndjson"})
    return [json.loads(line) for line in stream.text.splitlines()]


def assert_exactly_once(task: dict[str, Any], rows: list[dict[str, Any]], urls: list[str]) -> None:
    assert [r["index"] for r in rows] == list(range(len(urls)))
    assert [r["url"] for r in rows] == urls
    progress = task["progress"]
    assert progress["done"] == progress["total"] == len(urls) == progress["ok"] + progress["broken"]
    assert sum(task["by_status"].values()) + sum(task["by_error"].values()) == len(urls)


async def wait_progress(client: httpx.AsyncClient, task_id: str, at_least: int) -> int:
    for _ in range(600):
        done: int = (await client.get(f"/api/v1/tasks/{task_id}")).json()["progress"]["done"]
        if done >= at_least:
            return done
        await asyncio.sleep(0.02)
    raise AssertionError(f"no progress past {at_least}")


def held_by(port: int, pid: int | None = None) -> int:
    """Chunks delivered and not yet acknowledged (all of them, or those of one worker process)."""
    summary: Any = redis.Redis(port=port, decode_responses=True).xpending(QUEUE, GROUP)
    if pid is None:
        return int(summary["pending"])
    mine = f"-{pid}-"  # consumer names are host-pid-nonce
    return sum(int(c["pending"]) for c in summary["consumers"] if mine in c["name"])


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def assert_in_flight(client: httpx.AsyncClient, task_id: str) -> None:
    progress = (await client.get(f"/api/v1/tasks/{task_id}")).json()["progress"]
    assert progress["done"] < progress["total"], "the fault must land while work is in flight"


async def test_kill_9_workers_repeatedly(
    tmp_path: Path, target: Target, api: Service, private_redis: RedisServer
) -> None:
    workers = [await start_worker(tmp_path, private_redis.url, ENV) for _ in range(2)]
    urls = farm(target, 3000, "/slow?s=0.5")  # slow enough that a worker holds work when it is killed
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        task = (await client.post("/api/v1/tasks", json={"urls": urls})).json()
        for round_ in range(3):
            await wait_progress(client, task["id"], 300 * (round_ + 1))
            await wait_until(
                lambda: any(held_by(private_redis.port, w.pid) > 0 for w in workers), "a worker holding work"
            )
            victim = next(w for w in workers if held_by(private_redis.port, w.pid) > 0)
            await assert_in_flight(client, task["id"])
            victim.kill()  # kill -9 while it holds chunks; they are reclaimed by the others
            await victim.wait()
            workers[workers.index(victim)] = await start_worker(tmp_path, private_redis.url, ENV)
        final = await wait_status(client, task["id"])
        rows = await results_of(client, task["id"])
    for worker in workers:
        worker.terminate()
        await worker.wait()
    assert_exactly_once(final, rows, urls)
    assert final["progress"]["ok"] == len(urls)


async def test_kill_9_redis_and_restart_on_its_data(
    tmp_path: Path, target: Target, api: Service, private_redis: RedisServer
) -> None:
    worker = await start_worker(tmp_path, private_redis.url, ENV)
    urls = farm(target, 2000, "/slow?s=0.5")
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        task = (await client.post("/api/v1/tasks", json={"urls": urls})).json()
        await wait_progress(client, task["id"], 300)
        # appendfsync everysec: wait until the task itself is in the AOF on disk
        await wait_until(lambda: in_aof(private_redis, task["id"]), "the task in the AOF")
        assert held_by(private_redis.port) > 0  # chunks are out with the worker
        await assert_in_flight(client, task["id"])
        private_redis.kill()
        assert (await client.get(f"/api/v1/tasks/{task['id']}")).status_code == 503
        private_redis.start()  # same port, same AOF
        final = await wait_status(client, task["id"])
        rows = await results_of(client, task["id"])
    worker.terminate()
    await worker.wait()
    assert_exactly_once(final, rows, urls)


def in_aof(server: RedisServer, task_id: str) -> bool:
    return any(task_id.encode() in f.read_bytes() for f in server.directory.rglob("*.aof*") if f.is_file())


async def test_two_api_replicas_share_tasks(
    tmp_path: Path, target: Target, private_redis: RedisServer
) -> None:
    first = await start_service(tmp_path, "api", "--redis-url", private_redis.url, env=ENV, name="a")
    second = await start_service(tmp_path, "api", "--redis-url", private_redis.url, env=ENV, name="b")
    worker = await start_worker(tmp_path, private_redis.url, ENV)
    urls = [*farm(target, 120, "/status/200"), "not a url"]
    try:
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=30) as a,
            httpx.AsyncClient(base_url=second.url, timeout=30) as b,  # events may be 15 s apart
        ):
            task = (await a.post("/api/v1/tasks", json={"urls": urls, "name": "shared"})).json()
            events: list[str] = []
            async with b.stream("GET", f"/api/v1/tasks/{task['id']}/events") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("event: "):
                        events.append(line[7:])
            assert events[-1] == "done"
            read = (await b.get(f"/api/v1/tasks/{task['id']}")).json()
            assert read["name"] == "shared" and read["status"] == "ready"
            assert_exactly_once(read, await results_of(b, task["id"]), urls)
            listed = (await b.get("/api/v1/tasks")).json()["items"]
            assert task["id"] in [t["id"] for t in listed]
            assert (await b.delete(f"/api/v1/tasks/{task['id']}")).status_code == 204
            assert (await a.get(f"/api/v1/tasks/{task['id']}")).status_code == 404
    finally:
        worker.terminate()
        await worker.wait()
        await first.stop()
        await second.stop()
    assert not redis.Redis(port=private_redis.port).keys(f"lp:{{{task['id']}}}*")


async def test_poison_chunk_is_dead_lettered_and_the_task_ends(
    tmp_path: Path, target: Target, api: Service, private_redis: RedisServer
) -> None:
    workers: list[asyncio.subprocess.Process] = [await start_worker(tmp_path, private_redis.url, ENV)]

    def kill_workers() -> None:  # the poison URL kills whichever worker probes it
        for worker in workers:
            if worker.returncode is None:
                os.kill(worker.pid, signal.SIGKILL)

    target.on_poison = kill_workers
    urls = [*farm(target, 100, "/status/200"), target.url("/poison"), *farm(target, 49, "/status/200")]
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            task = (await client.post("/api/v1/tasks", json={"urls": urls})).json()
            for _ in range(600):
                if workers[-1].returncode is not None:
                    workers.append(await start_worker(tmp_path, private_redis.url, ENV))  # the supervisor
                status = (await client.get(f"/api/v1/tasks/{task['id']}")).json()
                if status["status"] == "ready":
                    break
                await asyncio.sleep(0.1)
            final = await wait_status(client, task["id"])
            rows = await results_of(client, task["id"])
    finally:
        target.on_poison = None
        for worker in workers:
            if worker.returncode is None:
                worker.terminate()
                await worker.wait()
    assert_exactly_once(final, rows, urls)
    poisoned = rows[100:150]  # the poison URL's chunk: every URL gets the typed error
    assert {r["error"]["kind"] for r in poisoned} == {"internal"}
    assert "dead-lettered" in poisoned[0]["error"]["message"]
    # Probed on deliveries 1-3 (each killed its worker); the 4th delivery is dead-lettered unprobed.
    assert final["progress"]["ok"] == 100 and target.hits["/poison"] == 3
    dead: Any = redis.Redis(port=private_redis.port, decode_responses=True).xrange("lp:dead")
    assert [(f["task"], f["chunk"]) for _, f in dead] == [(task["id"], "2")]


async def test_redis_down_gives_503_and_workers_resume(
    tmp_path: Path, target: Target, api: Service, private_redis: RedisServer
) -> None:
    worker = await start_worker(tmp_path, private_redis.url, ENV)
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        private_redis.stop()
        down = await client.post("/api/v1/tasks", json={"urls": [target.url("/status/200")]})
        assert down.status_code == 503 and "unavailable" in down.json()["detail"]
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/api/v1/tasks")).status_code == 503
        log = tmp_path / "workers.log"
        await wait_until(lambda: log.read_text().count("store unavailable") >= 2, "the worker retrying")
        private_redis.start()
        urls = farm(target, 200, "/status/200")
        task = (await client.post("/api/v1/tasks", json={"urls": urls})).json()
        final = await wait_status(client, task["id"])
        assert (await client.get("/readyz")).status_code == 200
    worker.terminate()
    await worker.wait()
    assert worker.returncode == 0  # it waited and resumed rather than crashing
    assert final["progress"]["ok"] == 200


async def test_delete_stops_every_worker_and_removes_every_key(
    tmp_path: Path, target: Target, api: Service, private_redis: RedisServer
) -> None:
    workers = [await start_worker(tmp_path, private_redis.url, ENV) for _ in range(2)]
    target.active = 0
    urls = [target.url("/slow?s=30", host=f"127.0.8.{i}") for i in range(1, 121)]
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            task = (
                await client.post("/api/v1/tasks", json={"urls": urls, "options": {"timeout": 60}})
            ).json()
            for _ in range(1200):  # workers start slowly on a loaded machine
                if target.active >= 100:  # both workers hold in-flight chunks
                    break
                await asyncio.sleep(0.05)
            assert target.active >= 100
            client_keys = redis.Redis(port=private_redis.port)
            ttl = client_keys.ttl(f"lp:{{{task['id']}}}:task")
            assert ttl == -1  # retention (base.Retention) keeps a running task whatever its age
            assert (await client.delete(f"/api/v1/tasks/{task['id']}")).status_code == 204
            for _ in range(20):
                if target.active == 0:
                    break
                await asyncio.sleep(0.05)
            assert target.active == 0  # every worker stopped its probes within a second
            assert (await client.get(f"/api/v1/tasks/{task['id']}")).status_code == 404
    finally:
        for worker in workers:
            worker.terminate()
            await worker.wait()
    assert not client_keys.keys(f"lp:{{{task['id']}}}*")
    assert client_keys.xlen("lp:queue") == 0  # its chunks were acknowledged and removed


async def test_serve_with_redis_runs_api_and_workers(
    tmp_path: Path, target: Target, private_redis: RedisServer
) -> None:
    service = await start_service(tmp_path, "serve", "--redis-url", private_redis.url, env=ENV)
    urls = farm(target, 60, "/status/200")
    try:
        async with httpx.AsyncClient(base_url=service.url) as client:
            task = (await client.post("/api/v1/tasks", json={"urls": urls})).json()
            final = await wait_status(client, task["id"])
            assert_exactly_once(final, await results_of(client, task["id"]), urls)
    finally:
        await service.stop()
    assert redis.Redis(port=private_redis.port).exists(f"lp:{{{task['id']}}}:task")  # stored in Redis


async def test_worker_without_redis_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LINKPROBE_REDIS_URL"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "worker", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    assert process.returncode == 3 and b"needs Redis" in err
