"""--include / --exclude from the command line: patterns that would backtrack for ever with a
backtracking engine finish on RE2; patterns RE2 cannot take exit 3 naming the flag."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.cli.test_check import Run
from tests.conftest import Site, Target

# Each takes exponential time in the length of a link it does not match, on a backtracking engine.
CATASTROPHIC = ["(a+)+$", "(.+)+!$", "([^#]+)+#", "^(([^#]+)+)+#$"]
BOUND_S = 120  # a run that hangs fails here rather than holding the suite (not a speed claim)


async def linkprobe(*args: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", *args, "--allow-private", "--retries", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), BOUND_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"linkprobe {' '.join(args)[:200]} still matching after {BOUND_S} s") from None
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def excluding(patterns: list[str]) -> list[str]:
    return [arg for pattern in patterns for arg in ("--exclude", pattern)]


async def test_check_matches_catastrophic_patterns_against_a_long_link(
    tmp_path: Path, target: Target
) -> None:
    long_link = target.url("/status/200?q=" + "a" * 5000 + "!x")
    notes = tmp_path / "notes.txt"
    notes.write_text(f"see {long_link}\nand {target.url('/status/404')}\n")
    run = await linkprobe(
        "check", "--input-format", "text", "--format", "json", *excluding([*CATASTROPHIC, "404"]), str(notes)
    )
    assert run.code == 0, run.err
    assert [item["url"] for item in json.loads(run.out)] == [long_link]


async def test_crawl_matches_catastrophic_patterns_against_every_link(site: Site) -> None:
    include = CATASTROPHIC[-1] + "|^http:"  # tried first at each place, then takes every site link
    args = ["--format", "json", "--include", include, *excluding(CATASTROPHIC)]
    run = await linkprobe("crawl", *args, site.url("/index.html"))
    assert run.code == 2, run.err  # the site's missing page was found and checked
    assert site.url("/missing.html") in {item["url"] for item in json.loads(run.out)}


@pytest.mark.parametrize(
    ("command", "flag", "pattern"),
    [("check", "--include", "(a)\\1"), ("check", "--exclude", "(?=x)y"), ("crawl", "--exclude", "(?<!a)b")],
)
async def test_a_pattern_re2_cannot_take_exits_3_naming_the_flag(
    command: str, flag: str, pattern: str
) -> None:
    run = await linkprobe(command, flag, pattern, "http://127.0.0.1:9/")
    assert run.code == 3, run.err
    assert f"{flag} {pattern!r} is not supported" in run.err
