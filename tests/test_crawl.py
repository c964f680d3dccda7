"""The crawler against a local multi-page site (the `site` fixture): loops, robots.txt, limits,
broken links, fragments, external links."""

from __future__ import annotations

from linkprobe.crawl import Crawler, CrawlOptions
from linkprobe.engine import Engine, EngineConfig, ProbeOptions, ProbeResult
from linkprobe.extract import LinkFilter
from tests.conftest import Site


async def crawl(site: Site, **options: object) -> tuple[dict[str, ProbeResult], Crawler]:
    config = EngineConfig(allow_private=True)
    async with Engine(config) as engine:
        crawler = Crawler(engine, site.url("/index.html"), ProbeOptions(retries=0), CrawlOptions(**options))  # type: ignore[arg-type]
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
    results, _ = await crawl(site, filter=LinkFilter(include=["127\\.0\\.0\\.2"]))
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
    nope = results[site.url("/b.html#nope")]
    assert nope.error is not None and nope.error.kind == "missing_fragment"
    assert results[site.url("/a.html#top")].error is not None  # a.html has no #top


async def test_exclude(site: Site) -> None:
    results, _ = await crawl(site, filter=LinkFilter(exclude=["missing", "^mailto:"]))
    assert site.url("/missing.html") not in results
    assert "mailto:team@site.example" not in results
