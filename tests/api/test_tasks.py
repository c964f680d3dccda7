"""The /api/v1 task API against a real `linkprobe serve` probing the loopback target server."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import pytest

from tests.conftest import Target, wait_for


async def wait_status(
    api: httpx.AsyncClient, task_id: str, statuses: tuple[str, ...] = ("ready",), timeout: float = 30
) -> dict[str, Any]:
    """The task once its status is one of `statuses` (polled by wait_for)."""
    return (await watch(api, task_id, statuses, timeout))[-1]


async def watch(
    api: httpx.AsyncClient, task_id: str, statuses: tuple[str, ...] = ("ready",), timeout: float = 30
) -> list[dict[str, Any]]:
    """Every state of the task seen while polling (wait_for), up to one with a status in `statuses`."""
    seen: list[dict[str, Any]] = []

    async def reached() -> bool:
        response = await api.get(f"/api/v1/tasks/{task_id}")
        if response.status_code == 503:  # the store is away for a while (fault tests): ask again
            return False
        seen.append(response.json())
        return seen[-1]["status"] in statuses

    await wait_for(reached, f"task {task_id} to reach {statuses}", timeout)
    return seen


async def submit(api: httpx.AsyncClient, urls: list[str], **extra: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/tasks", json={"urls": urls, **extra})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_submit_answers_202_then_results_arrive(api: httpx.AsyncClient, target: Target) -> None:
    urls = [target.url("/status/200"), target.url("/status/404"), "not a url", target.url("/redirect/2")]
    response = await api.post("/api/v1/tasks", json={"urls": urls, "name": "first", "description": "d"})
    assert response.status_code == 202
    task = response.json()
    assert response.headers["location"] == f"/api/v1/tasks/{task['id']}"
    assert response.headers["retry-after"] == "1"
    assert task["status"] in ("pending", "running") and task["progress"]["total"] == 4
    done = await wait_status(api, task["id"])
    assert done["progress"] == {
        "total": 4,
        "done": 4,
        "ok": 2,
        "broken": 2,
        "unsupported": 0,
        "cancelled": 0,
        "pages": None,
    }
    assert done["by_status"] == {"200": 2, "404": 1} and done["by_error"] == {"invalid_url": 1}
    assert sum(done["latency"].values()) == 3 and list(done["latency"])[-1] == "+Inf"  # invalid: no timing
    assert done["name"] == "first" and done["started_at"] and done["finished_at"]
    page = (await api.get(f"/api/v1/tasks/{task['id']}/results")).json()
    assert [r["url"] for r in page["items"]] == urls and page["next_cursor"] is None
    assert page["items"][2]["error"]["kind"] == "invalid_url"
    assert len(page["items"][3]["redirects"]) == 2


async def test_text_plain_upload(api: httpx.AsyncClient, target: Target) -> None:
    body = f"# comment\n{target.url('/status/200')}\n\n  {target.url('/status/500')}  \nftp://x/\n"
    response = await api.post("/api/v1/tasks?name=text", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 202
    done = await wait_status(api, response.json()["id"])
    assert done["name"] == "text" and done["progress"]["total"] == 3
    assert done["by_status"] == {"200": 1, "500": 1} and done["by_error"] == {"unsupported": 1}


async def test_other_schemes_are_unsupported_not_invalid(api: httpx.AsyncClient, target: Target) -> None:
    """mailto:, tel:, javascript:, ftp: and file: are reported as the CLI does: unsupported, never
    probed; text without a scheme (relative, or a host and port) stays invalid_url."""
    others = ["mailto:a@b.example", "tel:+15551234", "javascript:void(0)", "ftp://x/", "file:///etc/passwd"]
    invalid = ["/relative/link", "example.com:80/x"]
    task = await submit(api, [target.url("/status/200"), *others, *invalid])
    done = await wait_status(api, task["id"])
    assert done["progress"] == {
        "total": 8,
        "done": 8,
        "ok": 1,
        "broken": 2,
        "unsupported": 5,
        "cancelled": 0,
        "pages": None,
    }
    items = (await api.get(f"/api/v1/tasks/{task['id']}/results")).json()["items"]
    assert [r["index"] for r in items] == list(range(8))
    assert [r["error"]["message"] for r in items[1:6]] == [
        f"{url.split(':')[0]}: links are not checked" for url in others
    ]
    assert [r["error"]["kind"] for r in items[6:]] == ["invalid_url", "invalid_url"]


async def test_text_upload_line_endings_and_trailing_comments(api: httpx.AsyncClient, target: Target) -> None:
    a, b, c, d = (target.url(f"/status/{code}") for code in (200, 201, 202, 203))
    body = f"{a}  # the home page\r{b}\r\n{c}\t#tab comment\n{d}#fragment-kept\r\n# only a comment"
    response = await api.post("/api/v1/tasks", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 202, response.text
    done = await wait_status(api, response.json()["id"])
    results = (await api.get(f"/api/v1/tasks/{done['id']}/results")).json()["items"]
    assert [r["url"] for r in results] == [a, b, c, d + "#fragment-kept"]
    assert [r["status_code"] for r in results] == [200, 201, 202, 203]


async def test_multipart_upload_with_options(api: httpx.AsyncClient, target: Target) -> None:
    files = {"file": ("urls.txt", f"{target.url('/status/404')}\n".encode(), "text/plain")}
    data = {"name": "upload", "options": json.dumps({"accept": "200-299,404"})}
    response = await api.post("/api/v1/tasks", files=files, data=data)
    assert response.status_code == 202, response.text
    done = await wait_status(api, response.json()["id"])
    assert done["options"] == {"accept": "200-299,404"} and done["progress"]["ok"] == 1


async def test_short_submit_form(api: httpx.AsyncClient, target: Target) -> None:
    response = await api.post("/api/v1/submit", json={"urls": [target.url("/status/200")]})
    assert response.status_code == 202
    done = await wait_status(api, response.json()["task_id"])
    assert done["progress"]["ok"] == 1


async def test_idempotency_key(api: httpx.AsyncClient, target: Target) -> None:
    headers = {"Idempotency-Key": "k-123"}
    body = {"urls": [target.url("/status/200")]}
    first = await api.post("/api/v1/tasks", json=body, headers=headers)
    again = await api.post("/api/v1/tasks", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = await api.post("/api/v1/tasks", json={"urls": [target.url("/status/201")]}, headers=headers)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"urls": []}, "urls"),
        ({"urls": "http://x.example/"}, "urls"),
        ({"urls": ["http://x.example/"], "options": {"retries": -1}}, "retries"),
        ({"urls": ["http://x.example/"], "options": {"accept": "nope"}}, "accept"),
        ({"urls": ["http://x.example/"], "unknown": 1}, "unknown"),
    ],
)
async def test_invalid_payloads_are_422_naming_the_field(
    api: httpx.AsyncClient, body: Any, where: str
) -> None:
    response = await api.post("/api/v1/tasks", json=body)
    assert response.status_code == 422
    assert where in json.dumps(response.json()["detail"])


async def test_malformed_json_and_media_type(api: httpx.AsyncClient) -> None:
    broken = await api.post(
        "/api/v1/tasks", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422 and "detail" in broken.json()
    pdf = await api.post("/api/v1/tasks", content=b"%PDF-1.4", headers={"content-type": "application/pdf"})
    assert pdf.status_code == 415 and "text/html" in pdf.json()["detail"]
    xml = await api.post("/api/v1/tasks", content=b"<urls/>", headers={"content-type": "application/xml"})
    assert xml.status_code == 422 and xml.json()["detail"] == "no links found in body (read as sitemap)"


async def test_limits(api: httpx.AsyncClient) -> None:
    too_many = await api.post(
        "/api/v1/tasks", content="http://x.example/\n" * 5001, headers={"content-type": "text/plain"}
    )
    assert too_many.status_code == 413 and "5000" in too_many.json()["detail"]
    too_big = await api.post(
        "/api/v1/tasks", content=b"x" * 1_000_001, headers={"content-type": "text/plain"}
    )
    assert too_big.status_code == 413 and "1000000" in too_big.json()["detail"]

    async def chunked() -> Any:  # no Content-Length: counted while streaming
        for _ in range(20):
            yield b"http://x.example/" + b"y" * 60_000 + b"\n"

    streamed = await api.post("/api/v1/tasks", content=chunked(), headers={"content-type": "text/plain"})
    assert streamed.status_code == 413


async def test_unknown_ids_are_404(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", ""),
        ("GET", "/results"),
        ("GET", "/events"),
        ("DELETE", ""),
        ("POST", "/cancel"),
    ]:
        response = await api.request(method, f"/api/v1/tasks/nope{path}")
        assert response.status_code == 404, (method, path)
        assert "not found" in response.json()["detail"]


async def test_result_pages_filters_and_streams(api: httpx.AsyncClient, target: Target) -> None:
    urls = [target.url(f"/status/{200 if i % 2 else 404}") for i in range(25)] + ["bad"]
    task = await submit(api, urls)
    await wait_status(api, task["id"])
    base = f"/api/v1/tasks/{task['id']}/results"
    first = (await api.get(base, params={"limit": 10})).json()
    second = (await api.get(base, params={"limit": 10, "cursor": first["next_cursor"]})).json()
    assert [r["index"] for r in first["items"] + second["items"]] == list(range(20))
    ok = (await api.get(base, params={"outcome": "ok", "limit": 1000})).json()["items"]
    assert len(ok) == 12 and all(r["status_code"] == 200 for r in ok)
    broken = (await api.get(base, params={"outcome": "broken", "limit": 1000})).json()["items"]
    assert len(broken) == 14
    by_code = (await api.get(base, params={"status_code": 404, "limit": 1000})).json()["items"]
    assert len(by_code) == 13
    by_kind = (await api.get(base, params={"error_kind": "invalid_url"})).json()["items"]
    assert [r["index"] for r in by_kind] == [25]
    ndjson = await api.get(base, params={"format": "ndjson"})
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line)["index"] for line in ndjson.text.splitlines()] == list(range(26))
    table = list(
        csv.DictReader(io.StringIO((await api.get(base, params={"format": "csv", "outcome": "ok"})).text))
    )
    assert len(table) == 12 and table[0]["status_code"] == "200"
    assert (await api.get(base, params={"limit": 1001})).status_code == 422


async def test_list_tasks_newest_first(api: httpx.AsyncClient, target: Target) -> None:
    ids = [(await submit(api, [target.url("/status/200")], name=f"list-{i}"))["id"] for i in range(3)]
    page = (await api.get("/api/v1/tasks", params={"limit": 2})).json()
    assert [t["id"] for t in page["items"]] == ids[::-1][:2] and page["next_cursor"]
    after = (await api.get("/api/v1/tasks", params={"limit": 1, "cursor": page["next_cursor"]})).json()
    assert after["items"][0]["id"] == ids[0]
    await wait_status(api, ids[0])
    ready = (await api.get("/api/v1/tasks", params={"status": "ready", "limit": 200})).json()["items"]
    assert all(t["status"] == "ready" for t in ready) and ids[0] in [t["id"] for t in ready]
    assert (await api.get("/api/v1/tasks", params={"status": "nonsense"})).status_code == 422


async def test_delete_stops_in_flight_work_within_a_second(api: httpx.AsyncClient, target: Target) -> None:
    target.active = 0
    task = await submit(
        api, [target.url("/slow?s=30", host=f"127.0.9.{i}") for i in range(1, 6)], options={"timeout": 60}
    )
    await wait_for(lambda: target.active == 5, "five probes in flight", timeout=5)
    response = await api.delete(f"/api/v1/tasks/{task['id']}")
    assert response.status_code == 204
    await wait_for(lambda: target.active == 0, "the probes' connections closed", timeout=1)
    assert (await api.get(f"/api/v1/tasks/{task['id']}")).status_code == 404
    assert (await api.get(f"/api/v1/tasks/{task['id']}/results")).status_code == 404


async def test_cancel_keeps_the_task_with_a_result_per_url(api: httpx.AsyncClient, target: Target) -> None:
    task = await submit(api, [target.url("/slow?s=30")] * 3, options={"timeout": 60})
    await wait_status(api, task["id"], ("running",))
    cancelled = (await api.post(f"/api/v1/tasks/{task['id']}/cancel")).json()
    assert cancelled["status"] == "cancelled" and cancelled["by_error"] == {"cancelled": 3}
    items = (await api.get(f"/api/v1/tasks/{task['id']}/results")).json()["items"]
    assert [r["error"]["kind"] for r in items] == ["cancelled"] * 3


async def test_health_readiness_metrics_and_docs(api: httpx.AsyncClient, target: Target) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}

    async def ready() -> bool:  # once serve's worker processes have started
        return (await api.get("/readyz")).status_code == 200

    await wait_for(ready, "/readyz to say ready")
    metrics = await api.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")  # values: tests/test_metrics.py
    schema = (await api.get("/openapi.json")).json()
    assert "/api/v1/tasks" in schema["paths"] and "TaskCreate" in schema["components"]["schemas"]
    docs = await api.get("/docs")
    assert docs.status_code == 200 and "/ui/swagger/swagger-ui-bundle.js" in docs.text
    home = await api.get("/", follow_redirects=False)
    assert home.status_code == 200 and '<script type="module" src="/ui/app.js">' in home.text
