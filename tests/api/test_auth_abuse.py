"""A hostile client against a real `linkprobe serve`, over real sockets: maximal uploads in parallel
under a memory bound, junk multipart parts, idle and slow connections, quotas across replicas."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_auth import ADMIN, make_key
from tests.conftest import RedisServer, Service, start_service, vm_hwm_kib

SMALL = {
    "LINKPROBE_MAX_REQUEST_BYTES": "1000000",
    "LINKPROBE_HEADER_TIMEOUT_S": "1",
    "LINKPROBE_BODY_TIMEOUT_S": "1",
    "LINKPROBE_KEEPALIVE_S": "1",
    "LINKPROBE_MAX_CONCURRENT_UPLOADS": "1",
    "LINKPROBE_UPLOAD_WAIT_S": "0",
}


@pytest.fixture(scope="module")
async def strict(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    tmp = tmp_path_factory.mktemp("strict")
    service = await start_service(tmp, "api", "--db", str(tmp / "strict.db"), env=SMALL, name="api")
    yield service
    await service.stop()


def maximal_json(limit: int) -> bytes:
    """A valid task body just under `limit` bytes (about 40 bytes a URL)."""
    url = '"http://127.0.0.1:9/' + "p" * 20 + '/{:08d}",'
    count = (limit - 100) // len(url.format(0))
    body = '{"name": "max", "urls": [' + "".join(url.format(i) for i in range(count))
    return (body.rstrip(",") + "]}").encode()


async def test_parallel_maximal_json_uploads_stay_within_a_memory_budget(tmp_path: Path) -> None:
    limit, parallel = 48 << 20, 4
    env = {
        "LINKPROBE_MAX_REQUEST_BYTES": str(limit),
        "LINKPROBE_MAX_URLS_PER_TASK": "5000000",
        "LINKPROBE_MAX_CONCURRENT_UPLOADS": str(parallel),
        "LINKPROBE_CHUNK_SIZE": "5000",
    }
    service = await start_service(tmp_path, "api", "--db", str(tmp_path / "mem.db"), env=env, name="api")
    body = maximal_json(limit)
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=600) as client:
            warm = await client.post("/api/v1/tasks", json={"urls": ["http://127.0.0.1:9/"]})
            assert warm.status_code == 202
            idle = vm_hwm_kib(service.process.pid)
            answers = await asyncio.gather(
                *(
                    client.post("/api/v1/tasks", content=body, headers={"Content-Type": "application/json"})
                    for _ in range(parallel)
                )
            )
        peak = vm_hwm_kib(service.process.pid)
    finally:
        await service.stop()
    assert [a.status_code for a in answers] == [202] * parallel, answers[0].text
    assert answers[0].json()["progress"]["total"] == body.count(b"http://")
    grown_mib = (peak - idle) / 1024
    print(
        f"idle VmHWM {idle / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB after {parallel} x "
        f"{len(body) / 2**20:.0f} MiB JSON uploads: +{grown_mib:.0f} MiB"
    )
    # Reading the bodies whole would take at least parallel x 48 MiB (and several times that as objects).
    assert grown_mib < 48


async def test_json_errors_are_named_not_500(strict: Service) -> None:
    cases = {
        b'{"urls": ["http://a.example/", 5]}': ["urls", 1],
        b'{"urls": "http://a.example/"}': ["urls"],
        b'{"urls": ["http://a.example/"], "extra": 1}': ["extra"],
        b'{"name": "x"}': [],  # "give exactly one of urls or crawl"
        b'{"urls": ["http://a.example/"': [],
        b"[1, 2]": [],
    }
    async with httpx.AsyncClient(base_url=strict.url) as client:
        for body, loc in cases.items():
            response = await client.post(
                "/api/v1/tasks", content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 422, body
            assert response.json()["detail"][0]["loc"] == loc, (body, response.text)
        short = await client.post(
            "/api/v1/submit", json={"urls": ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]}
        )
        assert short.status_code == 202
        task = (await client.get(f"/api/v1/tasks/{short.json()['task_id']}")).json()
        assert task["progress"]["total"] == 2


async def test_multipart_junk_parts_are_refused(strict: Service) -> None:
    urls = b"http://127.0.0.1:9/a\n"
    async with httpx.AsyncClient(base_url=strict.url) as client:
        junk_file = await client.post("/api/v1/tasks", files={"file": urls, "junk": b"x" * 200_000})
        junk_field = await client.post("/api/v1/tasks", files={"file": urls}, data={"junk": "x"})
        big_junk = await client.post("/api/v1/tasks", files={"file": urls, "junk": b"x" * 3_000_000})
        big_field = await client.post("/api/v1/tasks", files={"file": urls}, data={"name": "x" * 900_000})
        fine = await client.post("/api/v1/tasks", files={"file": urls}, data={"name": "ok"})
    assert junk_file.status_code == 422 and "multipart" in junk_file.json()["detail"]
    assert junk_field.status_code == 422 and "junk" in junk_field.json()["detail"]
    assert big_junk.status_code in (413, 422)
    assert big_field.status_code in (413, 422)
    assert fine.status_code == 202


async def chunked_upload(port: int, parts: list[bytes], pause: float) -> bytes:
    """A chunked multipart upload over a raw socket, one part at a time: the answer's first bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=BB\r\n\r\n"
    )
    try:
        for part in parts:
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(pause)
        writer.write(b"0\r\n\r\n")
        return await asyncio.wait_for(reader.read(400), 60)
    except ConnectionError:
        return await reader.read(400)
    finally:
        writer.close()


