"""`linkprobe crawl` as a real subprocess against the local site fixture."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

from linkprobe.cli import build_parser
from linkprobe.engine.options import rule_of
from linkprobe.frontier import CLIENT_SET, SERVICE_SET, CrawlSpec
from tests.cli.test_check import Run
from tests.conftest import LARGE_PAGE_LINE, Site, Target


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


def outcomes(run: Run) -> dict[str, tuple[object, ...]]:
    """Each URL's outcome and where it was found (pages finish in any order: so do the places)."""
    assert run.code in (0, 2), run.err
    found: dict[str, tuple[object, ...]] = {}
    for item in json.loads(run.out):
        sources = item.get("sources") or {"total": 0, "places": []}
        places = sorted((place["document"], place["line"]) for place in sources["places"])
        error = (item["error"] or {}).get("kind")
        found[item["url"]] = (item["ok"], item["status_code"], error, sources["total"], places)
    return found


async def test_pages_parsed_in_worker_processes_give_what_threads_give(site: Site) -> None:
    """--jobs 2 parses pages in two forked processes (one per CPU by default), --jobs 1 in threads
    (that the processes parse, not a fallback to threads: tests/extract/test_processes.py)."""
    for flags in ((), ("--check-fragments",)):
        in_threads = await crawl("--format", "json", "--jobs", "1", *flags, site.url("/index.html"))
        in_processes = await crawl("--format", "json", "--jobs", "2", *flags, site.url("/index.html"))
        assert outcomes(in_processes) == outcomes(in_threads)
        assert len(outcomes(in_threads)) > 10
    for jobs, error in (("0", "--jobs must be 1 or more"), ("65", "--jobs must be at most 64")):
        bad = await crawl("--jobs", jobs, site.url("/"))
        assert bad.code == 3 and error in bad.err


def group_members(group: int) -> list[int]:
    """The processes of a process group (a terminal's Ctrl-C signals each of them)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) == group:
            members.append(int(stat.parent.name))
    return members


async def test_ctrl_c_in_a_terminal_ends_the_crawl_and_its_parsing_processes(
    target: Target, tmp_path: Path
) -> None:
    """SIGINT to the whole process group, as a terminal sends it, while the start page is read:
    the crawl reports what it has and exits 130; its parsing processes ignore the signal (no
    traceback of theirs) and end with it."""
    output = tmp_path / "out.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "crawl", "--allow-private", "--jobs", "2", "--timeout", "120",
        "-f", "json", "-o", str(output), target.url("/slow?s=60"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while target.active == 0:
            assert asyncio.get_running_loop().time() < deadline, "the start page was never asked for"
            await asyncio.sleep(0.05)
        assert len(group_members(process.pid)) == 3  # the crawl and its two parsing processes
        os.killpg(process.pid, signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 130, err
        assert "Traceback" not in err.decode() and "KeyboardInterrupt" not in err.decode()
        assert json.loads(output.read_text()) == []
        while group_members(process.pid):  # the parsing processes end with it
            assert asyncio.get_running_loop().time() < deadline, "parsing processes left running"
            await asyncio.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever failed above leaves nothing running


def test_the_crawl_flags_are_the_crawl_spec_s_fields() -> None:
    """One declaration: a flag for each setting a client gives, its help the field's description."""
    crawl = next(
        action.choices["crawl"]
        for action in build_parser()._subparsers._group_actions  # type: ignore[union-attr]
        if isinstance(action, argparse._SubParsersAction)
    )
    flags = {action.dest: action.help or "" for action in crawl._actions}
    for item in dataclasses.fields(CrawlSpec):
        if item.name in CLIENT_SET and item.name != "start":
            assert (rule_of(item).doc or "") in flags[item.name], item.name
    assert not set(SERVICE_SET) & set(flags)
