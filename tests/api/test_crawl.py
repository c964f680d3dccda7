"""Crawl tasks through the API, on both stores: `linkprobe serve` (SQLite, embedded workers) and
`linkprobe api` on Redis with a separate `linkprobe worker` process, against the local site
fixture (loops, robots.txt, a depth chain, broken and external links, fragments, mailto)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from linkprobe.frontier import CLIENT_SET
from tests.api.test_auth import make_key
from tests.api.test_tasks import watch as watch_task
from tests.conftest import (
    LARGE_PAGE_LINE,
    RedisServer,
    Service,
    Site,
    free_port,
    start_service,
    start_worker,
    wait_for,
)

ENV = {
    "LINKPROBE_CHUNK_SIZE": "3",  # a page's links span several chunks of each kind
    "LINKPROBE_RECLAIM_IDLE_S": "1.5",
    "LINKPROBE_MAX_URLS_PER_TASK": "5000",
    "LINKPROBE_CAP_CRAWL_DEPTH": "20",
    "LINKPROBE_WORKER_PROCESSES": "2",  # whatever the CPUs: robots.txt is read once by each
}
PAGES = ("/index.html", "/a.html", "/b.html", "/deep/1.html", "/deep/2.html", "/deep/3.html")


@pytest.fixture(scope="module", params=["sqlite", "redis"])
async def crawl_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The service on each store, shared by this module's tests."""
    tmp = tmp_path_factory.mktemp(f"crawl-{request.param}")
    processes: list[asyncio.subprocess.Process] = []
    redis_server: RedisServer | None = None
    if request.param == "sqlite":
        service = await start_service(tmp, "serve", "--db", str(tmp / "crawl.db"), env=ENV)
    else:
        redis_server = RedisServer(free_port(), tmp)
        redis_server.start()
        service = await start_service(tmp, "api", "--redis-url", redis_server.url, env=ENV, name="api")
        processes.append(await start_worker(tmp, redis_server.url, ENV))
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            yield client
    finally:
        await stop(service, processes, redis_server)


async def stop(
    service: Service, processes: list[asyncio.subprocess.Process], redis: RedisServer | None
) -> None:
    for process in processes:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    await service.stop()
    if redis is not None:
        redis.stop()


async def submit_crawl(
    api: httpx.AsyncClient, crawl: dict[str, Any], concurrency: int = 256, **extra: Any
) -> dict[str, Any]:
    options = {"retries": 0, "concurrency": concurrency}
    response = await api.post("/api/v1/tasks", json={"crawl": crawl, "options": options, **extra})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def watch(
    api: httpx.AsyncClient, task_id: str, until: tuple[str, ...] = ("ready",)
) -> list[dict[str, Any]]:
    """Every state of the task seen while polling, up to one with a status in `until`."""
    return await watch_task(api, task_id, until, timeout=60)


async def rows(api: httpx.AsyncClient, task_id: str) -> dict[str, dict[str, Any]]:
    """The task's results by URL, checked to be exactly one per URL, at indexes 0..n-1."""
    stream = await api.get(f"/api/v1/tasks/{task_id}/results", params={"format": "ndjson"})
    items = [json.loads(line) for line in stream.text.splitlines()]
    assert [item["index"] for item in items] == list(range(len(items)))
    by_url = {item["url"]: item for item in items}
    assert len(by_url) == len(items), "one result per unique URL"
    return by_url


def kind(row: dict[str, Any]) -> str | None:
    return None if row["error"] is None else str(row["error"]["kind"])


def expected_urls(site: Site) -> set[str]:
    paths = [*PAGES, "/missing.html", "/private/secret.html", "/img.png"]
    return {*(site.url(p) for p in paths), site.url("/ext.html", "127.0.0.2"), "mailto:team@site.example"}