async def test_a_chunked_junk_field_is_cut_at_the_request_limit(strict: Service) -> None:
    head = b'--BB\r\nContent-Disposition: form-data; name="file"; filename="u.txt"\r\n\r\nhttp://127.0.0.1:9/\r\n'
    junk = b'--BB\r\nContent-Disposition: form-data; name="junk"; filename="j"\r\n\r\n'
    parts = [head, junk, *([b"x" * 65536] * 40)]  # 2.6 MB of junk against a 1 MB limit
    answer = await chunked_upload(strict.port, parts, 0)
    assert answer.split(b"\r\n")[0] in (
        b"HTTP/1.1 413 Request Entity Too Large",
        b"HTTP/1.1 422 Unprocessable Entity",
    )


async def wait_closed(reader: asyncio.StreamReader, timeout: float = 30) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    return await asyncio.wait_for(reader.read(), timeout)


async def test_a_silent_connection_is_closed(strict: Service) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    assert await wait_closed(reader) == b""
    writer.close()


async def test_slow_headers_are_cut_off(strict: Service) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    closed = asyncio.create_task(wait_closed(reader))
    for n in range(100):  # a header line every 0.2 s, never the blank line that ends them
        if closed.done():
            break
        writer.write(b"X-Slow-%d: 1\r\n" % n)
        await asyncio.sleep(0.2)
    assert await closed == b""
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(strict: Service) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = await wait_closed(reader)
    assert answer.startswith(b"HTTP/1.1 200")  # answered, then closed once idle
    writer.close()


async def test_a_stalled_body_gets_408(strict: Service) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    writer.write(
        b"POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 1000\r\n\r\nhttp://127.0.0.1:9/\n"
    )
    answer = await wait_closed(reader)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    writer.close()


async def test_uploads_beyond_the_concurrent_limit_get_503(strict: Service) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    writer.write(
        b"POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 100000\r\n\r\nhttp://127.0.0.1:9/\n"
    )
    await writer.drain()
    try:
        async with httpx.AsyncClient(base_url=strict.url) as client:
            for _ in range(50):  # until the first upload holds the only slot
                second = await client.post(
                    "/api/v1/tasks", content="http://127.0.0.1:9/\n", headers={"Content-Type": "text/plain"}
                )
                if second.status_code == 503:
                    break
                await asyncio.sleep(0.02)
        assert second.status_code == 503 and second.headers["Retry-After"] == "1"
        assert "uploads" in second.json()["detail"]
    finally:
        writer.close()


