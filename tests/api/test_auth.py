"""Keys, owners and the browser guards against the real service with authentication required, on
each store (`linkprobe serve` on SQLite; `linkprobe api` and a worker on Redis).

Keys are made with the real `linkprobe keys create` in the service's store (the key is its
output's last line).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.test_tasks import wait_status
from tests.conftest import STORES, Service, Target, service_on

ADMIN = "lp_admin_test_key_0123456789abcdef"
WRONG = "lp_not_a_key_0123456789abcdef"


def keys_cli(store: Path | Sequence[str], *args: str) -> str:
    """`linkprobe keys` on a store: a SQLite file, or the arguments naming one (Service.store_args)."""
    where = ("--db", str(store)) if isinstance(store, Path) else tuple(store)
    out = subprocess.run(
        [sys.executable, "-m", "linkprobe", "keys", *where, *args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout


def make_key(store: Path | Sequence[str], name: str) -> str:
    return keys_cli(store, "create", name).strip().splitlines()[-1]


@dataclass
class Secured:
    service: Service
    alice: str
    bob: str

    def client(self, key: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.service.url, headers=headers, timeout=30)

    def key(self, who: str) -> str | None:
        return {"none": None, "wrong": WRONG, "other": self.bob, "owner": self.alice, "admin": ADMIN}[who]


@pytest.fixture(scope="module", params=STORES)
async def secured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Secured]:
    tmp = tmp_path_factory.mktemp(f"secured-{request.param}")
    env = {"LINKPROBE_AUTH": "required", "LINKPROBE_ADMIN_KEY": ADMIN, **GENEROUS}
    async with service_on(request.param, tmp, env) as service:
        alice, bob = [await asyncio.to_thread(make_key, service.store_args, n) for n in ("alice", "bob")]
        yield Secured(service, alice, bob)


async def finished_task(site: Secured, target: Target, key: str, **extra: object) -> str:
    async with site.client(key) as client:
        response = await client.post("/api/v1/tasks", json={"urls": [target.url("/status/200")], **extra})
        assert response.status_code == 202, response.text
        task_id: str = response.json()["id"]
        await wait_status(client, task_id)
    return task_id


GENEROUS = {"LINKPROBE_QUOTA_SUBMISSIONS_PER_MINUTE": "100000", "LINKPROBE_QUOTA_TASKS_IN_FLIGHT": "1000"}
WHO = ("none", "wrong", "other", "owner", "admin")
# (method, path, expected status for none / wrong / other owner's key / the owner / admin)
MATRIX = [
    ("GET", "/api/v1/tasks/{id}", (401, 401, 404, 200, 200)),
    ("GET", "/api/v1/tasks/{id}/results", (401, 401, 404, 200, 200)),
    ("GET", "/api/v1/tasks/{id}/results?format=csv", (401, 401, 404, 200, 200)),
    ("GET", "/api/v1/tasks/{id}/events", (401, 401, 404, 200, 200)),
    ("POST", "/api/v1/tasks/{id}/cancel", (401, 401, 404, 200, 200)),
    ("DELETE", "/api/v1/tasks/{id}", (401, 401, 404, 204, 204)),
    ("POST", "/api/v1/tasks/{id}/rerun", (401, 401, 404, 202, 202)),
    ("GET", "/api/v1/tasks/{id}/changes?since={id}", (401, 401, 404, 200, 200)),
    ("GET", "/api/v1/tasks/{id}/webhook/deliveries", (401, 401, 404, 200, 200)),
    ("GET", "/api/v1/schedules", (401, 401, 200, 200, 200)),
    ("GET", "/api/v1/tasks", (401, 401, 200, 200, 200)),
    ("POST", "/api/v1/tasks", (401, 401, 202, 202, 202)),
    ("POST", "/api/v1/submit", (401, 401, 202, 202, 202)),
    ("GET", "/metrics", (401, 401, 403, 403, 200)),
    ("GET", "/healthz", (200, 200, 200, 200, 200)),
    ("GET", "/readyz", (200, 200, 200, 200, 200)),
    ("GET", "/openapi.json", (200, 200, 200, 200, 200)),
    ("GET", "/", (200, 200, 200, 200, 200)),
    ("GET", "/docs", (200, 200, 200, 200, 200)),
]


@pytest.mark.parametrize(("method", "path", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX])
async def test_authorization_matrix(
    secured: Secured, target: Target, method: str, path: str, expected: tuple[int, ...]
) -> None:
    body = {"urls": [target.url("/status/204")]} if method == "POST" and "{id}" not in path else None
    seen, task_id = [], await finished_task(secured, target, secured.alice)
    for who, status in zip(WHO, expected, strict=True):
        if method == "DELETE":
            task_id = await finished_task(secured, target, secured.alice)  # the last one was deleted
        async with secured.client(secured.key(who)) as client:
            response = await client.request(method, path.format(id=task_id), json=body)
        seen.append(response.status_code)
        if status in (401, 404):
            assert "detail" in response.json(), response.text
    assert tuple(seen) == expected


async def test_lists_show_only_ones_own_tasks_and_admin_sees_all(secured: Secured, target: Target) -> None:
    mine = await finished_task(secured, target, secured.alice)
    theirs = await finished_task(secured, target, secured.bob)
    listed = {}
    for who in ("owner", "other", "admin"):
        async with secured.client(secured.key(who)) as client:
            items = (await client.get("/api/v1/tasks", params={"limit": 200})).json()["items"]
            listed[who] = {item["id"] for item in items}
    assert mine in listed["owner"] and theirs not in listed["owner"]
    assert theirs in listed["other"] and mine not in listed["other"]
    assert {mine, theirs} <= listed["admin"]


async def test_a_rerun_is_its_callers_task(secured: Secured, target: Target) -> None:
    first = await finished_task(secured, target, secured.alice)
    async with secured.client(secured.alice) as client:
        again = (await client.post(f"/api/v1/tasks/{first}/rerun")).json()
        assert again["rerun_of"] == first
        assert again["id"] in {t["id"] for t in (await client.get("/api/v1/tasks")).json()["items"]}
    async with secured.client(secured.bob) as client:
        assert (await client.get(f"/api/v1/tasks/{again['id']}")).status_code == 404
        assert (await client.get(f"/api/v1/tasks/{again['id']}/changes")).status_code == 404


async def test_idempotency_keys_are_per_owner(secured: Secured, target: Target) -> None:
    body, headers = {"urls": [target.url("/status/200")]}, {"Idempotency-Key": "same-key-for-both"}
    ids = []
    for key in (secured.alice, secured.bob, secured.alice):
        async with secured.client(key) as client:
            ids.append((await client.post("/api/v1/tasks", json=body, headers=headers)).json()["id"])
    assert ids[0] == ids[2]  # a replay by the same owner answers the same task
    assert ids[1] != ids[0]  # another owner's same key is another task, never the first owner's


async def test_a_revoked_key_is_refused_at_once(secured: Secured) -> None:
    store = secured.service.store_args
    carol = await asyncio.to_thread(make_key, store, "carol")
    async with secured.client(carol) as client:
        assert (await client.get("/api/v1/tasks")).status_code == 200
        listed = await asyncio.to_thread(keys_cli, store, "list")
        assert carol not in listed  # the list never shows keys, only ids and names
        key_id = next(line.split()[0] for line in listed.splitlines() if line.endswith("carol"))
        await asyncio.to_thread(keys_cli, store, "revoke", key_id)
        response = await client.get("/api/v1/tasks")
        assert response.status_code == 401 and "revoked" in response.json()["detail"]


async def test_header_secrets_are_absent_from_every_response(secured: Secured, target: Target) -> None:
    secret = "s3cret-token-value-42"
    options = {"headers": {"Authorization": f"Bearer {secret}", "Cookie": f"session={secret}"}}
    async with secured.client(secured.alice) as client:
        created = await client.post(
            "/api/v1/tasks", json={"urls": [target.url("/headers/secret-check")], "options": options}
        )
        task_id = created.json()["id"]
        await wait_status(client, task_id)
        text_upload = await client.post(
            "/api/v1/tasks", content=target.url("/status/200"), headers={"Content-Type": "text/plain"},
            params={"options": '{"headers": {"X-Api-Token": "' + secret + '"}}'},
        )  # fmt: skip
        responses = [
            created, text_upload,
            await client.get(f"/api/v1/tasks/{task_id}"),
            await client.get("/api/v1/tasks"),
            await client.get(f"/api/v1/tasks/{task_id}/results"),
            await client.get(f"/api/v1/tasks/{task_id}/results", params={"format": "ndjson"}),
            await client.get(f"/api/v1/tasks/{task_id}/results", params={"format": "csv"}),
            await client.get(f"/api/v1/tasks/{task_id}/events"),
            await client.post(f"/api/v1/tasks/{task_id}/cancel"),
        ]  # fmt: skip
    for response in responses:
        assert response.status_code < 300, response.text
        assert secret not in response.text
    shown = responses[2].json()["options"]["headers"]
    assert shown == {"Authorization": "[redacted]", "Cookie": "[redacted]"}  # names stay, values go
    assert target.headers["secret-check"]["Authorization"] == f"Bearer {secret}"  # and the probe used it
    for log in secured.service.log.parent.glob("*.log"):  # nor in a log (access log, worker's)
        assert secret not in log.read_text(), log.name


async def test_wrong_host_is_refused(secured: Secured) -> None:
    async with secured.client(secured.alice) as client:
        for host in ("evil.example", "evil.example:80", "127.0.0.2"):
            response = await client.get("/api/v1/tasks", headers={"Host": host})
            assert response.status_code == 400, host
            assert "not allowed" in response.json()["detail"]
        assert (await client.get("/healthz", headers={"Host": "localhost"})).status_code == 200


async def test_cross_origin_state_changes_are_refused(secured: Secured, target: Target) -> None:
    task_id = await finished_task(secured, target, secured.alice)
    evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    async with secured.client(secured.alice) as client:
        posted = await client.post("/api/v1/tasks", content=target.url("/status/200"), headers=evil)
        deleted = await client.delete(f"/api/v1/tasks/{task_id}", headers={"Origin": "null"})
        assert (posted.status_code, deleted.status_code) == (403, 403)
        assert "cross-origin" in posted.json()["detail"]
        assert (await client.get(f"/api/v1/tasks/{task_id}")).status_code == 200  # still there
        own = {"Origin": secured.service.url}
        response = await client.post("/api/v1/tasks", json={"urls": [target.url("/")]}, headers=own)
        assert response.status_code == 202
        assert "access-control-allow-origin" not in response.headers  # CORS is off by default


async def test_pages_send_security_headers(secured: Secured) -> None:
    async with secured.client(None) as client:
        for path in ("/", "/docs", "/api/v1/tasks"):
            headers = (await client.get(path)).headers
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
            assert "script-src" not in headers["content-security-policy"]  # default-src 'self' covers it
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["x-frame-options"] == "DENY"


async def test_auth_cannot_be_off_beyond_loopback(tmp_path: Path) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "linkprobe", "serve", "--host", "0.0.0.0", "--db", str(tmp_path / "x.db")],
        env={**__import__("os").environ, "LINKPROBE_AUTH": "off"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 3
    assert "only allowed on loopback" in result.stderr


async def test_loopback_without_a_key_says_so_in_the_log(service: Service) -> None:
    assert "authentication is off" in service.log.read_text()


async def test_a_short_admin_key_is_refused_at_start_without_being_shown(tmp_path: Path) -> None:
    weak = "admin-pass-1"
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "linkprobe", "api", "--db", str(tmp_path / "x.db")],
        env={**__import__("os").environ, "LINKPROBE_AUTH": "required", "LINKPROBE_ADMIN_KEY": weak},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "LINKPROBE_ADMIN_KEY" in result.stderr and "32 characters" in result.stderr
    assert weak not in result.stderr + result.stdout


async def test_the_schema_declares_the_bearer_key_so_the_docs_can_send_it(secured: Secured) -> None:
    async with secured.client(None) as client:
        schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            keyed = path.startswith("/api/v1/") or path == "/metrics"
            assert (operation.get("security") == [{"apiKey": []}]) == keyed, (method, path)
