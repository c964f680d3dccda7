"""The deployment's front config run by a real nginx in front of a real `linkprobe api`.

The config is deploy/front/nginx.conf with only its addresses and paths moved to the test's (the
API's port, a free port, a temporary directory), inside the same http block the nginx image wraps
around conf.d files, including the image's default access log.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import free_port, start_service
from tests.deploy.test_deploy import DEPLOY, ROOT

# Installed by `make tools` (Debian's nginx-light): these tests run on every clean machine.
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Front:
    url: str
    access_log: Path
    api_log: Path


def front_config(tmp: Path, port: int, api_port: int) -> Path:
    html = tmp / "html"
    html.mkdir()
    (html / "ui").symlink_to(ROOT / "src/linkprobe/ui/static")
    conf = (DEPLOY / "front/nginx.conf").read_text()
    for old, new in (
        ("server api:8000;", f"server 127.0.0.1:{api_port};"),
        ("listen 8080;", f"listen 127.0.0.1:{port};"),
        ("/usr/share/nginx/html", str(html)),
        ("/etc/nginx/conf.d/security-headers.inc", str(DEPLOY / "front/security-headers.inc")),
        ("/var/log/nginx/", f"{tmp}/"),
    ):
        conf = conf.replace(old, new)
    (tmp / "front.conf").write_text(conf)
    temp = " ".join(
        f"{kind}_temp_path {tmp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = tmp / "nginx.conf"
    main.write_text(
        # As root, nginx's workers would run as `nobody`, who cannot read the test's private files.
        f"{'user root;' if os.geteuid() == 0 else ''} pid {tmp}/nginx.pid; error_log {tmp}/error.log;"
        " events {}\n"
        f"http {{ access_log {tmp}/access.log combined; {temp} include {tmp}/front.conf; }}\n"
    )
    return main


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[Front]:
    api = await start_service(tmp_path, "api", "--db", str(tmp_path / "front.db"), name="api")
    port = free_port()
    main = front_config(tmp_path, port, api.port)
    nginx = await asyncio.create_subprocess_exec(
        NGINX, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(main), "-g", "daemon off;"
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        yield Front(url, tmp_path / "access.log", api.log)
    finally:
        nginx.terminate()
        await nginx.wait()
        await api.stop()


async def test_the_fronts_access_log_keeps_no_header_secret_of_a_text_upload(front: Front) -> None:
    secret = "tok-front-4b7e2a"
    options = '{"headers": {"Authorization": "Bearer ' + secret + '"}}'
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as client:
        answers = [
            await client.post(
                f"/api/v1/tasks?name=front&{name}={quote(options)}",
                content="http://127.0.0.1:9/",
                headers={"Content-Type": "text/plain"},
            )
            for name in ("options", "%6Fptions")  # a name spelled with an escape is the same parameter
        ]
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    log = front.access_log.read_text()
    assert log.count("POST /api/v1/tasks?[redacted] HTTP/1.1") == 2, log  # logged, without the query
    assert secret not in log
    assert secret not in front.api_log.read_text()


async def test_the_front_sends_security_headers_on_the_ui_and_the_docs(front: Front) -> None:
    async with httpx.AsyncClient(base_url=front.url) as client:
        for path in ("/", "/ui/app.js", "/docs", "/api/v1/tasks"):
            response = await client.get(path)
            assert response.status_code == 200, path
            policy = response.headers.get("content-security-policy", "")
            assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
            assert response.headers["x-content-type-options"] == "nosniff", path


async def test_the_front_closes_a_connection_that_sends_nothing(front: Front) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(front.url.rsplit(":", 1)[1]))
    try:  # client_header_timeout 10s, as LINKPROBE_HEADER_TIMEOUT_S
        assert await asyncio.wait_for(reader.read(), timeout=30) == b""
    finally:
        writer.close()
