"""Shared fixtures: a real target HTTP server on loopback, a canary listener, TLS, raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import inspect
import os
import socket
import ssl
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
import redis
import trustme
from aiohttp import web

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

from linkprobe.store import DeliveryPolicy, Store
from linkprobe.store.redis import RedisStore
from linkprobe.store.sqlite import SQLiteStore


async def wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    """The one polling helper: wait until `condition()` is true (awaited when it returns an
    awaitable: a store query), failing after `timeout` seconds (a bound on a condition, not on
    speed)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await _holds(condition):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _holds(condition: Callable[[], object]) -> bool:
    value = condition()
    return bool(await value if inspect.isawaitable(value) else value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Target:
    """The loopback target server. It listens on every address, so any 127.x.y.z reaches it."""

    port: int
    tls_port: int
    hits: dict[str, int] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    active: int = 0
    peak: int = 0
    on_poison: Callable[[], None] | None = None
    # /answer/{name}: what a test sets here between runs, a status or a redirect (302 to a path).
    answers: dict[str, int | str] = field(default_factory=dict)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def tls_url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.tls_port}{path}"


GZIP_BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)  # 64 MiB of zeros in ~64 KiB
PLAIN = b"<p>decoded</p>" * 100
ENCODED = {
    "gzip": gzip.compress(PLAIN),
    "deflate": zlib.compress(PLAIN),
    "br": brotli.compress(PLAIN),
    "zstd": zstd.compress(PLAIN),
}
BIG_PAGE_GZIP = gzip.compress(b"".join(b"<p>row %d of a long page</p>\n" % i for i in range(120_000)))


def target_app(state: Target) -> web.Application:
    routes = web.RouteTableDef()

    def count(request: web.Request) -> int:
        key = request.path
        state.hits[key] = state.hits.get(key, 0) + 1
        return state.hits[key]

    @routes.route("*", "/status/{code}")
    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status")

    @routes.get("/redirect/{n}")
    async def chain(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPFound("/status/200" if n <= 1 else f"/redirect/{n - 1}")

    @routes.get("/loop/{side}")
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop/b" if request.match_info["side"] == "a" else "/loop/a")

    @routes.get("/redirect-to")
    async def redirect_to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    @routes.get("/trickle")
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(60):
            await response.write(b"x")
            await asyncio.sleep(1)
        return response

    @routes.get("/hang")
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response()

    @routes.get("/huge")
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"y" * 65536)
        return response

    @routes.get("/bigfile")
    async def bigfile(request: web.Request) -> web.Response:
        return web.Response(body=b"z" * (4 << 20), content_type="application/octet-stream")

    @routes.get("/gzip-bomb")
    async def bomb(request: web.Request) -> web.Response:
        return web.Response(
            body=GZIP_BOMB, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"}
        )

    @routes.get("/retry-after/{token}")
    async def retry_after(request: web.Request) -> web.Response:
        if count(request) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    @routes.get("/flaky/{token}")
    async def flaky(request: web.Request) -> web.Response:
        return web.Response(status=503 if count(request) == 1 else 200)

    @routes.route("*", "/no-head")
    async def no_head(request: web.Request) -> web.Response:
        return web.Response(status=405 if request.method == "HEAD" else 200)

    @routes.get("/headers/{token}")
    async def record_headers(request: web.Request) -> web.Response:
        state.headers[request.match_info["token"]] = dict(request.headers)
        return web.Response(text="seen")

    @routes.get("/count/{token}")
    async def counted(request: web.Request) -> web.Response:
        count(request)  # on arrival: a test sees the probe in flight, and how often it came
        await asyncio.sleep(float(request.query.get("s", "0")))
        return web.Response(text="counted")

    @routes.get("/poison")
    async def poison(request: web.Request) -> web.Response:
        count(request)
        if state.on_poison is not None:
            state.on_poison()  # e.g. kill -9 the worker that asked
        return web.Response(text="poison")

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        state.active += 1
        state.peak = max(state.peak, state.active)
        try:
            await asyncio.sleep(float(request.query.get("s", "0.2")))
        finally:
            state.active -= 1
        return web.Response(text="slow")

    add_verdict_routes(routes)
    add_moved_route(routes)
    add_answer_route(routes, state)
    return app_of(routes)


