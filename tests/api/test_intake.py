"""Hostile bodies against a real `linkprobe api` over loopback: deep JSON nesting, lone surrogates,
a line of megabytes, megabytes of comment lines, a large JSON body, on each store where the store
takes part (a task stored, a task's view read while a body is scanned). Each is answered with a 202
or a 4xx with its reason, within a memory bound read from outside the server process, and the
event loop keeps answering /healthz and GET /tasks/{id} while the body is processed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from linkprobe.api.intake import _whole_lines
from linkprobe.api.jsonstream import MAX_DEPTH
from tests.api.test_auth_abuse import maximal_json
from tests.conftest import STORES, Service, answered_while, service_on, spooled_bytes, vm_hwm_kib

# Answers the loop must give while one hostile body is processed (a loop blocked by the work
# answers none; one answer may cross the body's own).
ANSWERS = 2  # a loop blocked by the work answers none (one request may cross its answer)


# Refusals decided while the body is parsed, before any store is asked: one store shows them.
PARSING_ONLY = pytest.mark.parametrize("intake", ["sqlite"], indirect=True)


@pytest.fixture(scope="module", params=STORES)
async def intake(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    """The API alone (no workers: tasks stay pending), with the default body limit (256 MiB)."""
    tmp = tmp_path_factory.mktemp(f"intake-{request.param}")
    async with service_on(request.param, tmp, {}, workers=False) as service:
        yield service


@pytest.fixture
async def client(intake: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=intake.url, timeout=300) as c:
        yield c


async def sent(service: Service, content_type: str, body: bytes) -> asyncio.Task[bytes]:
    """POST `body` to /api/v1/tasks over a socket; returns once every byte is written, with the
    task that reads the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    writer.write(
        b"POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (content_type.encode(), len(body))
    )
    writer.write(body)
    await writer.drain()

    async def answer() -> bytes:
        try:
            return await reader.read()
        finally:
            writer.close()

    return asyncio.create_task(answer())


async def a_task(client: httpx.AsyncClient) -> str:
    answer = await client.post("/api/v1/tasks", json={"urls": ["http://127.0.0.1:9/"]})
    assert answer.status_code == 202
    return str(answer.json()["id"])


async def loop_answers_while(
    service: Service, client: httpx.AsyncClient, content_type: str, body: bytes
) -> bytes:
    """The answer to a hostile body, after checking the loop served /healthz and a task's view
    ANSWERS times while the body was processed."""
    paths = ["/healthz", f"/api/v1/tasks/{await a_task(client)}"]
    pending = await sent(service, content_type, body)
    received = lambda: spooled_bytes(service.process.pid) >= len(body)  # noqa: E731
    assert await answered_while(client, pending, paths, received) >= ANSWERS
    return await pending


@PARSING_ONLY
async def test_deep_nesting_is_refused_at_once_in_flat_memory(
    intake: Service, client: httpx.AsyncClient
) -> None:
    await a_task(client)  # warm: the first task's work is in the baseline
    idle = vm_hwm_kib(intake.process.pid)
    body = b'{"urls": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    answer = await client.post("/api/v1/tasks", content=body, headers={"Content-Type": "application/json"})
    nested_field = b'{"urls": ["http://a.example/"], "name": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    field = await client.post(
        "/api/v1/tasks", content=nested_field, headers={"Content-Type": "application/json"}
    )
    grown_mib = (vm_hwm_kib(intake.process.pid) - idle) / 1024
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["urls", 0]  # a list inside `urls`: not a URL
    assert field.status_code == 422, field.text
    [error] = field.json()["detail"]
    assert error["type"] == "too_deep" and f"deeper than {MAX_DEPTH}" in error["msg"]
    assert error["loc"][0] == "name"
    assert grown_mib < 16, f"+{grown_mib:.0f} MiB for 400 KB of brackets"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b'{"urls": ["http://a.example/"], "name": "\\udc00x"}', ["name"]),
        (b'{"urls": ["http://a.example/", "http://b.example/\\udc00"]}', ["urls", 1]),
        (
            b'{"urls": ["http://a.example/"], "options": {"headers": {"X-A": "\\udfff"}}}',
            ["options", "headers", "X-A"],
        ),
        (b'{"crawl": {"start": "http://a.example/", "include": ["a", "\\udc00"]}}', ["crawl", "include", 1]),
        (b'{"urls": ["http://a.example/"], "\\udc00": 1}', []),
    ],
)
@PARSING_ONLY
async def test_a_lone_surrogate_is_a_422_naming_its_field(
    intake: Service, client: httpx.AsyncClient, body: bytes, loc: list[object]
) -> None:
    answer = await client.post("/api/v1/tasks", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == loc and error["type"] == "string_unicode"
    assert "surrogate" in error["msg"]


def test_text_is_cut_only_after_line_ends() -> None:
    """url_lines splits a partial line again with every block that follows it (quadratic on a
    16 MB line): the blocks it gets end at line ends, whatever the blocks read were."""
    blocks = ["http://a/1\r", "\nhttp://a/2", "2222", "22\rhttp://a/3\n#x", "yz", ""]
    pieces = list(_whole_lines(blocks))
    assert "".join(pieces) == "".join(blocks)
    assert all(piece.endswith(("\n", "\r")) for piece in pieces[:-1])
    long_line = ["http://x/" + "a" * 65536] * 256
    assert list(_whole_lines(long_line)) == ["".join(long_line)]  # kept in pieces, joined once


async def test_a_line_of_16_mb_is_one_url(intake: Service, client: httpx.AsyncClient) -> None:
    line = b"http://127.0.0.1:9/" + b"a" * (16 << 20)
    answer = await client.post("/api/v1/tasks", content=line, headers={"Content-Type": "text/plain"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["progress"]["total"] == 1


async def test_the_loop_answers_while_comment_lines_are_counted(
    intake: Service, client: httpx.AsyncClient
) -> None:
    comments = b"# a comment line, no URL here\n" * ((48 << 20) // 30)
    answer = await loop_answers_while(intake, client, "text/plain", comments)
    assert answer.startswith(b"HTTP/1.1 422") and b"no URLs" in answer, answer[:300]


async def test_the_loop_answers_while_a_large_json_body_is_scanned(
    intake: Service, client: httpx.AsyncClient
) -> None:
    body = maximal_json(48 << 20)[:-2] + b", 5]}"  # a number as the last URL: refused after the scan
    answer = await loop_answers_while(intake, client, "application/json", body)
    assert answer.startswith(b"HTTP/1.1 422") and b"string_type" in answer, answer[:300]
