"""Server-sent events of a task, read by a real client from a real `linkprobe serve`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.api.test_tasks import submit
from tests.conftest import STORES, Target, service_on

# Small chunks and one worker: a task spans several chunks, so progress has steps to show even
# where results land once per chunk. The keepalive is shortened so a test can see several.
# 10 URLs in flight: a task of 60 URLs of 0.3 s lasts about 1.8 s however many chunks a worker holds.
ENV = {
    "LINKPROBE_CHUNK_SIZE": "10", "LINKPROBE_WORKERS": "1", "LINKPROBE_SSE_KEEPALIVE_S": "0.3",
    "LINKPROBE_CONCURRENCY": "10",
}  # fmt: skip


@pytest.fixture(scope="module", params=STORES)
async def events_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    tmp = tmp_path_factory.mktemp(f"events-{request.param}")
    async with (
        service_on(request.param, tmp, ENV) as running,
        httpx.AsyncClient(base_url=running.url, timeout=30) as client,
    ):
        yield client


Event = tuple[str, Any]  # (event name, data) or ("comment", text)


async def read_stream(api: httpx.AsyncClient, task_id: str, on_first: Any = None) -> list[Event]:
    """Every event and comment until the server ends the stream (a test timeout if it never does)."""
    events: list[Event] = []
    async with asyncio.timeout(60), api.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        async for line in response.aiter_lines():
            if line.startswith(":"):
                events.append(("comment", line[1:].strip()))
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if on_first is not None and len(events) == 1:
                    await on_first()
    return events


async def test_events_show_live_progress_then_done_and_close(
    events_api: httpx.AsyncClient, target: Target
) -> None:
    urls = [target.url("/slow?s=0.3", host=f"127.0.5.{i + 1}") for i in range(60)]  # six chunks
    task = await submit(events_api, urls)
    events = await read_stream(events_api, task["id"])  # returns only because the server closed it
    named = [(name, data) for name, data in events if name != "comment"]
    assert named[-1][0] == "done" and named[-1][1]["status"] == "ready"
    assert named[-1][1]["progress"]["done"] == 60
    assert all(name == "progress" for name, _ in named[:-1])
    dones = [data["progress"]["done"] for name, data in named[:-1]]
    assert dones == sorted(dones)
    assert len({d for d in dones if 0 < d < 60}) >= 2, dones  # progress moved while it ran


async def test_a_quiet_task_gets_keepalive_comments(events_api: httpx.AsyncClient, target: Target) -> None:
    task = await submit(events_api, [target.url("/slow?s=2")])
    events = await read_stream(events_api, task["id"])
    assert events[-1][0] == "done"
    quiet = [data for name, data in events[:-1] if name == "comment"]
    assert len(quiet) >= 2 and set(quiet) == {"keepalive"}


async def test_a_deleted_task_ends_its_stream_with_deleted(
    events_api: httpx.AsyncClient, target: Target
) -> None:
    task = await submit(events_api, [target.url("/slow?s=30")], options={"timeout": 60})

    async def delete() -> None:
        assert (await events_api.delete(f"/api/v1/tasks/{task['id']}")).status_code == 204

    events = await read_stream(events_api, task["id"], on_first=delete)
    named = [name for name, _ in events if name != "comment"]
    assert named[0] == "progress" and named[-1] == "deleted"


async def test_a_cancelled_task_ends_its_stream_with_done_cancelled(
    events_api: httpx.AsyncClient, target: Target
) -> None:
    """The cancel is one step on every store: the stream never reports the task `ready`."""
    urls = [target.url("/slow?s=30", host=f"127.0.6.{i + 1}") for i in range(30)]  # three chunks
    task = await submit(events_api, urls, options={"timeout": 60})

    async def cancel() -> None:
        assert (await events_api.post(f"/api/v1/tasks/{task['id']}/cancel")).status_code == 200

    events = await read_stream(events_api, task["id"], on_first=cancel)
    named = [(name, data) for name, data in events if name != "comment"]
    assert named[-1][0] == "done" and named[-1][1]["status"] == "cancelled"
    assert "ready" not in {data["status"] for _, data in named}
    assert named[-1][1]["progress"]["cancelled"] == 30