async def test_a_crawl_checks_every_link_once_and_is_ready_when_nothing_is_left(
    crawl_api: httpx.AsyncClient, site: Site
) -> None:
    site.delay = 0.15  # the depth chain takes a second: progress is seen moving
    task = await submit_crawl(crawl_api, {"start": site.url("/index.html")}, name="site")
    assert task["crawl"]["start"] == site.url("/index.html") and task["progress"]["pages"] == 0
    seen = await watch(crawl_api, task["id"])
    final = seen[-1]
    results = await rows(crawl_api, task["id"])
    assert set(results) == expected_urls(site)
    progress = final["progress"]
    assert progress["total"] == progress["done"] == len(results) == 11
    assert progress["pages"] == 8  # six pages, the missing one and the image: site URLs are fetched
    assert progress["ok"] + progress["broken"] + progress["unsupported"] == 11
    for path in PAGES:
        assert results[site.url(path)]["ok"], path
        assert site.hits[f"127.0.0.1{path}"] == 1, f"{path} read once"
    # robots.txt is read once per origin by each worker process (two here, LINKPROBE_WORKER_PROCESSES)
    assert 1 <= site.hits["127.0.0.1/robots.txt"] <= 2
    missing = results[site.url("/missing.html")]
    assert missing["status_code"] == 404
    assert missing["sources"]["total"] == 2
    assert [p["document"] for p in missing["sources"]["places"]] == [
        site.url("/index.html"),
        site.url("/deep/1.html"),
    ]
    assert kind(results["mailto:team@site.example"]) == "unsupported"
    private = results[site.url("/private/secret.html")]
    assert kind(private) == "unsupported" and "robots.txt" in private["error"]["message"]
    assert "127.0.0.1/private/secret.html" not in site.hits
    assert results[site.url("/ext.html", "127.0.0.2")]["ok"]  # checked...
    assert "127.0.0.2/never-followed.html" not in site.hits  # ...never followed
    assert_progress_moved(seen)


def assert_progress_moved(seen: list[dict[str, Any]]) -> None:
    """Pages, total and done only grow, were seen between start and end, and `ready` came only
    once nothing was left."""
    states = [(t["progress"]["pages"], t["progress"]["total"], t["progress"]["done"]) for t in seen]
    for before, after in itertools.pairwise(states):
        assert all(b <= a for b, a in zip(before, after, strict=True)), (before, after)
    final = states[-1]
    assert any(0 < pages < final[0] and 1 < total < final[1] for pages, total, _ in states), states
    assert any(0 < done < final[2] for _, _, done in states), states
    assert [t["status"] for t in seen].count("ready") == 1  # the first ready state is the final one


async def test_depth_page_limits_and_fragments(crawl_api: httpx.AsyncClient, site: Site) -> None:
    deep = await submit_crawl(crawl_api, {"start": site.url("/index.html"), "max_depth": 1})
    few = await submit_crawl(crawl_api, {"start": site.url("/index.html"), "max_pages": 2})
    fragments = await submit_crawl(crawl_api, {"start": site.url("/index.html"), "check_fragments": True})
    shallow = (await watch(crawl_api, deep["id"]))[-1]
    assert shallow["progress"]["pages"] == 5  # index, then a, b, missing and the image
    results = await rows(crawl_api, deep["id"])
    assert results[site.url("/deep/1.html")]["ok"]  # found on a depth-1 page: checked
    assert site.url("/deep/2.html") not in results  # only a followed page could show it

    limited = (await watch(crawl_api, few["id"]))[-1]
    assert limited["progress"]["pages"] == 2  # index and a
    results = await rows(crawl_api, few["id"])
    assert results[site.url("/b.html")]["ok"] and results[site.url("/deep/1.html")]["ok"]  # checked
    assert site.url("/deep/2.html") not in results

    judged = (await watch(crawl_api, fragments["id"]))[-1]
    results = await rows(crawl_api, fragments["id"])
    assert results[site.url("/b.html#intro")]["ok"]
    assert results[site.url("/b.html#intro")]["status_code"] == 200  # the page's answer is the fragment's
    assert "None" not in judged["by_status"]  # every result without an error counts under a status
    assert kind(results[site.url("/b.html#nope")]) == "missing_fragment"
    assert kind(results[site.url("/a.html#top")]) == "missing_fragment"  # a.html has no #top
    assert results[site.url("/b.html")]["ok"]  # the page itself has its own result
    assert results[site.url("/b.html#nope")]["sources"]["places"][0]["line"] == 3


