"""Header secrets end to end: a real service sends them to a real target while the task runs, and
once it is ready neither the store's data (SQLite file and WAL, every Redis key) nor the log holds
them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_tasks import wait_status
from tests.conftest import RedisServer, Target, start_service
from tests.store.test_secrets_and_owners import raw_redis, raw_sqlite

SECRET = "tok-e2e-9c4d1f0b8a"


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_the_probe_sends_header_secrets_and_the_store_forgets_them_when_the_task_ends(
    tmp_path: Path, target: Target, kind: str, request: pytest.FixtureRequest
) -> None:
    db, env = tmp_path / "secrets.db", {}
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        env["LINKPROBE_REDIS_URL"] = server.url
    service = await start_service(tmp_path, "serve", "--db", str(db), env=env)
    token = f"e2e-{kind}"
    headers = {"Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}"}
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            created = await client.post(
                "/api/v1/tasks",
                json={"urls": [target.url(f"/headers/{token}")], "options": {"headers": headers}},
            )
            assert created.status_code == 202, created.text
            task = await ready(client, created.json()["id"])
            stored = raw_sqlite(db) if kind == "sqlite" else await raw_redis(env["LINKPROBE_REDIS_URL"])
    finally:
        await service.stop()
    seen = target.headers[token]
    assert (seen["Authorization"], seen["Cookie"]) == (headers["Authorization"], headers["Cookie"])
    assert task["options"]["headers"] == {"Authorization": "[redacted]", "Cookie": "[redacted]"}
    assert task["id"].encode() in stored  # the task itself is still there
    assert SECRET.encode() not in stored
    assert SECRET not in service.log.read_text()


async def ready(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    return await wait_status(client, task_id)
