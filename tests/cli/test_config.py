"""The config file of `check` and `crawl`: found from the working directory up, its keys the
commands' own flags, paths relative to the file, command-line flags winning over it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import pytest

from linkprobe.cli import build_parser
from linkprobe.cli.config import _command, keys
from tests.cli.test_check import Run
from tests.conftest import Site, Target


async def linkprobe(*args: str, cwd: Path) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


@pytest.fixture
def project(tmp_path: Path, target: Target) -> Path:
    """A project whose linkprobe.toml holds every flag a CI run needs, and a URL list beside it."""
    (tmp_path / "links.txt").write_text(f"{target.url('/status/200')}\n{target.url('/status/404')}\n")
    (tmp_path / "linkprobe.toml").write_text(
        '[check]\ninputs = ["links.txt"]\nformat = "json"\nallow-private = true\nretries = 0\n'
        'only = "broken"\nexclude = ["-nothing-matches-this"]\n'  # a value may start with a dash
    )
    (tmp_path / "docs" / "deeper").mkdir(parents=True)
    return tmp_path


async def test_found_from_a_subdirectory_with_paths_relative_to_it(project: Path, target: Target) -> None:
    run = await linkprobe("check", cwd=project / "docs" / "deeper")
    assert run.code == 2, run.err
    assert [row["url"] for row in json.loads(run.out)] == [target.url("/status/404")]  # only = broken


async def test_flags_override_the_file(project: Path, target: Target) -> None:
    run = await linkprobe("check", "-f", "csv", "--only", "ok", cwd=project / "docs")
    assert run.out.splitlines()[0].startswith("url,index,ok,")  # -f csv wins over format = "json"
    assert target.url("/status/200") in run.out and target.url("/status/404") not in run.out
    run = await linkprobe("check", "-f", "json", target.url("/status/201"), cwd=project / "docs")
    assert [row["status_code"] for row in json.loads(run.out)] == []  # inputs replaced; only = broken
    assert run.code == 0
    run = await linkprobe("check", "--no-config", target.url("/status/201"), cwd=project)
    assert run.code == 2 and "blocked" in run.out  # no allow-private from the file


async def test_pyproject_tool_table_and_explicit_config(tmp_path: Path, target: Target) -> None:
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n\n[tool.linkprobe.check]\ninputs = ["{target.url("/status/200")}"]\n'
        'allow-private = true\nformat = "ndjson"\n'
    )
    run = await linkprobe("check", cwd=tmp_path)
    assert run.code == 0, run.err
    assert json.loads(run.out)["status_code"] == 200
    other = tmp_path / "elsewhere.toml"
    other.write_text(
        f'[check]\ninputs = ["{target.url("/status/503")}"]\nallow-private = true\nretries = 0\n'
    )
    run = await linkprobe("check", "--config", str(other), "-f", "json", cwd=tmp_path)
    assert run.code == 2 and json.loads(run.out)[0]["status_code"] == 503


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[check]\nmax_age = '1d'\n", "unknown key 'max_age' in [check]; did you mean 'max-age'?"),
        ("[check]\nconfig = 'x.toml'\n", "unknown key 'config' in [check]"),
        (
            "[check]\nformat = 'xml'\n",
            "invalid value in [check]: argument -f/--format: invalid choice: 'xml'",
        ),
        ("[check]\nallow-private = 'yes'\n", "allow-private must be true or false"),
        ("[check]\ntimeout = [1, 2]\n", "timeout takes one value"),
        ("[crawl]\ninputs = ['x']\n", "unknown key 'inputs' in [crawl]"),
        ("format = 'json'\n", "unknown key 'format' in linkprobe.toml: flags go in a table of their command"),
        ("[check\n", "is not valid TOML"),
    ],
)
async def test_a_bad_file_is_a_usage_error_naming_the_key(tmp_path: Path, text: str, said: str) -> None:
    (tmp_path / "linkprobe.toml").write_text(text)
    run = await linkprobe("check", "http://127.0.0.1:9/", cwd=tmp_path)  # blocked if ever probed
    assert run.code == 3
    assert said in run.err and str(tmp_path / "linkprobe.toml") in run.err


async def test_crawl_reads_its_table(tmp_path: Path, site: Site) -> None:
    (tmp_path / "linkprobe.toml").write_text(
        f'[crawl]\nstart = "{site.url("/b.html")}"\nallow-private = true\nformat = "json"\n'
        'exclude = ["missing|nope"]\n'
    )
    run = await linkprobe("crawl", cwd=tmp_path)
    assert run.code == 0, run.err
    assert json.loads(run.out)[0]["url"] == site.url("/b.html")
    assert (await linkprobe("crawl", "--exclude", "nothing", cwd=tmp_path)).code == 2  # the flag's list wins


def test_the_keys_are_the_commands_flags() -> None:
    """Derived from the parser: a flag added to a command is a key, with no list to keep."""
    parser = build_parser()
    check = _command(parser, "check")
    flags = {
        max(action.option_strings, key=len).lstrip("-")
        for action in check._actions
        if action.option_strings and action.dest not in ("help", "config", "no_config")
    }
    assert set(keys(check)) == flags | {"inputs"}
    check.add_argument("--brand-new", help="a flag added later")
    assert "brand-new" in keys(check)
    assert isinstance(keys(check)["max-age"], argparse.Action)