async def test_connections_beyond_the_cap_get_503(tmp_path: Path) -> None:
    env = {"LINKPROBE_MAX_CONNECTIONS": "5", "LINKPROBE_HEADER_TIMEOUT_S": "60"}
    service = await start_service(tmp_path, "api", "--db", str(tmp_path / "cap.db"), env=env, name="api")
    idle = [await asyncio.open_connection("127.0.0.1", service.port) for _ in range(5)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(100), 30)).startswith(b"HTTP/1.1 503")
        writer.close()
    finally:
        for _, idle_writer in idle:
            idle_writer.close()
        await service.stop()


async def test_quotas_are_shared_by_api_replicas_on_redis(tmp_path: Path, private_redis: RedisServer) -> None:
    env = {
        "LINKPROBE_REDIS_URL": private_redis.url,
        "LINKPROBE_AUTH": "required",
        "LINKPROBE_ADMIN_KEY": ADMIN,
        "LINKPROBE_QUOTA_SUBMISSIONS_PER_MINUTE": "2",
        "LINKPROBE_QUOTA_URLS_PER_DAY": "5",
    }
    key = await asyncio.to_thread(make_key, ("--redis-url", private_redis.url), "replicas")
    replicas = [await start_service(tmp_path, "api", env=env, name="api") for _ in range(2)]
    try:
        statuses, answers = [], []
        for n, urls in enumerate((1, 1, 1)):
            async with httpx.AsyncClient(
                base_url=replicas[n % 2].url, headers={"Authorization": f"Bearer {key}"}
            ) as c:
                answer = await c.post(
                    "/api/v1/tasks", json={"urls": [f"http://127.0.0.1:9/{i}" for i in range(urls)]}
                )
            statuses.append(answer.status_code)
            answers.append(answer)
        assert statuses == [202, 202, 429]
        assert "submissions per minute" in answers[2].json()["detail"]
        assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
        async with httpx.AsyncClient(
            base_url=replicas[0].url, headers={"Authorization": f"Bearer {ADMIN}"}
        ) as c:
            assert (await c.post("/api/v1/tasks", json={"urls": ["http://127.0.0.1:9/"]})).status_code == 202
    finally:
        for replica in replicas:
            await replica.stop()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_quotas_per_day_and_in_flight(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    db = tmp_path / "quota.db"
    env = {
        "LINKPROBE_AUTH": "required",
        "LINKPROBE_QUOTA_URLS_PER_DAY": "5",
        "LINKPROBE_QUOTA_TASKS_IN_FLIGHT": "2",
    }
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        env["LINKPROBE_REDIS_URL"] = server.url
        key = await asyncio.to_thread(make_key, ("--redis-url", server.url), "replicas")
    else:
        key = await asyncio.to_thread(make_key, db, "quota")
    service = await start_service(
        tmp_path, "api", "--db", str(db), env=env, name="api"
    )  # no workers: tasks stay pending
    try:
        async with httpx.AsyncClient(
            base_url=service.url, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            too_many_urls = await client.post(
                "/api/v1/tasks", json={"urls": [f"http://127.0.0.1:9/{i}" for i in range(6)]}
            )
            first = await client.post("/api/v1/tasks", json={"urls": ["http://127.0.0.1:9/a"]})
            second = await client.post("/api/v1/tasks", json={"urls": ["http://127.0.0.1:9/b"]})
            third = await client.post("/api/v1/tasks", json={"urls": ["http://127.0.0.1:9/c"]})
    finally:
        await service.stop()
    assert too_many_urls.status_code == 429 and "URLs per day" in too_many_urls.json()["detail"]
    assert int(too_many_urls.headers["Retry-After"]) <= 86400
    assert (first.status_code, second.status_code) == (202, 202)
    assert third.status_code == 429 and "in flight" in third.json()["detail"]
    assert json.loads(third.text)["detail"].startswith("2 tasks in flight")
