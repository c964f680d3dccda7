"""Schedules: two API app instances on one store start each run exactly once, and after both were
stopped a missed run starts once; the routes create, read, pause, resume and delete."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from linkprobe import webhooks
from linkprobe.api import create_app
from linkprobe.api import schedules as api_schedules
from linkprobe.settings import Settings
from linkprobe.store import Store
from linkprobe.store.redis import RedisStore
from linkprobe.store.sqlite import SQLiteStore
from linkprobe.webhooks import Backoff
from tests.conftest import RedisServer, Target, free_port, serving, wait_for


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
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
                )
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


@contextlib.asynccontextmanager
async def serving_app(settings: Settings, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, store)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client


async def test_a_schedule_webhook_is_signed_retried_and_its_deliveries_readable(
    kind: str, tmp_path: Path, redis_server: RedisServer, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_schedules, "WEBHOOK_BACKOFF", Backoff(first_s=0.05, max_s=0.05, total_s=10))
    received: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        return web.Response(status=500 if len(received) == 1 else 204)  # the first attempt fails

    port = free_port()
    settings, store = replica_store(kind, tmp_path, redis_server.url, True)
    settings = settings.model_copy(update={"worker_processes": 0, "allow_private": True})
    body = {"task": {"urls": [target.url("/status/200")]}, "period": {"every": "1s"}, "keep": 3,
            "webhook": {"url": f"http://127.0.0.1:{port}/hook"}}  # fmt: skip
    async with serving(receive, port, "127.0.0.1", "POST"), serving_app(settings, store) as api:
        made = (await api.post("/api/v1/schedules", json=body)).json()
        secret = made["webhook_secret"]
        assert secret.startswith("whsec_") and made["webhook"]["on"] == "end"
        url = f"/api/v1/schedules/{made['id']}"
        assert "webhook_secret" not in (await api.get(url)).json()  # shown once

        async def delivered() -> bool:
            items = (await api.get(f"{url}/webhook/deliveries")).json()["items"]
            return bool(items) and items[0]["delivered"]

        await wait_for(delivered, "a delivery accepted")
        first = (await api.get(f"{url}/webhook/deliveries")).json()["items"][0]
        assert [a["status"] for a in first["attempts"]] == [500, 204]

        async def two_runs_told() -> bool:
            return len((await api.get(f"{url}/webhook/deliveries")).json()["items"]) >= 3

        await wait_for(two_runs_told, "three runs told")
        told = [d["task_id"] for d in (await api.get(f"{url}/webhook/deliveries")).json()["items"]]
        assert len(told) == len(set(told))  # each run once
    for headers, sent in received[:2]:
        webhooks.verify(secret, headers, sent)
    assert received[0][0]["webhook-id"] == received[1][0]["webhook-id"] == first["id"]
    data = json.loads(received[1][1])["data"]
    assert (data["task_id"], data["schedule_id"], data["counts"]["ok"]) == (first["task_id"], made["id"], 1)


async def test_a_webhook_to_a_private_address_is_refused_by_default(
    kind: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    settings, store = replica_store(kind, tmp_path, redis_server.url, True)
    body = {
        "task": {"urls": ["http://127.0.0.1:9/"]},  # never run (hourly), blocked anyway
        "period": {"every": "1h"},
        "webhook": {"url": "http://10.0.0.1/hook"},
    }
    async with serving_app(settings.model_copy(update={"worker_processes": 0}), store) as api:
        refused = await api.post("/api/v1/schedules", json=body)
        assert refused.status_code == 422 and "10.0.0.1" in refused.json()["detail"]
        assert (await api.get("/api/v1/schedules")).json()["items"] == []


async def test_a_task_webhook_is_told_once_when_the_task_ends(
    kind: str, tmp_path: Path, redis_server: RedisServer, target: Target
) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        return web.Response(status=200)

    port = free_port()
    settings, store = replica_store(kind, tmp_path, redis_server.url, True)
    update = {"worker_processes": 0, "allow_private": True, "public_url": "https://lp.example/base"}
    settings = settings.model_copy(update=update)
    async with serving(receive, port, "127.0.0.1", "POST"), serving_app(settings, store) as api:
        task = (await api.post("/api/v1/tasks", json={"urls": [target.url("/status/404")]})).json()
        made = await api.post(
            f"/api/v1/tasks/{task['id']}/webhook", json={"url": f"http://127.0.0.1:{port}/hook"}
        )
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]

        async def told() -> bool:
            items = (await api.get(f"/api/v1/tasks/{task['id']}/webhook/deliveries")).json()["items"]
            return bool(items) and items[0]["delivered"]

        await wait_for(told, "the task's webhook told")
        assert (
            await api.post("/api/v1/tasks/nope/webhook", json={"url": "https://a.example/"})
        ).status_code == 404
    assert len(received) == 1
    webhooks.verify(secret, received[0][0], received[0][1])
    assert received[0][0]["user-agent"].startswith("linkprobe-webhook/")
    data = json.loads(received[0][1])["data"]
    assert data["links"]["changes"] == f"https://lp.example/base/api/v1/tasks/{task['id']}/changes"
    assert (data["task_id"], data["status"], data["counts"]["broken"], data["schedule_id"]) == (
        task["id"],
        "ready",
        1,
        None,
    )


async def test_a_task_webhook_to_a_private_address_is_refused_by_default(
    kind: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    settings, store = replica_store(kind, tmp_path, redis_server.url, True)
    async with serving_app(settings.model_copy(update={"worker_processes": 0}), store) as api:
        task = (await api.post("/api/v1/tasks", json={"urls": ["http://127.0.0.1:9/"]})).json()  # blocked
        refused = await api.post(
            f"/api/v1/tasks/{task['id']}/webhook", json={"url": "http://127.0.0.1:1/hook"}
        )
        assert refused.status_code == 422 and "127.0.0.1" in refused.json()["detail"]
        for name in ("localhost", "localhost.", "hooks.localhost"):
            by_name = await api.post(f"/api/v1/tasks/{task['id']}/webhook", json={"url": f"http://{name}:1/"})
            assert by_name.status_code == 422, by_name.text
            assert f"{name} resolves to 127.0.0.1" in by_name.json()["detail"]


async def test_a_schedule_keeps_its_newest_runs_and_counts_their_changes(
    kind: str, tmp_path: Path, redis_server: RedisServer, target: Target
) -> None:
    settings, store = replica_store(kind, tmp_path, redis_server.url, True)
    settings = settings.model_copy(update={"worker_processes": 0, "allow_private": True})
    body = {"task": {"urls": [target.url("/status/200")]}, "period": {"every": "1s"}, "keep": 2}
    async with serving_app(settings, store) as api:
        url = f"/api/v1/schedules/{(await api.post('/api/v1/schedules', json=body)).json()['id']}"
        seen: list[str] = []

        async def five_runs() -> bool:
            for run in (await api.get(url)).json()["runs"]:
                seen.extend([run["task_id"]] if run["task_id"] not in seen else [])
            return len(seen) >= 5

        await wait_for(five_runs, "five runs")
        runs = (await api.get(url)).json()["runs"]
        assert 2 <= len(runs) <= 4  # the newest 2, and a run still going with the one before it
        assert (await api.get(f"/api/v1/tasks/{seen[0]}")).status_code == 404  # dropped: deleted

        async def counted() -> bool:
            shown = (await api.get(url)).json()["runs"]
            return any(run["changes"] is not None for run in shown)

        await wait_for(counted, "a run's changes counted")
        run = next(run for run in (await api.get(url)).json()["runs"] if run["changes"] is not None)
        assert run["changes"]["broke"] == 0 and run["progress"]["ok"] == 1
