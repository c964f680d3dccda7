"""Schedules: two API app instances on one store start each run exactly once, and after both were
stopped a missed run starts once; the routes create, read, pause, resume and delete."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from linkprobe.api import create_app
from linkprobe.settings import Settings
from linkprobe.store import Store
from linkprobe.store.redis import RedisStore
from linkprobe.store.sqlite import SQLiteStore
from tests.conftest import RedisServer, wait_for


def replica_store(kind: str, tmp_path: Path, redis_url: str, first: bool) -> tuple[Settings, Store]:
    """One replica's settings and store: on SQLite the second is a follower of the file (one
    process serves a file; a replica beside it shares it as serve's worker processes do)."""
    if kind == "sqlite":
        settings = Settings(db=tmp_path / "schedules.db")
        return settings, SQLiteStore(settings.db, follower=not first)
    settings = Settings(redis_url=redis_url)
    return settings, RedisStore(redis_url)


@contextlib.asynccontextmanager
async def replicas(kind: str, tmp_path: Path, redis_url: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two API apps (no workers) on one store, each with its Scheduler, while inside."""
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for first in (True, False):
            settings, store = replica_store(kind, tmp_path, redis_url, first)
            app = create_app(settings, store, embedded_worker=False)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            clients.append(
                await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1"))
            )
        yield clients


@pytest.fixture(params=["sqlite", "redis"])
def kind(request: pytest.FixtureRequest, redis_server: RedisServer) -> str:
    redis_server.flush()
    return str(request.param)


async def runs_of(client: httpx.AsyncClient, schedule_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = (await client.get(f"/api/v1/schedules/{schedule_id}")).json()["runs"]
    return runs


async def tasks_of(client: httpx.AsyncClient, schedule_id: str) -> list[dict[str, Any]]:
    """Every task of the schedule, from the task list (each run is a task that knows its schedule)."""
    items = (await client.get("/api/v1/tasks", params={"limit": 200})).json()["items"]
    return [task for task in items if task.get("schedule") == schedule_id]


async def test_two_replicas_start_each_run_once_and_catch_up_once(
    kind: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    body = {
        "task": {"urls": ["http://127.0.0.1:9/"], "name": "every second"},
        "period": {"every": "1s"},
        "keep": 100,
    }
    async with replicas(kind, tmp_path, redis_server.url) as (one, two):
        made = await one.post("/api/v1/schedules", json=body)
        assert made.status_code == 201, made.text
        schedule = made.json()
        assert made.headers["location"] == f"/api/v1/schedules/{schedule['id']}"

        async def three_runs() -> bool:
            return len(await runs_of(two, schedule["id"])) >= 3

        await wait_for(three_runs, "three runs")
    stopped = datetime.now(UTC)
    async with replicas(kind, tmp_path, redis_server.url) as (one, _):
        before = await runs_of(one, schedule["id"])
        tasks = await tasks_of(one, schedule["id"])
    assert len(tasks) == len(before) and len({run["due"] for run in before}) == len(before)  # once each
    assert {run["task_id"] for run in before} == {task["id"] for task in tasks}
    # Two periods and more pass with both replicas down; on their return one run catches up.
    await wait_for(lambda: datetime.now(UTC) > stopped + timedelta(seconds=3.2), "three missed periods")
    async with replicas(kind, tmp_path, redis_server.url) as (one, two):
        back = datetime.now(UTC)

        async def caught_up() -> bool:
            return len(await runs_of(one, schedule["id"])) > len(before)

        await wait_for(caught_up, "the catch-up run")
        after = (await runs_of(two, schedule["id"]))[len(before) :]
        tasks = await tasks_of(two, schedule["id"])
    missed = [run for run in after if datetime.fromisoformat(run["due"]) <= back]
    assert len(missed) == 1  # the latest due time missed, once: not one per missed period
    assert datetime.fromisoformat(missed[0]["due"]) > stopped + timedelta(seconds=2)
    assert len(tasks) == len({run["due"] for run in before + after})
    first, second = tasks[-1], tasks[-2]  # oldest last: each run re-runs the one before it
    assert second["rerun_of"] == first["id"]


async def test_schedule_routes(kind: str, tmp_path: Path, redis_server: RedisServer) -> None:
    headers = {"X-Token": "s3cret"}
    body = {
        "task": {"urls": ["http://127.0.0.1:9/"], "options": {"headers": headers}},
        "period": {"cron": "0 3 * * *"},
        "keep": 2,
        "name": "nightly",
    }
    async with replicas(kind, tmp_path, redis_server.url) as (one, two):
        schedule = (await one.post("/api/v1/schedules", json=body)).json()
        assert schedule["task"]["options"]["headers"] == {"X-Token": "[redacted]"}
        assert (schedule["name"], schedule["keep"], schedule["paused"], schedule["runs"]) == (
            "nightly",
            2,
            False,
            [],
        )
        assert datetime.fromisoformat(schedule["next_run"]).hour == 3
        url = f"/api/v1/schedules/{schedule['id']}"
        assert "s3cret" not in (await two.get(url)).text
        assert [s["id"] for s in (await two.get("/api/v1/schedules")).json()["items"]] == [schedule["id"]]
        paused = (await two.post(f"{url}/pause")).json()
        assert paused["paused"] and paused["next_run"] is None
        assert not (await one.post(f"{url}/resume")).json()["paused"]
        bad = await one.post("/api/v1/schedules", json={**body, "period": {"every": "1x"}})
        assert bad.status_code == 422 and "every" in str(bad.json()["detail"])
        assert (await one.delete(url)).status_code == 204
        assert (await two.get(url)).status_code == 404
