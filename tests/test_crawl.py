"""The crawler against a local multi-page site (the `site` fixture): loops, robots.txt, limits,
broken links, fragments, external links."""

from __future__ import annotations

import asyncio

from linkprobe.crawl import Crawler, Robots, SiteRule
from linkprobe.engine import Engine, EngineConfig, ProbeOptions, ProbeResult
from linkprobe.frontier import CrawlSpec
from linkprobe.store import ChunkKind
from tests.conftest import Site


async def crawl(site: Site, **options: object) -> tuple[dict[str, ProbeResult], Crawler]:
    config = EngineConfig(allow_private=True)
    async with Engine(config) as engine:
        spec = CrawlSpec(site.url("/index.html"), **options)  # type: ignore[arg-type]
        crawler = Crawler(engine, spec, ProbeOptions(retries=0))
        results = [result async for result in crawler.run()]
    by_url = {result.url: result for result in results}
    assert len(by_url) == len(results), "one result per unique URL"
    assert sorted(r.index for r in results) == list(range(len(results)))
    return by_url, crawler


async def test_a_site_is_crawled_once_per_page_with_broken_links_and_their_sources(site: Site) -> None:
    results, crawler = await crawl(site)
    missing = results[site.url("/missing.html")]
    assert missing.status_code == 404
    assert crawler.sources[missing.url].places == [
        (site.url("/index.html"), 4),
        (site.url("/deep/1.html"), 2),
    ]
    for path in ("/index.html", "/a.html", "/b.html", "/deep/1.html", "/deep/2.html", "/deep/3.html"):
        assert results[site.url(path)].ok, path
        assert site.hits[f"127.0.0.1{path}"] == 1, f"{path} read once"
    assert site.hits["127.0.0.1/robots.txt"] == 1
    assert crawler.fetched == 8  # six pages, the missing one and the image: site URLs are fetched


async def test_robots_txt_is_honoured_and_can_be_ignored(site: Site) -> None:
    results, _ = await crawl(site)
    private = results[site.url("/private/secret.html")]
    assert private.error is not None and private.error.kind == "unsupported"
    assert "robots.txt" in private.error.message
    assert "127.0.0.1/private/secret.html" not in site.hits
    results, _ = await crawl(site, ignore_robots=True)
    assert results[site.url("/private/secret.html")].ok
    assert site.url("/never-seen.html") in results


async def test_external_links_are_checked_never_followed(site: Site) -> None:
    results, _ = await crawl(site)
    assert results[site.url("/ext.html", "127.0.0.2")].ok
    assert site.url("/never-followed.html", "127.0.0.2") not in results
    assert "127.0.0.2/never-followed.html" not in site.hits
    mail = results["mailto:team@site.example"]
    assert mail.error is not None and mail.error.kind == "unsupported"


async def test_include_widens_the_site(site: Site) -> None:
    results, _ = await crawl(site, include=["127\\.0\\.0\\.2"])
    assert site.url("/never-followed.html", "127.0.0.2") in results


async def test_depth_limit(site: Site) -> None:
    results, crawler = await crawl(site, max_depth=1)
    assert results[site.url("/deep/1.html")].ok  # found on a depth-1 page: checked
    assert site.url("/deep/2.html") not in results  # only a followed page could show it
    assert crawler.fetched == 5  # index, then a, b, missing and the image


async def test_page_limit(site: Site) -> None:
    results, crawler = await crawl(site, max_pages=2)
    assert crawler.fetched == 2  # index and a
    assert results[site.url("/b.html")].ok  # beyond the limit: still checked
    assert results[site.url("/deep/1.html")].ok  # on a: checked, not followed
    assert site.url("/deep/2.html") not in results


async def test_fragments(site: Site) -> None:
    results, _ = await crawl(site, check_fragments=True)
    assert results[site.url("/b.html#intro")].ok
    assert results[site.url("/b.html#intro")].status_code == 200  # the page's answer is the fragment's
    nope = results[site.url("/b.html#nope")]
    assert nope.error is not None and nope.error.kind == "missing_fragment"
    assert nope.status_code == 200 and not nope.ok
    assert results[site.url("/a.html#top")].error is not None  # a.html has no #top


