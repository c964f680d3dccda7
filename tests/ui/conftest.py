"""UI fixtures: Debian's Chromium driven by Playwright, and the two ways linkprobe is served."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from tests.conftest import RedisServer, Service, free_port, start_service, start_worker, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make tools` installs it"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, headless=True)
        yield launched
        await launched.close()


@dataclass
class Site:
    """Where the UI is served: `linkprobe serve`, or the front of the distributed topology."""

    name: str
    url: str
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)


async def front(tmp: Path, upstreams: list[int]) -> Service:
    port = free_port()
    log = tmp / "front.log"
    with open(log, "ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "deploy" / "front.py"), str(port), *map(str, upstreams),
            stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    service = Service(process, port, log)
    await wait_healthy(service)
    return service


@pytest.fixture(scope="session")
async def serve_site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    tmp = tmp_path_factory.mktemp("ui-serve")
    service = await start_service(tmp, "serve", "--db", str(tmp / "ui.db"))
    yield Site("serve", service.url)
    await service.stop()


@pytest.fixture(scope="session")
async def topology_site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    """Redis, two API replicas, a worker service and the front: the compose topology as processes."""
    tmp = tmp_path_factory.mktemp("ui-topology")
    redis_server = RedisServer(free_port(), tmp)
    redis_server.start()
    env = {"LINKPROBE_REDIS_URL": redis_server.url}
    apis = [await start_service(tmp, "api", env=env, name=f"api{i}") for i in (1, 2)]
    worker = await start_worker(tmp, redis_server.url)
    entry = await front(tmp, [api.port for api in apis])
    yield Site("front", entry.url)
    for service in (entry, *apis):
        await service.stop()
    worker.terminate()
    await worker.wait()
    redis_server.stop()


@pytest.fixture(params=["serve", "front"])
def site(request: pytest.FixtureRequest) -> Site:
    found: Site = request.getfixturevalue(f"{'serve' if request.param == 'serve' else 'topology'}_site")
    return found


@dataclass
class Tab:
    """A browser page and what it did: the API requests it made and the console errors it logged."""

    page: Page
    base: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def open(self, route: str = "/") -> None:
        await self.page.goto(f"{self.base}/#{route}")

    def api_calls(self, fragment: str) -> list[str]:
        return [url for url in self.requests if fragment in url]


async def new_tab(browser: Browser, base: str, **options: object) -> tuple[BrowserContext, Tab]:
    context = await browser.new_context(accept_downloads=True, **options)  # type: ignore[arg-type]
    page = await context.new_page()
    page.set_default_timeout(30_000)
    tab = Tab(page, base)
    page.on("request", lambda request: tab.requests.append(request.url))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.errors.append(message.text)

    page.on("console", console)
    return context, tab


@pytest.fixture
async def tab(browser: Browser, site: Site) -> AsyncIterator[Tab]:
    context, opened = await new_tab(browser, site.url, viewport={"width": 1280, "height": 900})
    yield opened
    await context.close()


@pytest.fixture
async def client(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=site.url, timeout=60) as opened:
        yield opened


async def shoot(page: Page, name: str, tmp: Path, full_page: bool = False) -> Path:
    """Saves a screenshot to `tmp`; with LINKPROBE_SCREENSHOTS=1 also to docs/screenshots."""
    path = tmp / f"{name}.png"
    await page.screenshot(path=path, full_page=full_page)
    if os.environ.get("LINKPROBE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")
    return path