def app_of(routes: web.RouteTableDef) -> web.Application:
    app = web.Application()
    app.add_routes(routes)
    return app


def add_answer_route(routes: web.RouteTableDef, state: Target) -> None:
    @routes.route("*", "/answer/{name}")
    async def answer(request: web.Request) -> web.Response:
        """A link whose answer a test changes between runs (state.answers): a status (200 unless
        set), or a path it redirects to (302). Counted in state.hits."""
        state.hits[request.path] = state.hits.get(request.path, 0) + 1
        given = state.answers.get(request.match_info["name"], 200)
        if isinstance(given, str):
            raise web.HTTPFound(given)
        return web.Response(status=given, text="answer")


def add_moved_route(routes: web.RouteTableDef) -> None:
    @routes.get("/moved")
    async def moved(request: web.Request) -> web.Response:
        """A permanent redirect (301, or ?code=308) to a page that works, or to ?to=."""
        to = request.query.get("to", "/status/200")
        if request.query.get("code") == "308":
            raise web.HTTPPermanentRedirect(to)
        raise web.HTTPMovedPermanently(to)


def add_verdict_routes(routes: web.RouteTableDef) -> None:
    """Responses whose verdict depends on details: odd Locations, encodings, large pages."""

    @routes.get("/location")
    async def location(request: web.Request) -> web.Response:
        """A 302 whose Location is the `to` parameter verbatim ("" for an empty one)."""
        return web.Response(status=302, headers={"Location": request.query.get("to", "")})

    @routes.get("/self")
    async def self_location(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": str(request.url)})

    @routes.route("*", "/encoded/{coding}")
    async def encoded(request: web.Request) -> web.Response:
        coding = request.match_info["coding"]
        return web.Response(body=ENCODED.get(coding, PLAIN), headers={"Content-Encoding": coding})

    @routes.get("/big-gzip-page")
    async def big_gzip_page(request: web.Request) -> web.Response:
        """A 3.4 MB HTML page served gzip with an honest Content-Length (aiohttp sets it)."""
        return web.Response(
            body=BIG_PAGE_GZIP, headers={"Content-Encoding": "gzip"}, content_type="text/html"
        )


@pytest.fixture(scope="session")
def tls_context() -> tuple[ssl.SSLContext, trustme.CA]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context, ca


@pytest.fixture(scope="session")
async def target(tls_context: tuple[ssl.SSLContext, trustme.CA]) -> AsyncIterator[Target]:
    state = Target(port=free_port(), tls_port=free_port())
    runner = web.AppRunner(target_app(state), shutdown_timeout=0.1, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", state.port).start()  # all of 127.0.0.0/8
    await web.TCPSite(runner, "::1", state.port).start()
    await web.TCPSite(runner, "127.0.0.1", state.tls_port, ssl_context=tls_context[0]).start()
    yield state
    await runner.cleanup()


@dataclass
class Canary:
    """A listener that must never be reached under the default egress policy."""

    port: int
    connections: int = 0


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    state = Canary(port=free_port())

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_connect, host=["0.0.0.0", "::"], port=state.port)
    yield state
    server.close()
    await server.wait_closed()


@pytest.fixture(scope="session")
async def garbage_port() -> AsyncIterator[int]:
    """A raw TCP server that answers every request with a malformed status line."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 two hundred OK\r\n\r\n")
        await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(on_connect, host="127.0.0.1", port=port)
    yield port
    server.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    """Start raw TCP servers on loopback with a given connection handler; yields a starter that
    returns the port. For hostile behaviour no HTTP framework would produce."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the probe hung up: what a bounded client does
            finally:
                writer.close()

        server = await asyncio.start_server(guarded, host="127.0.0.1", port=0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()


@dataclass
class HttpBin:
    """httpbin from PyPI, served by waitress in its own process: a server nobody here wrote."""

    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="session")
def httpbin() -> Iterator[HttpBin]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "waitress",
        "--listen",
        f"127.0.0.1:{port}",
        "--threads",
        "8",
        "httpbin:app",
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("httpbin did not start") from None
                time.sleep(0.05)
        yield HttpBin(port)
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def closed_port() -> Iterator[int]:
    yield free_port()  # nothing listens there once the probe socket is closed


# -- stores ---------------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A private redis-server on a free port with AOF in a temp dir: tests may kill and restart it."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--logfile", str(self.directory / "redis.log")],
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.025)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()

    def flush(self) -> None:
        redis.Redis(port=self.port).flushall()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that kill or stop it."""
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


STORES = ["sqlite", "redis"]
RECLAIM_S = 0.2
MAX_DELIVERIES = 3
POLICY = DeliveryPolicy(RECLAIM_S, MAX_DELIVERIES)


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh, open store of each implementation."""
    opened = make_store(request.param, tmp_path, request)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture(params=STORES)
