"""HTTP/2 when a server offers it over TLS (ALPN), and certificates verified against the CA bundle
the engine finds (SSL_CERT_FILE first): a server nobody here wrote, hypercorn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config

from linkprobe.engine import Engine, EngineConfig, ErrorKind, ProbeOptions
from tests.conftest import free_port

FAST = ProbeOptions(retries=0, timeout=5)


@dataclass
class H2Server:
    port: int
    ca: trustme.CA
    versions: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def h2_server(tmp_path: Path) -> AsyncIterator[H2Server]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    server = H2Server(free_port(), ca)

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        if scope["type"] != "http":
            return
        server.versions.append(scope["http_version"])
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"over h2"})

    config = Config()
    config.bind = [f"127.0.0.1:{server.port}"]
    config.certfile, config.keyfile = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    config.alpn_protocols = ["h2", "http/1.1"]
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    yield server
    stop.set()
    await task


async def _probe_once_up(url: str) -> Any:
    """The result of the first probe not refused: the server's socket may take a moment to listen."""
    async with Engine(EngineConfig(allow_private=True)) as engine:
        for _ in range(100):
            result = await engine.probe(url, 0, FAST)
            if result.error is None or result.error.kind is not ErrorKind.CONNECT_REFUSED:
                return result
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never listened")


async def test_https_speaks_http2_when_offered_and_verifies_the_certificate(
    h2_server: H2Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    h2_server.ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    result = await _probe_once_up(h2_server.url("/"))
    assert (result.ok, result.status_code, result.error) == (True, 200, None), result.error
    assert h2_server.versions == ["2"]
    assert result.tls_ms is not None and result.tls_ms > 0


async def test_a_certificate_from_an_unknown_ca_is_a_tls_error(h2_server: H2Server) -> None:
    result = await _probe_once_up(h2_server.url("/"))
    assert result.error is not None and result.error.kind is ErrorKind.TLS, result.error
    assert h2_server.versions == []
