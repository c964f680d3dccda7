"""A crawl on Redis survives a worker killed (SIGKILL) mid-crawl: another worker takes its chunks
over and the crawl ends with exactly one result per unique URL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.conftest import RedisServer, Service, free_port, serving, start_service, start_worker
from tests.distributed.test_faults import ENV, held_by, wait_until

PAGES = 120  # a binary tree of pages: /p/0.html links to /p/1.html and /p/2.html, and so on


@dataclass
class Tree:
    port: int
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def expected(self) -> set[str]:
        pages = {self.url(f"/p/{n}.html") for n in range(PAGES)}
        gone = {self.url(f"/gone/{n}.html") for n in range(PAGES)}
        external = {self.url(f"/x/{n}.html", "127.0.0.3") for n in range(10)}
        return pages | gone | external | {"mailto:tree@site.example"}


def tree_page(tree: Tree, n: int) -> str:
    children = [f'<a href="/p/{c}.html">child</a>' for c in (2 * n + 1, 2 * n + 2) if c < PAGES]
    return "\n".join([
        "<html><body>", *children, '<a href="/p/0.html">root</a>', f'<a href="/gone/{n}.html">gone</a>',
        f'<a href="{tree.url(f"/x/{n % 10}.html", "127.0.0.3")}">external</a>',
        '<a href="mailto:tree@site.example">mail</a>', "</body></html>",
    ])  # fmt: skip


@pytest.fixture
async def tree() -> AsyncIterator[Tree]:
    state = Tree(free_port())

    async def serve(request: web.Request) -> web.Response:
        key = f"{request.host.split(':')[0]}{request.path}"
        state.hits[key] = state.hits.get(key, 0) + 1
        # Each page's children and its /gone/ page make one chunk: the children answer (and are
        # discovered) long before the /gone/ page does, so a worker killed while it holds a chunk
        # has mostly expanded some of its pages already, and the chunk's redelivery expands them again.
        await asyncio.sleep(2.0 if request.path.startswith("/gone/") else 0.2)
        if request.path.startswith("/p/"):
            return web.Response(text=tree_page(state, int(request.path[3:-5])), content_type="text/html")
        if request.path.startswith("/x/"):
            return web.Response(text="external", content_type="text/html")
        return web.Response(status=404, text="not found")

    async with serving(serve, state.port):
        yield state


@pytest.fixture
async def api(tmp_path: Path, private_redis: RedisServer) -> AsyncIterator[Service]:
    service = await start_service(tmp_path, "api", "--redis-url", private_redis.url, env=ENV, name="api")
    yield service
    await service.stop()


async def task_of(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = (await client.get(f"/api/v1/tasks/{task_id}")).json()
    return task


async def test_a_worker_killed_mid_crawl_loses_nothing(
    tmp_path: Path, tree: Tree, api: Service, private_redis: RedisServer
) -> None:
    env = {**ENV, "LINKPROBE_CHUNK_SIZE": "5"}
    workers = [await start_worker(tmp_path, private_redis.url, env) for _ in range(2)]
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            body = {"crawl": {"start": tree.url("/p/0.html")}, "options": {"retries": 0}}
            task = (await client.post("/api/v1/tasks", json=body)).json()
            for _ in range(600):
                progress = (await task_of(client, task["id"]))["progress"]
                if progress["pages"] >= 20:
                    break
                await asyncio.sleep(0.05)
            await wait_until(
                lambda: any(held_by(private_redis.port, w.pid) > 0 for w in workers), "a worker holding work"
            )
            victim = next(w for w in workers if held_by(private_redis.port, w.pid) > 0)
            before = (await task_of(client, task["id"]))["progress"]
            assert before["done"] < before["total"] and before["pages"] < 2 * PAGES, "killed mid-crawl"
            victim.kill()  # SIGKILL while it holds chunks: reclaimed by the other worker
            await victim.wait()
            workers.append(await start_worker(tmp_path, private_redis.url, env))
            final = await wait_ready(client, task["id"])
            stream = await client.get(f"/api/v1/tasks/{task['id']}/results", params={"format": "ndjson"})
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.terminate()
                await worker.wait()
    rows = [json.loads(line) for line in stream.text.splitlines()]
    assert [r["index"] for r in rows] == list(range(len(rows)))
    assert sorted(r["url"] for r in rows) == sorted(tree.expected()), "exactly one result per unique URL"
    progress = final["progress"]
    assert progress["total"] == progress["done"] == len(rows) and progress["total"] > before["total"]
    assert progress["pages"] == 2 * PAGES  # each page counted once, redelivered or not
    by_url = {r["url"]: r for r in rows}
    assert all(by_url[tree.url(f"/p/{n}.html")]["ok"] for n in range(PAGES))
    assert all(by_url[tree.url(f"/gone/{n}.html")]["status_code"] == 404 for n in range(PAGES))
    assert by_url["mailto:tree@site.example"]["error"]["kind"] == "unsupported"
    assert by_url[tree.url("/p/0.html")]["sources"]["total"] == PAGES  # every page links home, itself too
    reread = [n for n in range(PAGES) if tree.hits[f"127.0.0.1/p/{n}.html"] > 1]
    assert reread, "the killed worker's pages were read again by another"


async def wait_ready(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    for _ in range(1200):
        task = await task_of(client, task_id)
        if task["status"] == "ready":
            return task
        await asyncio.sleep(0.1)
    raise AssertionError(f"the crawl never ended: {task}")