async def short_retention(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh store of each implementation that keeps finished tasks for 1 s (leases as deployed)."""
    opened = make_store(request.param, tmp_path, request, DeliveryPolicy(), retention_s=1)
    await opened.open()
    yield opened
    await opened.close()


def make_store(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, policy: DeliveryPolicy = POLICY,
    retention_s: int = 7 * 86400,
) -> Store:  # fmt: skip
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "store.db", policy, retention_s)
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()
    return RedisStore(
        server.url, policy.reclaim_idle_s, policy.max_deliveries, retention_s=retention_s, block_ms=20
    )


@pytest.fixture
async def reopen(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[Store], Awaitable[Store]]]:
    """Simulate the death of the worker that held chunks: what recovery looks like per store."""
    opened: list[Store] = []

    async def restart(old: Store) -> Store:
        await old.close()
        if isinstance(old, RedisStore):  # another worker reclaims the chunk once it sat idle
            await asyncio.sleep(RECLAIM_S * 1.5)
            fresh: Store = RedisStore(old.url, reclaim_idle_s=RECLAIM_S, block_ms=20)
        else:  # a restart of the single process requeues its running chunks
            fresh = SQLiteStore(tmp_path / "store.db", POLICY)
        await fresh.open()
        opened.append(fresh)
        return fresh

    yield restart
    for fresh in opened:
        await fresh.close()


# -- a running service ----------------------------------------------------------------------------


@dataclass
class Service:
    """`linkprobe <command>` in a subprocess, serving HTTP on `port`."""

    process: asyncio.subprocess.Process
    port: int
    log: Path
    # The CLI arguments naming its store (`--db file` or `--redis-url url`): `linkprobe keys` takes them.
    store_args: tuple[str, ...] = ()
    worker: asyncio.subprocess.Process | None = None  # `linkprobe worker` beside `linkprobe api`

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self, kill: bool = False) -> None:
        """End the service and its worker, if it has one (kill: -9, as a crash)."""
        for process in (self.worker, self.process):
            if process is not None and process.returncode is None:
                if kill:
                    process.kill()
                else:
                    process.terminate()
                await process.wait()


async def start_worker(
    tmp_path: Path, redis_url: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """`linkprobe worker` against `redis_url`, allowed to probe the loopback target."""
    log = tmp_path / "workers.log"
    environment = {**os.environ, "LINKPROBE_ALLOW_PRIVATE": "1", **(env or {})}
    with open(log, "ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "linkprobe", "worker", "--redis-url", redis_url,
            env=environment, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def start_service(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    name: str = "serve",
    port: int | None = None,
) -> Service:
    port = port or free_port()
    log = tmp_path / f"{name}-{port}.log"
    environment = {**os.environ, "LINKPROBE_ALLOW_PRIVATE": "1", **(env or {})}
    with open(log, "ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "linkprobe",
            *args,
            "--port",
            str(port),
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service = Service(process, port, log)
    await wait_healthy(service)
    return service


async def wait_healthy(service: Service, timeout: float = 20.0) -> None:
    async with httpx.AsyncClient() as client:

        async def healthy() -> bool:
            if service.process.returncode is not None:
                raise RuntimeError(f"service exited: {service.log.read_text()[-2000:]}")
            try:
                return (await client.get(f"{service.url}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(healthy, f"service healthy (log: {service.log})", timeout)


def vm_hwm_kib(pid: int, field: str = "VmHWM") -> int:
    """The process's peak resident memory (or another /proc status field, VmRSS: now), read
    from outside."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field}")