async def test_cancel_and_delete_a_running_crawl(crawl_api: httpx.AsyncClient, site: Site) -> None:
    site.delay = 1.0
    for action in ("cancel", "delete"):
        # One page at a time per chunk: a chunk that went on after the stop would be seen asking.
        task = await submit_crawl(crawl_api, {"start": site.url("/index.html")}, concurrency=1)
        running = (await watch(crawl_api, task["id"], until=("running",)))[-1]
        await wait_for(lambda: site.hits.get("127.0.0.1/a.html", 0) > 0, "the crawl past its start page")
        if action == "cancel":
            response = await crawl_api.post(f"/api/v1/tasks/{task['id']}/cancel")
            assert response.status_code == 200 and response.json()["status"] == "cancelled"
        else:
            assert (await crawl_api.delete(f"/api/v1/tasks/{task['id']}")).status_code == 204
        assert running["status"] == "running"
        await settled(site)
        if action == "delete":
            assert (await crawl_api.get(f"/api/v1/tasks/{task['id']}")).status_code == 404
            continue
        after = (await crawl_api.get(f"/api/v1/tasks/{task['id']}")).json()
        results = await rows(crawl_api, task["id"])
        assert after["status"] == "cancelled"
        assert after["progress"]["done"] == after["progress"]["total"] == len(results) < 11
        assert "cancelled" in {kind(r) for r in results.values()}


async def settled(site: Site) -> None:
    """The site sees no new request for 2.5 s (requests in flight at a cancel may still arrive
    within the second the workers take to stop)."""
    await asyncio.sleep(1.5)
    before = site.read()
    await asyncio.sleep(2.5)
    assert site.read() == before, "the crawl went on after it was stopped"


async def test_the_task_shows_its_crawl_and_idempotency_holds(
    crawl_api: httpx.AsyncClient, site: Site
) -> None:
    crawl = {"start": site.url("/b.html#x"), "include": ["127\\.0\\.0\\.2"], "exclude": ["missing"]}
    headers = {"Idempotency-Key": f"crawl-{site.port}"}
    body = {"crawl": crawl, "name": "once"}
    first = await crawl_api.post("/api/v1/tasks", json=body, headers=headers)
    again = await crawl_api.post("/api/v1/tasks", json=body, headers=headers)
    assert first.status_code == again.status_code == 202 and first.json()["id"] == again.json()["id"]
    other = await crawl_api.post("/api/v1/tasks", json={**body, "name": "twice"}, headers=headers)
    assert other.status_code == 409
    shown = (await crawl_api.get(f"/api/v1/tasks/{first.json()['id']}")).json()
    assert shown["crawl"] == {
        "start": site.url("/b.html"), "max_depth": 20, "max_pages": 100_000, "include": crawl["include"],
        "exclude": ["missing"], "ignore_robots": False, "check_fragments": False, "max_urls": 5000,
        "max_page_bytes": 16 << 20, "urls_per_day": None, "scope": "all",
    }  # fmt: skip
    listed = (await crawl_api.get("/api/v1/tasks")).json()["items"]
    assert any(t["id"] == shown["id"] and t["crawl"] is not None for t in listed)
    await watch(crawl_api, shown["id"])


async def test_plain_tasks_show_no_crawl(crawl_api: httpx.AsyncClient, site: Site) -> None:
    response = await crawl_api.post("/api/v1/tasks", json={"urls": [site.url("/a.html")]})
    task = (await watch(crawl_api, response.json()["id"]))[-1]
    assert task["crawl"] is None and task["progress"]["pages"] is None
    assert task["progress"]["done"] == 1


