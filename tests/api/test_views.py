"""What the API says about results: each outcome apart, redirects, its caps and policy, and a
Swagger example that works."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from linkprobe.api.models import TaskCreate
from tests.api.test_tasks import submit, wait_status
from tests.conftest import Service, Target, start_service, wait_for


async def test_each_outcome_and_redirect_filters_only_itself(api: httpx.AsyncClient, target: Target) -> None:
    moved, moved308, temporary = (
        target.url("/moved"),
        target.url("/moved?code=308"),
        target.url("/redirect/1"),
    )
    urls = [
        moved,
        moved308,
        temporary,
        target.url("/status/404"),
        "mailto:a@example.com",
        target.url("/status/200"),
    ]
    task = await submit(api, urls)
    await wait_status(api, task["id"])
    base = f"/api/v1/tasks/{task['id']}/results"

    async def urls_of(**params: str) -> list[str]:
        return [item["url"] for item in (await api.get(base, params=params)).json()["items"]]

    assert await urls_of(redirect="any") == [moved, moved308, temporary]
    assert await urls_of(redirect="permanent") == [moved, moved308]
    assert await urls_of(redirect="temporary") == [temporary]
    assert await urls_of(outcome="broken") == [target.url("/status/404")]
    assert await urls_of(outcome="unsupported") == ["mailto:a@example.com"]
    csv = await api.get(base, params={"redirect": "permanent", "format": "csv"})
    assert len(csv.text.strip().splitlines()) == 3  # header and the two permanent redirects
    assert (await api.get(base, params={"redirect": "sideways"})).status_code == 422


async def test_a_cancelled_task_counts_its_cancelled_urls_apart(
    api: httpx.AsyncClient, target: Target
) -> None:
    task = await submit(
        api, [target.url("/status/200"), *(target.url(f"/slow?s=30&c={i}") for i in range(5))]
    )
    await api.post(f"/api/v1/tasks/{task['id']}/cancel")
    done = await wait_status(api, task["id"], ("cancelled",))
    progress = done["progress"]
    assert progress["cancelled"] >= 1 and progress["broken"] == 0, progress
    assert progress["ok"] + progress["cancelled"] == progress["done"] == 6
    items = (await api.get(f"/api/v1/tasks/{task['id']}/results", params={"outcome": "cancelled"})).json()[
        "items"
    ]
    assert len(items) == progress["cancelled"] and {i["error"]["kind"] for i in items} == {"cancelled"}


async def test_the_service_says_its_caps_kinds_and_egress_policy(api: httpx.AsyncClient) -> None:
    service = (await api.get("/api/v1/service")).json()
    assert service["options"]["timeout"] == {"exclusiveMinimum": 0, "maximum": 60.0, "default": 10.0}
    assert service["options"]["retries"]["maximum"] == 5
    assert service["crawl"]["max_pages"]["maximum"] == 100_000
    assert [service["crawl"][limit]["minimum"] for limit in ("max_depth", "max_pages")] == [0, 1]
    assert service["outcomes"] == ["ok", "broken", "unsupported", "cancelled"]
    kinds = service["error_kinds"]
    assert "missing_fragment" in kinds and "missing_file" in kinds and "body_too_large" not in kinds
    assert service["permanent_redirects"] == [301, 308]
    assert service["egress"]["allow_private"] is True  # the tests' service allows loopback
    assert "LINKPROBE_ALLOW_PRIVATE" in service["egress"]["to_allow"]


async def test_the_swagger_example_body_is_accepted(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    body = schema["paths"]["/api/v1/tasks"]["post"]["requestBody"]["content"]["application/json"]
    created = await api.post("/api/v1/tasks", json=body["example"])
    assert created.status_code == 202, created.text
    for example in schema["components"]["schemas"]["TaskCreate"]["examples"]:
        TaskCreate.model_validate(example)  # each of the schema's examples is a valid body


@pytest.mark.parametrize("service", ["sqlite"], indirect=True)  # serve's log: the process that probes
async def test_the_start_up_log_states_the_egress_policy(service: Service, tmp_path: Path) -> None:
    assert "egress policy: private destinations are allowed" in service.log.read_text()
    strict = await start_service(tmp_path, "serve", "--db", str(tmp_path / "strict.db"),
                                 env={"LINKPROBE_ALLOW_PRIVATE": "false"})  # fmt: skip
    try:
        await wait_for(lambda: "egress policy:" in strict.log.read_text(), "the policy in the log")
        logged = strict.log.read_text()
        assert "egress policy: loopback, private and link-local destinations are blocked" in logged
        assert "LINKPROBE_ALLOW_PRIVATE=true" in logged and "LINKPROBE_ALLOW_CIDRS=" in logged
    finally:
        await strict.stop()