def spooled_bytes(pid: int) -> int:
    """The largest file the process holds open that is already deleted: an upload it spools."""
    sizes = [0]
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd).endswith("(deleted)"):
                sizes.append(fd.stat().st_size)
    return max(sizes)


async def answered_while(
    client: httpx.AsyncClient, pending: asyncio.Future[Any], paths: list[str], received: Callable[[], bool]
) -> int:
    """Once `received()` (the server holds the whole body: its work on it begins), GET `paths` in
    turn, each after the last answered, until `pending` is done: how many were answered (200)
    before it was. A loop blocked by that work answers none of them (one may cross its answer)."""
    for _ in range(3000):
        if received() or pending.done():
            break
        await asyncio.sleep(0.01)
    answered = 0
    while not pending.done():
        response = await client.get(paths[answered % len(paths)])
        assert response.status_code == 200, response.text
        answered += 0 if pending.done() else 1
    return answered


SERVICE_LIMITS = {
    "LINKPROBE_MAX_URLS_PER_TASK": "5000",
    "LINKPROBE_MAX_REQUEST_BYTES": "1000000",
    "LINKPROBE_MAX_DOCUMENT_BYTES": "300000",
}


@contextlib.asynccontextmanager
async def service_on(
    kind: str, tmp: Path, env: dict[str, str], workers: bool = True
) -> AsyncIterator[Service]:
    """The service on one store: `linkprobe serve` (SQLite, embedded workers), or `linkprobe api`
    and a `linkprobe worker` on a Redis of its own. Without `workers`, `linkprobe api` alone: tasks
    stay pending. The store lives in `tmp`: a second service_on on the same `tmp` finds its data
    (Redis reloads its append-only file), as a restart would."""
    if kind == "sqlite":
        store_args: tuple[str, ...] = ("--db", str(tmp / "api.db"))
        command = "serve" if workers else "api"
        running = await start_service(tmp, command, *store_args, env=env, name=command)
        running.store_args = store_args
        try:
            yield running
        finally:
            await running.stop()
        return
    redis_server = RedisServer(free_port(), tmp)
    redis_server.start()
    try:
        store_args = ("--redis-url", redis_server.url)
        running = await start_service(tmp, "api", *store_args, env=env, name="api")
        running.store_args = store_args
        if workers:
            running.worker = await start_worker(tmp, redis_server.url, env)
        try:
            yield running
        finally:
            await running.stop()
    finally:
        redis_server.stop()


@pytest.fixture(scope="session", params=STORES)
async def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    """The service the API tests share, on each store (service_on)."""
    async with service_on(
        request.param, tmp_path_factory.mktemp(f"service-{request.param}"), SERVICE_LIMITS
    ) as running:
        yield running