async def test_catastrophic_patterns_do_not_hold_a_crawl(crawl_api: httpx.AsyncClient, site: Site) -> None:
    """Exponential on a backtracking engine for every link of the site; linear on RE2."""
    catastrophic = ["(.+)+!$", "^(([^#]+)+)+#$", "(a+)+$"]
    crawl = {
        "start": site.url("/index.html"),
        "include": [catastrophic[0] + "|^http://127\\.0\\.0\\.1:"],
        "exclude": catastrophic,
    }
    task = await submit_crawl(crawl_api, crawl)
    await watch(crawl_api, task["id"])
    left_out = {"mailto:team@site.example", site.url("/ext.html", "127.0.0.2")}  # by the include
    assert set(await rows(crawl_api, task["id"])) == expected_urls(site) - left_out


def crawl_body(site_url: str, **crawl: Any) -> dict[str, Any]:
    return {"crawl": {"start": site_url, **crawl}}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            {"urls": ["http://127.0.0.1/"], "crawl": {"start": "http://127.0.0.1/"}},
            "exactly one of urls or crawl",
        ),
        ({"name": "nothing"}, "exactly one of urls or crawl"),
        (crawl_body("ftp://127.0.0.1/"), "start"),
        ({"crawl": {"max_depth": 1}}, "start"),
        (crawl_body("not a url"), "start"),
        (crawl_body("http://user:pw@127.0.0.1/"), "start"),
        (crawl_body("http://127.0.0.1/", include=["(unclosed"]), "crawl.include '(unclosed'"),
        (crawl_body("http://127.0.0.1/", exclude=["a", "[z-a]"]), "crawl.exclude '[z-a]'"),
        (crawl_body("http://127.0.0.1/", include=["(?=x)y"]), "crawl.include '(?=x)y' is not supported"),
        (
            crawl_body("http://127.0.0.1/", exclude=["a", "(?<!a)b"]),
            "crawl.exclude '(?<!a)b' is not supported",
        ),
        (
            crawl_body("http://127.0.0.1/", max_depth=21),
            "crawl.max_depth 21 is above the cap of 20 (LINKPROBE_CAP_CRAWL_DEPTH)",
        ),
        (crawl_body("http://127.0.0.1/", max_pages=0), "max_pages"),
        (crawl_body("http://127.0.0.1/", max_page_bytes=0), "max_page_bytes"),
        (
            crawl_body("http://127.0.0.1/", max_page_bytes=(16 << 20) + 1),
            "crawl.max_page_bytes 16777217 is above the cap of 16777216 (LINKPROBE_CAP_PAGE_BYTES)",
        ),
        (crawl_body("http://127.0.0.1/", max_depth=-1), "max_depth"),
        (crawl_body("http://127.0.0.1/", follow=True), "follow"),
        (crawl_body("http://127.0.0.1/", include=["x"] * 20_000), "more than 10000 JSON values"),
    ],
)
async def test_bad_crawls_are_refused_naming_the_problem(
    crawl_api: httpx.AsyncClient, body: dict[str, Any], named: str
) -> None:
    response = await crawl_api.post("/api/v1/tasks", json=body)
    assert response.status_code == 422, response.text
    assert named in json.dumps(response.json()["detail"]), response.text


async def test_a_large_page_is_read_to_its_end_and_a_cut_one_says_so(
    crawl_api: httpx.AsyncClient, site: Site
) -> None:
    """Pages are read up to crawl.max_page_bytes (16 MiB by default), not up to the links'
    options.max_body_bytes: the link past 1 MiB of the large page is found."""
    start, far, near = (site.url(f"/large/{name}.html") for name in ("index", "far", "near"))
    whole = await submit_crawl(crawl_api, {"start": start})
    cut = await submit_crawl(crawl_api, {"start": start, "max_page_bytes": 1 << 20})
    await watch(crawl_api, whole["id"])
    results = await rows(crawl_api, whole["id"])
    assert results[far]["ok"] and results[far]["sources"]["places"] == [
        {"document": start, "line": LARGE_PAGE_LINE}
    ]
    assert results[start]["body"] == "complete"
    await watch(crawl_api, cut["id"])
    results = await rows(crawl_api, cut["id"])
    assert results[start]["body"] == "truncated"  # said on the page's result
    assert results[near]["ok"] and far not in results


