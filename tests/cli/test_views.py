"""What `check` and `crawl` show: a live bar while URLs hang, outcomes and redirects as they are,
the crawl's scope, --only, an interrupted run, root-relative links and misspelt flags."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import pty
import signal
import sys
from pathlib import Path

from tests.cli.test_check import check
from tests.cli.test_crawl import crawl
from tests.conftest import Site, Target, wait_for


async def test_the_bar_counts_what_is_done_while_urls_hang(target: Target) -> None:
    """30 quick URLs and 2 that hang: the bar shows 30/32 at once and says what it waits on,
    redrawn while nothing finishes (no frozen rate, no time left it cannot know)."""
    urls = [target.url(f"/status/200?bar={i}") for i in range(30)] + [
        target.url(f"/hang?bar={i}") for i in (1, 2)
    ]
    leader, follower = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "check", "--allow-private", "--timeout", "60", "-f", "json", *urls,
        stdout=asyncio.subprocess.DEVNULL, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    drawn = bytearray()
    loop = asyncio.get_running_loop()

    def read() -> None:
        with contextlib.suppress(OSError):
            drawn.extend(os.read(leader, 4096))

    loop.add_reader(leader, read)
    try:
        await wait_for(lambda: b"30/32" in drawn, "the bar to show the 30 quick URLs done")
        await wait_for(lambda: b"waiting on 2 URLs" in drawn, "the bar to say what it waits on")
        redraws = drawn.count(b"\r")
        await wait_for(lambda: drawn.count(b"\r") > redraws, "the bar to be redrawn while URLs hang")
        assert process.returncode is None  # all of this while the two URLs still hang
        last = bytes(drawn).rsplit(b"\r", 1)[-1]
        assert b"30/32 ok 30 broken 0" in last and b"left" not in last, last
    finally:
        loop.remove_reader(leader)
        os.close(leader)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def test_crawl_scope_site_checks_only_the_site(site: Site) -> None:
    everything = await crawl("-f", "json", site.url("/index.html"))
    checked = {item["url"] for item in json.loads(everything.out)}
    external = next(url for url in checked if url.startswith("http://127.0.0.2:"))
    assert "mailto:team@site.example" in checked

    own = await crawl("-f", "json", "--scope", "site", site.url("/index.html"))
    urls = {item["url"] for item in json.loads(own.out)}
    assert external not in urls and "mailto:team@site.example" not in urls
    assert {site.url("/a.html"), site.url("/deep/3.html"), site.url("/missing.html")} <= urls
    assert urls == {url for url in checked if url.startswith(site.url("/"))}
    help_text = (await crawl("--help")).out
    assert "all (the default)" in help_text and "--scope site" in help_text


async def test_only_broken_rows_with_the_summary_of_every_url(site: Site) -> None:
    run = await crawl("--only", "broken", site.url("/index.html"))
    assert run.code == 2, run.err
    rows = [line for line in run.out.splitlines() if line[:1].isdigit()]
    assert rows and all(" 404 " in row or "broken" in row or "missing" in row for row in rows), rows
    assert not any(row.split()[2] == "ok" for row in rows)
    summary = run.out.strip().splitlines()[-1]
    assert summary.startswith(
        f"{len(json.loads((await crawl('-f', 'json', site.url('/index.html'))).out))} URLs"
    )
    bad = await crawl("--only", "borken", site.url("/index.html"))
    assert bad.code == 3 and "--only" in bad.err


async def test_redirects_are_marked_listed_and_filtered(target: Target) -> None:
    moved, temporary, plain = target.url("/moved"), target.url("/redirect/1"), target.url("/status/200")
    run = await check(moved, temporary, plain)
    assert run.code == 0, run.err
    assert f"-> permanent redirect (301) to {plain}" in run.out
    assert f"-> temporary redirect (302) to {plain}" in run.out
    assert "3 URLs: 3 ok, 0 broken; 2 redirected (1 permanent)" in run.out

    listed = await check("-f", "redirects", moved, temporary, plain)
    rows = list(csv.DictReader(io.StringIO(listed.out)))
    assert [(r["url"], r["final_url"], r["redirect"]) for r in rows] == [
        (moved, plain, "permanent"),
        (temporary, plain, "temporary"),
    ]
    only = await check("-f", "json", "--only", "permanent", moved, temporary, plain)
    assert [item["url"] for item in json.loads(only.out)] == [moved]


async def test_an_interrupted_crawl_says_so(target: Target) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "crawl", "--allow-private", "--timeout", "120", "--jobs", "1",
        target.url("/slow?s=60"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        await wait_for(lambda: target.active > 0, "the start page to be asked for", timeout=60)
        os.killpg(process.pid, signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert out.decode().strip().splitlines()[-1].startswith("Interrupted (Ctrl-C) before the end: ")
    assert "linkprobe: interrupted (Ctrl-C)" in err.decode()


async def test_root_relative_links_of_a_folder_resolve_against_root_dir(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "guide").mkdir(parents=True)
    (docs / "license.html").write_text("<p>license</p>")
    (docs / "guide" / "index.html").write_text(
        '<a href="/license.html">license</a> <a href="../license.html">up</a>'
    )
    without = await check("-f", "json", str(docs))
    kinds = {item["url"]: (item["error"] or {}).get("kind") for item in json.loads(without.out)}
    assert kinds == {"file:///license.html": "missing_file", (docs / "license.html").as_uri(): None}
    assert without.err.count("--root-dir DIR") == 1  # the hint, once per run

    rooted = await check("-f", "json", "--root-dir", str(docs), str(docs))
    assert rooted.code == 0, rooted.out
    assert [item["url"] for item in json.loads(rooted.out)] == [(docs / "license.html").as_uri()]
    assert "--root-dir" not in rooted.err


async def test_a_misspelt_flag_gets_its_commands_usage_and_a_suggestion() -> None:
    run = await check("--alow-private", "http://x.example/")
    assert run.code == 3
    assert run.err.startswith("usage: linkprobe check ")
    assert "linkprobe check: --alow-private: did you mean --allow-private?" in run.err
