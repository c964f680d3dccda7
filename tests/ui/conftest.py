"""UI fixtures: Debian's Chromium driven by Playwright, and the two ways linkprobe is served."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from tests.conftest import (
    RedisServer,
    Service,
    free_port,
    page_response,
    serving,
    site_pages,
    start_service,
    start_worker,
    wait_healthy,
)

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
    """Where the UI is served: `linkprobe serve`, or the front of the distributed topology; `key`
    is the API key (made with `linkprobe keys create`) when the service requires one."""

    name: str
    url: str
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    key: str | None = None


ADMIN = "lp_ui_admin_key_0123456789abcdef0123456789"
# Keys on, as deployed: quotas high enough for the tests' bursts of tasks (quotas have their own tests).
KEYS_ON = {
    "LINKPROBE_AUTH": "required",
    "LINKPROBE_ADMIN_KEY": ADMIN,
    "LINKPROBE_QUOTA_SUBMISSIONS_PER_MINUTE": "100000",
    "LINKPROBE_QUOTA_TASKS_IN_FLIGHT": "1000",
}


def create_key(name: str, *store: str) -> str:
    """A key made by the real `linkprobe keys create` on the store (`--db F` or `--redis-url U`)."""
    out = subprocess.run(
        [sys.executable, "-m", "linkprobe", "keys", *store, "create", name],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


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
async def serve_keys_site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    """`linkprobe serve` with keys required and a key made with `linkprobe keys create`."""
    tmp = tmp_path_factory.mktemp("ui-serve-keys")
    key = create_key("ui", "--db", str(tmp / "ui.db"))
    service = await start_service(tmp, "serve", "--db", str(tmp / "ui.db"), env=KEYS_ON)
    yield Site("serve-keys", service.url, key=key)
    await service.stop()


@pytest.fixture(scope="session")
async def topology_site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    """Redis, two API replicas, a worker service and the front: the compose topology as processes,
    with keys required and an admin key set, as deploy/compose.yaml runs it."""
    tmp = tmp_path_factory.mktemp("ui-topology")
    redis_server = RedisServer(free_port(), tmp)
    redis_server.start()
    key = create_key("ui", "--redis-url", redis_server.url)
    env = {"LINKPROBE_REDIS_URL": redis_server.url, **KEYS_ON}
    apis = [await start_service(tmp, "api", env=env, name=f"api{i}") for i in (1, 2)]
    worker = await start_worker(tmp, redis_server.url)
    entry = await front(tmp, [api.port for api in apis])
    yield Site("front", entry.url, key=key)
    for service in (entry, *apis):
        await service.stop()
    worker.terminate()
    await worker.wait()
    redis_server.stop()


@pytest.fixture
async def strict_site(tmp_path: Path) -> AsyncIterator[Site]:
    """`linkprobe serve` with the default egress policy: loopback is blocked (probes and webhooks)."""
    service = await start_service(tmp_path, "serve", "--db", str(tmp_path / "strict.db"),
                                  env={"LINKPROBE_ALLOW_PRIVATE": "false"})  # fmt: skip
    yield Site("strict", service.url)
    await service.stop()


SITES = {"serve": "serve_site", "serve-keys": "serve_keys_site", "front": "topology_site"}


@pytest.fixture(params=["serve", "front"])
def site(request: pytest.FixtureRequest) -> Site:
    """Each test runs on `serve` (keys off, as `make run`) and on the front (keys on, as deployed);
    `@pytest.mark.parametrize("site", [...], indirect=True)` picks others ("serve-keys")."""
    found: Site = request.getfixturevalue(SITES[request.param])
    return found


@dataclass
class Tab:
    """A browser page and what it did: the API requests it made and the console errors it logged."""

    page: Page
    base: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    keys_entered: int = 0  # times the UI asked for the API key and the tab typed it in

    async def open(self, route: str = "/") -> None:
        await self.page.goto(f"{self.base}/#{route}")

    def api_calls(self, fragment: str) -> list[str]:
        return [url for url in self.requests if fragment in url]


async def new_tab(
    browser: Browser, base: str, key: str | None = None, **options: object
) -> tuple[BrowserContext, Tab]:
    """A fresh browser tab; with `key`, whenever the UI asks for an API key, the tab types it in."""
    context = await browser.new_context(accept_downloads=True, **options)  # type: ignore[arg-type]
    page = await context.new_page()
    page.set_default_timeout(30_000)
    tab = Tab(page, base)
    page.on("request", lambda request: tab.requests.append(request.url))
    if key:
        prompt = page.get_by_role("dialog", name="API key needed")

        async def enter_key() -> None:
            await prompt.get_by_label("API key").fill(key)
            await prompt.get_by_role("button", name="Use key").click()
            tab.keys_entered += 1

        await page.add_locator_handler(prompt, enter_key)

    def console(message: ConsoleMessage) -> None:
        # The browser logs the 401 that makes the UI ask for the key: that one is by design.
        if message.type == "error" and not (key and "status of 401" in message.text):
            tab.errors.append(message.text)

    page.on("console", console)
    return context, tab


@pytest.fixture
async def tab(browser: Browser, site: Site) -> AsyncIterator[Tab]:
    context, opened = await new_tab(browser, site.url, site.key, viewport={"width": 1280, "height": 900})
    yield opened
    await context.close()


@pytest.fixture
async def client(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {site.key}"} if site.key else {}
    async with httpx.AsyncClient(base_url=site.url, timeout=60, headers=headers) as opened:
        yield opened


async def shoot(page: Page, name: str, tmp: Path, full_page: bool = False) -> Path:
    """Saves a screenshot to `tmp`; with LINKPROBE_SCREENSHOTS=1 also to docs/screenshots (not
    the screens of the extra keyed `serve`: the same screens as `serve`)."""
    path = tmp / f"{name}.png"
    await page.screenshot(path=path, full_page=full_page)
    if os.environ.get("LINKPROBE_SCREENSHOTS") == "1" and "serve-keys" not in name:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")
    return path


@pytest.fixture
async def pages() -> AsyncIterator[str]:
    """The crawl fixture site of tests.conftest (robots.txt, a depth chain, broken links, fragments)
    on loopback: its base URL. (tests.conftest's `site` fixture is shadowed here by the UI's `site`.)"""
    port = free_port()
    content = site_pages(port)

    async def serve(request: web.Request) -> web.Response:
        return page_response(content, request.path)

    async with serving(serve, port, "127.0.0.1"):
        yield f"http://127.0.0.1:{port}"