async def test_the_page_cap_is_named(crawl_api: httpx.AsyncClient) -> None:
    response = await crawl_api.post("/api/v1/tasks", json=crawl_body("http://127.0.0.1/", max_pages=100_001))
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "crawl.max_pages 100001 is above the cap of 100000 (LINKPROBE_CAP_CRAWL_PAGES)"
    )


async def test_openapi_documents_crawl_tasks(crawl_api: httpx.AsyncClient) -> None:
    schema = (await crawl_api.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    assert "crawl" in components["TaskCreate"]["properties"]
    assert set(components["CrawlCreate"]["properties"]) == set(CLIENT_SET)  # derived from CrawlSpec
    assert components["CrawlCreate"]["required"] == ["start"]
    assert "crawl" in components["Task"]["properties"] and "pages" in components["Progress"]["properties"]


async def test_owners_and_the_daily_quota_bound_a_crawl(
    tmp_path_factory: pytest.TempPathFactory, site: Site
) -> None:
    tmp = tmp_path_factory.mktemp("crawl-keys")
    db = tmp / "keys.db"
    alice, bob = make_key(db, "alice"), make_key(db, "bob")
    env = {**ENV, "LINKPROBE_AUTH": "required", "LINKPROBE_QUOTA_URLS_PER_DAY": "8"}
    service = await start_service(tmp, "serve", "--db", str(db), env=env)
    try:
        async with httpx.AsyncClient(
            base_url=service.url, headers={"Authorization": f"Bearer {alice}"}
        ) as api:
            urls = [site.url("/a.html"), site.url("/b.html"), site.url("/img.png")]
            assert (await api.post("/api/v1/tasks", json={"urls": urls})).status_code == 202  # 5 left today
            task = await submit_crawl(api, {"start": site.url("/index.html")})
            assert task["crawl"]["urls_per_day"] == 8
            final = (await watch(api, task["id"]))[-1]
            assert (
                final["progress"]["total"]
                == final["progress"]["done"]
                == len(await rows(api, task["id"]))
                == 5  # its start URL, charged at submission, and the 4 the quota had left
            )
            again = await api.post("/api/v1/tasks", json=crawl_body(site.url("/index.html")))
            assert again.status_code == 429, again.text  # the discoveries were charged: none left
            headers = {"Authorization": f"Bearer {bob}"}
            async with httpx.AsyncClient(base_url=service.url, headers=headers) as other:
                assert (await other.get(f"/api/v1/tasks/{task['id']}")).status_code == 404
                assert (await other.get("/api/v1/tasks")).json()["items"] == []
    finally:
        await service.stop()


async def test_a_crawl_of_the_site_only_checks_no_other_link(
    crawl_api: httpx.AsyncClient, site: Site
) -> None:
    """scope=site: the site's URLs only (no other host, no mailto:), on both stores; the default
    (all) is said by the task."""
    task = await submit_crawl(crawl_api, {"start": site.url("/index.html"), "scope": "site"})
    assert task["crawl"]["scope"] == "site"
    await watch(crawl_api, task["id"])
    results = await rows(crawl_api, task["id"])
    assert set(results) == {url for url in expected_urls(site) if url.startswith(site.url("/"))}
    default = await submit_crawl(crawl_api, {"start": site.url("/b.html")})
    assert default["crawl"]["scope"] == "all"
    bad = await crawl_api.post("/api/v1/tasks", json={"crawl": {"start": site.url("/"), "scope": "mine"}})
    assert bad.status_code == 422 and "scope" in bad.text
