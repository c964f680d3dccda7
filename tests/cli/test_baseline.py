"""`check --baseline`: links that break, heal and start redirecting between two real runs against
the loopback target, each change in every format, and `--fail-on` exit codes."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path
from xml.etree import ElementTree as ET

from tests.cli.test_check import Run, check
from tests.conftest import Target


class Links:
    """Links of the target whose answers a test changes between two runs."""

    def __init__(self, target: Target) -> None:
        self.target, self.token = target, uuid.uuid4().hex[:8]

    def name(self, link: str) -> str:
        return f"{self.token}-{link}"

    def url(self, link: str) -> str:
        return self.target.url(f"/answer/{self.name(link)}")

    def set(self, link: str, answer: int | str) -> None:
        self.target.answers[self.name(link)] = answer


async def first_run(links: Links, tmp_path: Path, *names: str, fmt: str = "json") -> Path:
    baseline = tmp_path / f"baseline.{fmt}"
    run = await check("-f", fmt, "-o", str(baseline), *map(links.url, names))
    assert run.code in (0, 2), run.err
    return baseline


async def test_links_that_break_heal_and_redirect_are_told_apart(target: Target, tmp_path: Path) -> None:
    links = Links(target)
    links.set("breaks", 200)
    links.set("heals", 500)
    links.set("moves", 200)
    links.set("stays-broken", 404)
    baseline = await first_run(links, tmp_path, "breaks", "heals", "moves", "stays-broken", "goes")
    links.set("breaks", 503)
    links.set("heals", 200)
    links.set("moves", "/status/200")  # now redirects: same outcome, another final URL
    run = await check(
        "-f", "json", "--baseline", str(baseline),
        *map(links.url, ("breaks", "heals", "moves", "stays-broken", "arrives")),
    )  # fmt: skip
    rows = {row["url"]: row for row in json.loads(run.out)}
    changes = {url.rsplit("-", 1)[-1]: row["change"] for url, row in rows.items()}
    assert changes == {
        "breaks": "broke", "heals": "fixed", "moves": "changed", "broken": None, "arrives": "new",
        "goes": "gone",
    }  # fmt: skip
    assert rows[links.url("breaks")]["previous"] == {
        "outcome": "ok", "status_code": 200, "final_url": links.url("breaks"), "error_kind": None,
    }  # fmt: skip
    assert rows[links.url("moves")]["final_url"] == target.url("/status/200")
    assert rows[links.url("arrives")]["previous"] is None
    gone = rows[links.url("goes")]  # in the baseline only: no result, what the baseline saw
    assert set(gone) == {"url", "change", "previous"} and gone["previous"]["outcome"] == "ok"
    assert run.code == 2  # without --fail-on, every broken URL fails the run
    assert "since the baseline: 1 broke, 1 fixed, 1 changed, 1 new, 1 gone" in run.err


async def test_fail_on_broke_passes_old_broken_links_and_fails_new_breakage(
    target: Target, tmp_path: Path
) -> None:
    links = Links(target)
    links.set("old", 404)
    links.set("fine", 200)
    baseline = await first_run(links, tmp_path, "old", "fine")
    links.set("added", 500)
    run = await check(
        "--baseline", str(baseline), "--fail-on", "broke", *map(links.url, ("old", "fine", "added"))
    )
    assert run.code == 0, run.out  # old broken link and a new broken one: nothing broke since
    assert "2 broken" in run.out
    run = await check("--baseline", str(baseline), "--fail-on", "broke,new", links.url("added"))
    assert run.code == 2  # a broken link that was not in the baseline, when asked
    links.set("fine", 500)
    run = await check("--baseline", str(baseline), "--fail-on", "broke", *map(links.url, ("old", "fine")))
    assert run.code == 2
    assert "broke since the baseline (was ok 200)" in run.out


async def test_every_format_shows_the_changes(target: Target, tmp_path: Path) -> None:
    links = Links(target)
    links.set("a", 200)
    baseline = await first_run(links, tmp_path, "a", "gone", fmt="ndjson")  # NDJSON is a baseline too
    links.set("a", 410)
    urls = (links.url("a"), links.url("new"))

    async def output(fmt: str) -> Run:
        return await check("-f", fmt, "--baseline", str(baseline), *urls)

    table = (await output("table")).out
    assert "-> broke since the baseline (was ok 200)" in table
    assert "-> new since the baseline" in table
    assert ["-", "-", "gone", "-", links.url("gone")] in [line.split() for line in table.splitlines()]
    assert "-> gone since the baseline (was ok 200)" in table
    assert table.rstrip().endswith("since the baseline: 1 broke, 0 fixed, 0 changed, 1 new, 1 gone")

    markdown = (await output("markdown")).out
    assert "| # | URL | Status | Result | ms | Why | Change |" in markdown
    assert f"| {links.url('a')} | 410 | broken |" in markdown and "| broke (was ok 200) |" in markdown
    assert f"| - | {links.url('gone')} | - | gone | - | | gone (was ok 200) |" in markdown

    rows = list(csv.DictReader(io.StringIO((await output("csv")).out)))
    assert [(r["url"], r["change"], r["was"]) for r in rows] == [
        (links.url("a"), "broke", "ok 200"),
        (links.url("new"), "new", ""),
        (links.url("gone"), "gone", "ok 200"),
    ]

    lines = [json.loads(line) for line in (await output("ndjson")).out.splitlines()]
    assert {line["url"]: line["change"] for line in lines} == {
        links.url("a"): "broke", links.url("new"): "new", links.url("gone"): "gone",
    }  # fmt: skip
    assert lines[-1]["url"] == links.url("gone")  # gone lines come after the run's results

    suite = ET.fromstring((await output("junit")).out)
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases[links.url("a")].find("properties/property[@name='change']").get("value") == "broke"  # type: ignore[union-attr]
    assert cases[links.url("gone")].find("skipped").get("type") == "gone"  # type: ignore[union-attr]

    links.set("a", "/status/200")
    redirects = (await output("redirects")).out
    assert list(csv.reader(io.StringIO(redirects)))[1][-2:] == ["changed", "ok 200"]


async def test_a_run_with_a_baseline_is_the_next_baseline(target: Target, tmp_path: Path) -> None:
    links = Links(target)
    first = await first_run(links, tmp_path, "kept", "dropped")
    second = tmp_path / "second.json"
    run = await check("-f", "json", "-o", str(second), "--baseline", str(first), links.url("kept"))
    assert run.code == 0, run.err
    run = await check("-f", "json", "--baseline", str(second), links.url("kept"))
    assert [row["change"] for row in json.loads(run.out)] == [None]  # `dropped` is not gone twice
    links.set("kept", 500)  # the baseline read whole before the output replaces it: updated in place
    run = await check("-f", "json", "--baseline", str(second), "-o", str(second), links.url("kept"))
    assert run.code == 2 and [row["change"] for row in json.loads(second.read_text())] == ["broke"]


async def test_bad_baseline_and_fail_on_without_one_exit_3(target: Target, tmp_path: Path) -> None:
    run = await check("--fail-on", "broke", target.url("/status/200"))
    assert run.code == 3 and "--fail-on broke needs --baseline FILE" in run.err
    run = await check("--fail-on", "fixed", target.url("/status/200"))
    assert run.code == 3 and "--fail-on" in run.err
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    run = await check("--baseline", str(bad), target.url("/status/200"))
    assert run.code == 3 and f"--baseline {bad} is not JSON or NDJSON output of check" in run.err
    run = await check("--baseline", str(tmp_path / "missing.json"), target.url("/status/200"))
    assert run.code == 3 and "cannot read --baseline" in run.err and "a first run: write one" in run.err


async def test_a_page_of_the_apis_results_is_a_baseline(target: Target, tmp_path: Path) -> None:
    links = Links(target)
    links.set("breaks", 200)
    first = await first_run(links, tmp_path, "breaks")
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"items": json.loads(first.read_text()), "next_cursor": None}))
    links.set("breaks", 404)
    run = await check("-f", "json", "--baseline", str(page), "--fail-on", "broke", links.url("breaks"))
    assert run.code == 2 and [row["change"] for row in json.loads(run.out)] == ["broke"], run.err


async def test_a_baseline_written_with_only_still_holds_the_ok_links_so_one_that_breaks_broke(
    target: Target, tmp_path: Path
) -> None:
    links = Links(target)
    links.set("breaks", 200)
    links.set("broken", 404)
    for fmt in ("json", "ndjson"):
        baseline = tmp_path / f"baseline.{fmt}"
        urls = list(map(links.url, ("breaks", "broken")))
        links.set("breaks", 200)
        first = await check("-f", fmt, "--only", "broken", "-o", str(baseline), *urls)
        assert first.code == 2 and "--only does not filter" in first.err
        links.set("breaks", 503)
        again = ("-f", "json", "--only", "broken", "--baseline", str(baseline), "--fail-on", "broke")
        run = await check(*again, *urls)
        assert run.code == 2, run.err  # the link was ok in the baseline: it broke
        assert {row["url"]: row["change"] for row in json.loads(run.out)}[links.url("breaks")] == "broke"
