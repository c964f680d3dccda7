"""Crash safety of the service on each store: kill -9 mid-task (`linkprobe serve` on SQLite; the
API and its worker on Redis), restart on the same store, nothing lost or doubled."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from linkprobe.worker import SERVE_WORKER_NICENESS
from tests.api.test_tasks import wait_status
from tests.conftest import STORES, Target, service_on, start_service, wait_for

# On Redis the restarted worker takes over the dead one's chunks once they sat idle this long.
ENV = {"LINKPROBE_CHUNK_SIZE": "50", "LINKPROBE_WORKERS": "2", "LINKPROBE_RECLAIM_IDLE_S": "1.5"}


@pytest.mark.parametrize("kind", STORES)
async def test_kill_9_mid_task_then_restart_finishes_exactly_once(
    tmp_path: Path, target: Target, kind: str
) -> None:
    urls = [target.url("/slow?s=0.05", host=f"127.0.{i // 200}.{i % 200 + 1}") for i in range(2000)]
    async with (
        service_on(kind, tmp_path, ENV) as first,
        httpx.AsyncClient(base_url=first.url, timeout=30) as api,
    ):
        task = (await api.post("/api/v1/tasks", json={"urls": urls})).json()
        done = 0

        async def progressed() -> bool:
            nonlocal done
            done = int((await api.get(f"/api/v1/tasks/{task['id']}")).json()["progress"]["done"])
            return done >= 200

        await wait_for(progressed, "200 URLs probed")
        assert 0 < done < len(urls), "kill -9 must land mid-task"
        await first.stop(kill=True)  # the API and the process that probes (serve, or the worker)

    async with (
        service_on(kind, tmp_path, ENV) as second,
        httpx.AsyncClient(base_url=second.url, timeout=30) as api,
    ):
        final = await wait_status(api, task["id"])
        stream = await api.get(f"/api/v1/tasks/{task['id']}/results", params={"format": "ndjson"})
    rows = [json.loads(line) for line in stream.text.splitlines()]
    assert [r["index"] for r in rows] == list(range(len(urls)))
    assert [r["url"] for r in rows] == urls
    assert final["progress"] == {
        "total": 2000,
        "done": 2000,
        "ok": 2000,
        "broken": 0,
        "unsupported": 0,
        "cancelled": 0,
        "pages": None,
    }


@pytest.mark.parametrize("kind", STORES)
async def test_a_202_submission_survives_kill_9(tmp_path: Path, target: Target, kind: str) -> None:
    async with (
        service_on(kind, tmp_path, {}, workers=False) as first,  # no workers: the task stays queued
        httpx.AsyncClient(base_url=first.url) as api,
    ):
        response = await api.post(
            "/api/v1/tasks",
            content="\n".join([target.url("/status/200")] * 10),
            headers={"content-type": "text/plain"},
        )
        assert response.status_code == 202
        await first.stop(kill=True)  # immediately after the 202
    async with service_on(kind, tmp_path, {}) as second, httpx.AsyncClient(base_url=second.url) as api:
        final = await wait_status(api, response.json()["id"])
    assert final["progress"]["ok"] == 10


def _children(pid: int) -> list[int]:
    """The worker processes of a serve (spawned; not multiprocessing's resource tracker)."""
    with open(f"/proc/{pid}/task/{pid}/children") as listed:
        pids = [int(child) for child in listed.read().split()]
    return [child for child in pids if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


async def test_serve_worker_processes_end_with_it_and_a_dead_one_is_not_ready(tmp_path: Path) -> None:
    service = await start_service(
        tmp_path, "serve", "--db", str(tmp_path / "w.db"), env={"LINKPROBE_WORKER_PROCESSES": "2"}
    )
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as api:
            await wait_for(lambda: len(_children(service.process.pid)) == 2, "the two worker processes")
            first, second = _children(service.process.pid)

            async def ready() -> bool:  # each worker process has started (published once)
                return (await api.get("/readyz")).status_code == 200

            await wait_for(ready, "/readyz to say ready")
            os.kill(first, signal.SIGKILL)

            async def not_ready() -> bool:
                answer = await api.get("/readyz")
                return answer.status_code == 503 and f"worker process {first} ended" in answer.text

            await wait_for(not_ready, "/readyz to say a worker process ended")
    finally:
        await service.stop(kill=True)  # kill -9: the other worker process must end with it
    await wait_for(lambda: not os.path.exists(f"/proc/{second}") or _zombie(second), "the orphan to end")


async def test_serve_worker_processes_yield_the_cpu_to_the_api(tmp_path: Path) -> None:
    """A poll of the task view must not wait behind two busy workers: they run at a lower priority."""
    service = await start_service(
        tmp_path, "serve", "--db", str(tmp_path / "w.db"), env={"LINKPROBE_WORKER_PROCESSES": "2"}
    )
    try:
        lower = _nice(service.process.pid) + SERVE_WORKER_NICENESS

        def both_lower() -> bool:  # set by each worker as it starts
            return [_nice(child) for child in _children(service.process.pid)] == [lower] * 2

        await wait_for(both_lower, f"two worker processes at nice {lower}")
    finally:
        await service.stop()


def _nice(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rpartition(")")[2].split()[16])  # field 19, after the command's name


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] == "Z"
