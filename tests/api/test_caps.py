"""Operator caps on per-task options, through the real service on each store, for every way to submit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.api.test_tasks import submit, wait_status
from tests.conftest import STORES, Target, service_on

LOWERED = {"LINKPROBE_CAP_TIMEOUT": "5", "LINKPROBE_CAP_RETRIES": "1", "LINKPROBE_CONCURRENCY": "64"}


@pytest.fixture(scope="module", params=STORES)
async def lowered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """A service whose operator lowered caps below the option defaults (the worker's env too: on
    Redis the worker applies the defaults it probes with)."""
    tmp = tmp_path_factory.mktemp(f"caps-{request.param}")
    async with (
        service_on(request.param, tmp, LOWERED) as running,
        httpx.AsyncClient(base_url=running.url, timeout=30) as client,
    ):
        yield client


async def post_as(api: httpx.AsyncClient, kind: str, url: str, options: dict[str, Any]) -> httpx.Response:
    if kind == "json":
        return await api.post("/api/v1/tasks", json={"urls": [url], "options": options})
    if kind == "text":
        return await api.post(
            "/api/v1/tasks", params={"options": json.dumps(options)}, content=url,
            headers={"content-type": "text/plain"},
        )  # fmt: skip
    files = {"file": ("urls.txt", url.encode(), "text/plain")}
    return await api.post("/api/v1/tasks", files=files, data={"options": json.dumps(options)})


# What a careless client asked for in the issue, and the default cap each one meets.
OVER_DEFAULT_CAPS = [
    ({"timeout": 600}, "LINKPROBE_CAP_TIMEOUT", "60"),
    ({"retries": 10}, "LINKPROBE_CAP_RETRIES", "5"),
    ({"max_body_bytes": 1 << 30}, "LINKPROBE_CAP_BODY_BYTES", str(16 << 20)),
    ({"concurrency": 10000}, "LINKPROBE_CAP_CONCURRENCY", "256"),  # the engine's concurrency
    ({"max_redirects": 50}, "LINKPROBE_CAP_REDIRECTS", "20"),
    ({"connect_timeout": 600}, "LINKPROBE_CAP_CONNECT_TIMEOUT", "30"),
    ({"retry_backoff": 60}, "LINKPROBE_CAP_RETRY_BACKOFF", "2"),
    ({"retry_after_cap": 600}, "LINKPROBE_CAP_RETRY_AFTER", "30"),
]


@pytest.mark.parametrize("kind", ["json", "text", "multipart"])
@pytest.mark.parametrize(("options", "cap", "limit"), OVER_DEFAULT_CAPS)
async def test_an_option_above_its_cap_is_422_naming_the_cap(
    api: httpx.AsyncClient, target: Target, kind: str, options: dict[str, Any], cap: str, limit: str
) -> None:
    before = (await api.get("/api/v1/tasks", params={"limit": 1})).json()["items"]
    response = await post_as(api, kind, target.url("/status/200"), options)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert cap in detail and f"cap of {limit}" in detail and next(iter(options)) in detail
    assert (await api.get("/api/v1/tasks", params={"limit": 1})).json()["items"] == before  # no task


@pytest.mark.parametrize("kind", ["json", "text", "multipart"])
async def test_options_at_the_caps_are_accepted(api: httpx.AsyncClient, target: Target, kind: str) -> None:
    at_caps = {"timeout": 60, "retries": 5, "max_body_bytes": 16 << 20, "max_redirects": 20}
    response = await post_as(api, kind, target.url("/status/200"), at_caps)
    assert response.status_code == 202, response.text
    done = await wait_status(api, response.json()["id"])
    assert done["options"] == at_caps and done["progress"]["ok"] == 1


async def test_lowered_caps_refuse_and_lower_the_defaults(lowered: httpx.AsyncClient, target: Target) -> None:
    refused = await post_as(lowered, "json", target.url("/status/200"), {"timeout": 6})
    assert refused.status_code == 422 and "cap of 5 (LINKPROBE_CAP_TIMEOUT)" in refused.json()["detail"]
    concurrency = await post_as(lowered, "text", target.url("/status/200"), {"concurrency": 65})
    assert concurrency.status_code == 422 and "cap of 64" in concurrency.json()["detail"]
    task = await submit(lowered, [target.url("/status/200")])  # defaults: timeout 10, retries 2, 256
    assert task["options"] == {"timeout": 5, "retries": 1, "concurrency": 64}
    assert (await wait_status(lowered, task["id"]))["progress"]["ok"] == 1
    short = (await lowered.post("/api/v1/submit", json={"urls": [target.url("/status/200")]})).json()
    assert (await lowered.get(f"/api/v1/tasks/{short['task_id']}")).json()["options"]["timeout"] == 5