async def test_exclude(site: Site) -> None:
    """Excluded links are left out, and remembered: the pages that repeat them are not matched again."""
    results, crawler = await crawl(site, exclude=["missing", "^mailto:"])
    assert site.url("/missing.html") not in results
    assert "mailto:team@site.example" not in results
    assert crawler.excluded == {site.url("/missing.html"), "mailto:team@site.example"}


async def test_robots_txt_is_read_once_per_origin_by_concurrent_askers_within_its_bound(site: Site) -> None:
    options = ProbeOptions(retries=0)
    async with Engine(EngineConfig(allow_private=True)) as engine:
        robots = Robots(engine, size=1)
        site.delay = 0.2  # every asker arrives while the first read is in flight
        verdicts = await asyncio.gather(
            *(robots.allowed(site.url(f"/private/{n}"), options) for n in range(20))
        )
        assert verdicts == [False] * 20 and site.hits["127.0.0.1/robots.txt"] == 1
        assert await robots.allowed(site.url("/a.html"), options)
        assert await robots.allowed(site.url("/a.html", "127.0.0.2"), options)  # another origin...
        assert site.hits["127.0.0.2/robots.txt"] == 1
        assert not await robots.allowed(site.url("/private/x"), options)  # ...took the only place
        assert site.hits["127.0.0.1/robots.txt"] == 2
        stale = Robots(engine, max_age=0)
        for _ in range(2):
            await stale.allowed(site.url("/a.html", "127.0.0.3"), options)
        assert site.hits["127.0.0.3/robots.txt"] == 2  # read again once too old
        robots.close()
        stale.close()


def test_links_are_classified_by_the_site_rule() -> None:
    rule = SiteRule(CrawlSpec("http://127.0.0.1:8000/", max_depth=2, check_fragments=True, exclude=["skip"]))
    kinds = {
        url: list(rule.classify(url, depth))
        for url, depth in [
            ("http://127.0.0.1:8000/a#x", 1), ("http://127.0.0.1:8000/b", 2), ("https://127.0.0.1:8000/c", 0),
            ("http://127.0.0.1:8000/skip", 0), ("mailto:x@y.example#z", 0),
        ]
    }  # fmt: skip
    assert kinds == {
        "http://127.0.0.1:8000/a#x": [
            ("http://127.0.0.1:8000/a#x", ChunkKind.FRAGMENTS), ("http://127.0.0.1:8000/a", ChunkKind.PAGES),
        ],
        "http://127.0.0.1:8000/b": [("http://127.0.0.1:8000/b", ChunkKind.LINKS)],  # beyond max_depth
        "https://127.0.0.1:8000/c": [("https://127.0.0.1:8000/c", ChunkKind.LINKS)],  # not the site
        "http://127.0.0.1:8000/skip": [],
        "mailto:x@y.example#z": [("mailto:x@y.example", ChunkKind.LINKS)],
    }  # fmt: skip


async def test_robots_txt_is_read_without_the_task_headers(site: Site) -> None:
    secret = ProbeOptions(retries=0, method="HEAD", headers={"Authorization": "Bearer s3cret", "X-Team": "a"})
    async with Engine(EngineConfig(allow_private=True)) as engine:
        robots = Robots(engine)
        assert not await robots.allowed(site.url("/private/x"), secret)
        robots.close()
    sent = {name.lower() for name in site.headers["127.0.0.1/robots.txt"]}
    assert "authorization" not in sent and "x-team" not in sent  # shared by every task of a worker


def test_the_site_is_the_start_url_s_scheme_host_and_port_however_a_link_writes_them() -> None:
    rule = SiteRule(CrawlSpec("http://Docs.example/guide/"))
    inside = [
        "http://Docs.example/x",
        "http://docs.example/",
        "HTTP://DOCS.EXAMPLE:80/y",
        "http://docs.example",
    ]
    outside = ["https://docs.example/", "http://docs.example:8080/", "http://docs.example@evil.example/",
               "http://docs.example.evil.example/", "http://other.example/http://Docs.example/",
               "http://Docs.example.evil.example/", "http://Docs.example@evil.example/",
               "http://Docs.example:81/"]  # fmt: skip
    assert [url for url in inside + outside if rule.in_site(url)] == inside
