"""The engine against httpbin (from PyPI, served by waitress): a server nobody here wrote."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import pytest

from linkprobe.engine import Engine, EngineConfig, ErrorKind, ProbeOptions
from linkprobe.engine.outcome import BodyState, Outcome
from tests.conftest import HttpBin

FAST = ProbeOptions(retries=0, timeout=10, connect_timeout=5)


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[Engine]:
    async with Engine(EngineConfig(allow_private=True)) as running:
        yield running


@pytest.mark.parametrize(("code", "ok"), [(200, True), (201, True), (204, True), (404, False), (418, False),
                                          (500, False), (503, False)])  # fmt: skip
async def test_status_codes(engine: Engine, httpbin: HttpBin, code: int, ok: bool) -> None:
    result = await engine.probe(httpbin.url(f"/status/{code}"), 0, FAST)
    assert (result.status_code, result.ok, result.error) == (code, ok, None)


@pytest.mark.parametrize("form", ["redirect", "relative-redirect", "absolute-redirect"])
async def test_redirect_chains(engine: Engine, httpbin: HttpBin, form: str) -> None:
    result = await engine.probe(httpbin.url(f"/{form}/3"), 0, FAST)
    assert (result.ok, result.status_code, result.error) == (True, 200, None)
    assert len(result.redirects) == 3 and result.final_url == httpbin.url("/get")


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_redirect_to_with_every_status(engine: Engine, httpbin: HttpBin, code: int) -> None:
    result = await engine.probe(httpbin.url(f"/redirect-to?url=/status/201&status_code={code}"), 0, FAST)
    assert (result.ok, result.status_code) == (True, 201)
    assert [(h.status_code, h.url) for h in result.redirects] == [(code, httpbin.url("/status/201"))]


@pytest.mark.parametrize("code", [301, 302, 303, 307])  # httpbin gives these a Location
async def test_status_3xx_follows_its_location(engine: Engine, httpbin: HttpBin, code: int) -> None:
    result = await engine.probe(httpbin.url(f"/status/{code}"), 0, FAST)
    assert result.ok and result.redirects[0].status_code == code


@pytest.mark.parametrize(
    "location", ["mailto:someone@example.com", "ftp://ftp.example.com/file", "tel:+1555"]
)
async def test_redirect_to_another_scheme_is_unsupported(
    engine: Engine, httpbin: HttpBin, location: str
) -> None:
    result = await engine.probe(httpbin.url(f"/redirect-to?url={location}"), 0, FAST)
    assert result.outcome == Outcome.UNSUPPORTED and result.status_code == 302
    assert result.error is not None and result.error.kind == ErrorKind.UNSUPPORTED


@pytest.mark.parametrize("to", ["", "%23top"])
async def test_empty_or_self_location_is_a_loop(engine: Engine, httpbin: HttpBin, to: str) -> None:
    result = await engine.probe(httpbin.url(f"/redirect-to?url={to}"), 0, FAST)  # Location: "" or "#top"
    assert result.error is not None and result.error.kind == ErrorKind.REDIRECT_LOOP
    assert (result.ok, result.status_code) == (False, 302)


async def test_a_chain_back_through_a_path_with_another_query_is_no_loop(
    engine: Engine, httpbin: HttpBin
) -> None:
    back = httpbin.url("/redirect-to?url=/redirect/1")
    result = await engine.probe(httpbin.url(f"/redirect-to?url={back}"), 0, FAST)
    assert result.ok and len(result.redirects) == 3


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/brotli"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_compressed_encodings(
    engine: Engine, httpbin: HttpBin, path: str, method: Literal["GET", "HEAD"]
) -> None:
    result = await engine.probe(httpbin.url(path), 0, ProbeOptions(retries=0, method=method))
    assert (result.ok, result.status_code, result.error) == (True, 200, None)
    assert result.body == (BodyState.COMPLETE if method == "GET" else None)


async def test_drip_after_the_status_keeps_the_status(engine: Engine, httpbin: HttpBin) -> None:
    options = ProbeOptions(retries=0, timeout=1.5)
    result = await engine.probe(httpbin.url("/drip?duration=6&numbytes=6&delay=0&code=200"), 0, options)
    assert (result.ok, result.status_code, result.error, result.body) == (True, 200, None, BodyState.TIMEOUT)


async def test_drip_before_the_status_is_a_timeout(engine: Engine, httpbin: HttpBin) -> None:
    options = ProbeOptions(retries=0, timeout=1)
    result = await engine.probe(httpbin.url("/drip?duration=1&numbytes=1&delay=4"), 0, options)
    assert result.error is not None and result.error.kind == ErrorKind.TIMEOUT
    assert result.status_code is None and not result.ok


async def test_complete_drip_within_the_deadline(engine: Engine, httpbin: HttpBin) -> None:
    result = await engine.probe(httpbin.url("/drip?duration=0.3&numbytes=3&delay=0"), 0, FAST)
    assert (result.ok, result.body) == (True, BodyState.COMPLETE)


@pytest.mark.parametrize("path", ["/bytes/102400", "/stream-bytes/102400?chunk_size=1024"])
async def test_large_body_over_the_cap_is_truncated_and_ok(
    engine: Engine, httpbin: HttpBin, path: str
) -> None:
    result = await engine.probe(httpbin.url(path), 0, ProbeOptions(retries=0, max_body_bytes=10_000))
    assert (result.ok, result.status_code, result.error, result.body) == (
        True,
        200,
        None,
        BodyState.TRUNCATED,
    )


async def test_body_under_the_cap_is_complete(engine: Engine, httpbin: HttpBin) -> None:
    result = await engine.probe(
        httpbin.url("/stream-bytes/5000"), 0, ProbeOptions(retries=0, max_body_bytes=10_000)
    )
    assert (result.ok, result.body) == (True, BodyState.COMPLETE)


async def test_credentials_stay_on_the_origin(engine: Engine, httpbin: HttpBin) -> None:
    away = f"http://127.0.0.2:{httpbin.port}/headers"  # bound to 127.0.0.1 only: refused, never sent
    options = ProbeOptions(retries=0, headers={"Authorization": "Bearer x"})
    same = await engine.probe(httpbin.url("/redirect-to?url=/bearer"), 0, options)
    assert same.ok  # /bearer answers 401 without the Authorization header
    result = await engine.probe(httpbin.url(f"/redirect-to?url={away}"), 0, options)
    assert result.error is not None and result.error.kind == ErrorKind.CONNECT_REFUSED