@pytest.fixture
async def api(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        yield client


def site_pages(port: int) -> dict[str, str]:
    """A small site with loops, robots.txt rules, a deep chain, broken links and fragments."""
    external = f"http://127.0.0.2:{port}"  # the same server under another host: an external site
    return {
        "/robots.txt": "User-agent: *\nDisallow: /private/\n",
        "/index.html": (
            "<html><body>\n"
            '<a href="a.html">a</a> <a href="/b.html#intro">b</a>\n'
            '<a href="b.html#nope">bad fragment</a>\n'
            '<a href="/missing.html">missing</a>\n'
            f'<a href="{external}/ext.html">external</a>\n'
            '<a href="mailto:team@site.example">mail</a> <a href="private/secret.html">private</a>\n'
            '<a href="index.html">self</a> <img src="img.png">\n'
            "</body></html>\n"
        ),
        "/a.html": '<a href="index.html">home</a>\n<a href="deep/1.html">deeper</a> <a href="#top">top</a>\n',
        "/b.html": '<h2 id="intro">Intro</h2>\n<a href="/index.html">home</a>\n',
        "/deep/1.html": '<a href="2.html">2</a>\n<a href="/missing.html">again</a>\n',
        "/deep/2.html": '<a href="3.html">3</a>\n',
        "/deep/3.html": '<a href="../index.html">home</a>\n',
        "/private/secret.html": '<a href="/never-seen.html">x</a>\n',
        "/ext.html": '<a href="/never-followed.html">x</a>\n',
        "/img.png": "PNG",
        "/large/index.html": large_page(),  # reached from no other page: crawled from itself
        "/large/near.html": "near\n",
        "/large/far.html": "far\n",
    }


LARGE_PAGE_LINE = 3 + (1536 << 10) // 32  # the line of far.html on the large page


def large_page() -> str:
    """A 1.5 MiB index page whose last link lies past 1 MiB (the links' default max_body_bytes)."""
    filler = "<p>filler text of an index.</p>\n" * ((1536 << 10) // 32)  # 32 bytes a line
    assert len(filler) >= 1536 << 10
    return f'<html><body>\n<a href="near.html">near</a>\n{filler}<a href="far.html">far</a>\n</body></html>\n'


@dataclass
class Site:
    """The crawl fixture site on loopback; `hits` counts requests per host and path."""

    port: int
    hits: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0  # seconds each answer waits (after it is counted): a crawl a test can watch
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # the last request's, per key

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def read(self) -> int:
        return sum(self.hits.values())


WebHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serving(
    handler: WebHandler, port: int, host: str = "0.0.0.0", method: str = "GET"
) -> AsyncIterator[None]:
    """`handler` answers every `method` request on `port` (by default on all of 127.0.0.0/8)
    while inside: a site, or a webhook receiver."""
    app = web.Application()
    if method == "GET":
        app.router.add_get("/{tail:.*}", handler)  # HEAD too, as before
    else:
        app.router.add_route(method, "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield
    finally:
        await runner.cleanup()


def page_response(content: dict[str, str], path: str) -> web.Response:
    """The crawl fixture site's answer for `path`: its page (HTML for .html), else a 404."""
    body = content.get(path)
    if body is None:
        return web.Response(status=404, text="not found")
    return web.Response(text=body, content_type="text/html" if path.endswith(".html") else "text/plain")


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    state = Site(free_port())
    content = site_pages(state.port)

    async def serve(request: web.Request) -> web.Response:
        key = f"{request.host.split(':')[0]}{request.path}"
        state.hits[key] = state.hits.get(key, 0) + 1
        state.headers[key] = dict(request.headers)
        if state.delay:
            await asyncio.sleep(state.delay)
        return page_response(content, request.path)

    async with serving(serve, state.port):
        yield state


# Extracts the links of a document in a child process: how many, and its peak memory growth.
EXTRACTION_PEAK = """
import sys
from linkprobe.extract import Kind, extract
data = open(sys.argv[1], "rb").read()
with open("/proc/self/status") as status:
    before = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
links = extract(data, Kind(sys.argv[2])).links
with open("/proc/self/status") as status:
    after = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(len(links), (after - before) * 1024)
"""


def extraction_growth(path: Path, kind: str) -> tuple[int, int]:
    """(links found, bytes of peak growth) of extracting the document at `path` as `kind`."""
    child = subprocess.run(
        [sys.executable, "-c", EXTRACTION_PEAK, str(path), kind], capture_output=True, text=True, check=True
    )
    found, grown = map(int, child.stdout.split())
    return found, grown
