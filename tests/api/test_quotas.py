"""Per-key quotas against a real `linkprobe api` on each store: 20 submitters at once never pass a
limit together, and a retry answered by its Idempotency-Key's task is charged nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_auth import make_key
from tests.conftest import RedisServer, Service, start_service

SUBMITTERS = 20


async def quota_service(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest, env: dict[str, str], keys: int
) -> tuple[Service, list[str]]:
    """`linkprobe api` with keys required (no workers: tasks stay pending) and `keys` new keys."""
    db = tmp_path / "quota.db"
    env = {"LINKPROBE_AUTH": "required", **env}
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        env["LINKPROBE_REDIS_URL"] = server.url
        made = [await asyncio.to_thread(make_key, ("--redis-url", server.url), f"k{n}") for n in range(keys)]
    else:
        made = [await asyncio.to_thread(make_key, db, f"k{n}") for n in range(keys)]
    return await start_service(tmp_path, "api", "--db", str(db), env=env, name="api"), made


@pytest.fixture(params=["sqlite", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def limited(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Service, list[str]]]:
    env = {"LINKPROBE_QUOTA_TASKS_IN_FLIGHT": "5", "LINKPROBE_QUOTA_URLS_PER_DAY": "12"}
    service, keys = await quota_service(tmp_path, kind, request, env, 2)
    yield service, keys
    await service.stop()


async def at_once(service: Service, key: str, urls: int) -> Counter[int]:
    """SUBMITTERS submissions of `urls` URLs each, all sent together: the count of each status."""
    async with httpx.AsyncClient(
        base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=60,
        limits=httpx.Limits(max_connections=SUBMITTERS),
    ) as client:  # fmt: skip
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/tasks", json={"urls": [f"http://127.0.0.1:9/{n}/{i}" for i in range(urls)]}
                )
                for n in range(SUBMITTERS)
            )
        )
    return Counter(answer.status_code for answer in answers)


async def test_simultaneous_submissions_never_pass_a_quota_together(
    limited: tuple[Service, list[str]],
) -> None:
    service, (one, other) = limited
    # 1 URL each: the 5 tasks in flight bind (5 URLs of 12); 4 URLs each: the day's 12 URLs bind.
    assert await at_once(service, one, 1) == {202: 5, 429: SUBMITTERS - 5}
    assert await at_once(service, other, 4) == {202: 3, 429: SUBMITTERS - 3}


async def test_an_idempotent_retry_at_the_quotas_edge_is_charged_nothing(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    service, [key] = await quota_service(tmp_path, kind, request, {"LINKPROBE_QUOTA_URLS_PER_DAY": "8000"}, 1)
    body = {"urls": [f"http://127.0.0.1:9/{i}" for i in range(8000)]}  # the whole day's quota
    try:
        async with httpx.AsyncClient(
            base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            first = await client.post("/api/v1/tasks", json=body, headers={"Idempotency-Key": "edge"})
            retries = await asyncio.gather(
                *(
                    client.post("/api/v1/tasks", json=body, headers={"Idempotency-Key": "edge"})
                    for _ in range(3)
                )
            )
            more = await client.post("/api/v1/tasks", json={"urls": ["http://127.0.0.1:9/more"]})
    finally:
        await service.stop()
    assert first.status_code == 202, first.text
    assert [r.status_code for r in retries] == [202] * 3, [r.text for r in retries]
    assert {r.json()["id"] for r in retries} == {first.json()["id"]}
    assert more.status_code == 429 and "URLs per day" in more.json()["detail"]  # charged once, in full


async def test_a_rerun_is_charged_as_a_submission(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    env = {"LINKPROBE_QUOTA_URLS_PER_DAY": "8"}
    service, [key] = await quota_service(tmp_path, kind, request, env, 1)
    try:
        async with httpx.AsyncClient(
            base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            first = await client.post(
                "/api/v1/tasks", json={"urls": [f"http://127.0.0.1:9/{i}" for i in range(5)]}
            )
            again = await client.post(f"/api/v1/tasks/{first.json()['id']}/rerun")
            smaller = await client.post("/api/v1/tasks", json={"urls": ["http://127.0.0.1:9/a"] * 3})
    finally:
        await service.stop()
    assert first.status_code == 202, first.text
    assert again.status_code == 429 and "URLs per day" in again.json()["detail"], again.text  # 5 + 5 > 8
    assert smaller.status_code == 202, smaller.text  # the refused re-run used up nothing: 5 + 3 <= 8
