"""`linkprobe crawl` as a real subprocess against the local site fixture."""

from __future__ import annotations

import asyncio
import json
import sys

from tests.cli.test_check import Run
from tests.conftest import LARGE_PAGE_LINE, Site


async def crawl(*args: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "crawl", "--allow-private", "--retries", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def test_crawl_reports_broken_links_with_sources_and_exits_2(site: Site) -> None:
    run = await crawl("--format", "json", site.url("/index.html"))
    assert run.code == 2, run.err
    results = {item["url"]: item for item in json.loads(run.out)}
    missing = results[site.url("/missing.html")]
    assert missing["status_code"] == 404
    assert missing["sources"]["total"] == 2
    assert results[site.url("/deep/3.html")]["ok"] is True
    assert results["mailto:team@site.example"]["error"]["kind"] == "unsupported"
    assert site.hits["127.0.0.1/index.html"] == 1


async def test_a_clean_site_exits_0_and_the_table_shows_where(site: Site) -> None:
    assert (await crawl("--exclude", "missing|nope", site.url("/b.html"))).code == 0
    run = await crawl(site.url("/index.html"))
    assert f"found in {site.url('/index.html')}:4" in run.out


async def test_crawl_flags(site: Site) -> None:
    run = await crawl("--format", "ndjson", "--max-depth", "0", "--check-fragments", site.url("/index.html"))
    lines = [json.loads(line) for line in run.out.splitlines()]
    urls = {line["url"] for line in lines}
    assert site.url("/a.html") in urls and site.url("/deep/1.html") not in urls
    assert all("sources" in line for line in lines if line["url"] != site.url("/index.html"))
    bad = await crawl("--max-pages", "-1", site.url("/"))
    assert bad.code == 3 and "--max-pages" in bad.err


async def test_a_large_page_is_read_to_its_end_and_a_cut_one_is_warned_of(site: Site) -> None:
    """Pages are read up to --max-page-bytes (16 MiB by default); links are probed under
    --max-body-bytes (near.html, checked not followed at --max-depth 0, is cut at 2 bytes)."""
    start, far, near = (site.url(f"/large/{name}.html") for name in ("index", "far", "near"))
    run = await crawl("--format", "json", "--max-body-bytes", "2", "--max-depth", "0", start)
    results = {item["url"]: item for item in json.loads(run.out)}
    assert results[far]["ok"] and results[far]["sources"]["places"] == [
        {"document": start, "line": LARGE_PAGE_LINE}
    ]
    assert results[start]["body"] == "complete" and results[near]["body"] == "truncated"
    assert "warning" not in run.err
    cut = await crawl("--format", "json", "--max-page-bytes", str(1 << 20), start)
    results = {item["url"]: item for item in json.loads(cut.out)}
    assert results[start]["body"] == "truncated" and results[near]["ok"] and far not in results
    assert f"warning: {start} is longer than --max-page-bytes 1048576: links past the cut" in cut.err
    bad = await crawl("--max-page-bytes", "0", start)
    assert bad.code == 3 and "--max-page-bytes" in bad.err
