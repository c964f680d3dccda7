"""`linkprobe check` as a real subprocess against the loopback target server."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.conftest import Target


@dataclass
class Run:
    code: int
    out: str
    err: str


async def check(*args: str, stdin: str = "") -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "check", "--allow-private", "--retries", "0", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate(stdin.encode())
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def test_all_ok_exits_0(target: Target) -> None:
    run = await check(target.url("/status/200"), target.url("/redirect/2"))
    assert run.code == 0, run.err
    assert "2 URLs: 2 ok, 0 broken" in run.out


async def test_any_broken_exits_2(target: Target) -> None:
    run = await check(target.url("/status/200"), target.url("/status/404"))
    assert run.code == 2
    assert "1 ok, 1 broken" in run.out


@pytest.mark.parametrize(
    "args", [[], ["--format", "xml", "http://x.example/"], ["--accept", "abc", "http://x.example/"]]
)
async def test_bad_usage_exits_3(args: list[str]) -> None:
    run = await check(*args)
    assert run.code == 3
    assert "error" in run.err


async def test_json_is_in_input_order(target: Target) -> None:
    urls = [target.url("/slow?s=0.3"), target.url("/status/404"), "not-a-url", target.url("/status/200")]
    run = await check("--format", "json", *urls)
    data = json.loads(run.out)
    assert [item["url"] for item in data] == urls
    assert [item["index"] for item in data] == [0, 1, 2, 3]
    assert data[2]["error"]["kind"] == "invalid_url"
    assert data[1]["status_code"] == 404 and data[1]["ok"] is False


async def test_ndjson_streams_in_completion_order(target: Target) -> None:
    run = await check("--format", "ndjson", target.url("/slow?s=0.4"), target.url("/status/200"))
    lines = [json.loads(line) for line in run.out.splitlines()]
    assert [line["index"] for line in lines] == [1, 0]


async def test_csv(target: Target) -> None:
    run = await check("--format", "csv", target.url("/status/200"), target.url("/loop/a"))
    rows = list(csv.DictReader(io.StringIO(run.out)))
    assert [row["status_code"] for row in rows] == ["200", "302"]
    assert rows[1]["error_kind"] == "redirect_loop" and rows[1]["redirects"] == "2"


async def test_junit(target: Target) -> None:
    run = await check("--format", "junit", target.url("/status/200"), target.url("/status/500"))
    suite = ET.fromstring(run.out)
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failed = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert [case.get("name") for case in failed] == [target.url("/status/500")]


async def test_markdown(target: Target) -> None:
    run = await check("--format", "markdown", target.url("/status/404"))
    assert "| 0 | " + target.url("/status/404") + " | 404 | broken |" in run.out


async def test_files_and_stdin_with_comments(target: Target, tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text(f"# a comment\n\n{target.url('/status/200')}\n  {target.url('/status/201')}  \n")
    output = tmp_path / "out.json"
    run = await check(
        "-f", "json", "-o", str(output), str(listing), "-", stdin=f"{target.url('/status/202')}\n"
    )
    assert run.code == 0 and run.out == ""
    statuses = [item["status_code"] for item in json.loads(output.read_text())]
    assert statuses == [200, 201, 202]


async def test_no_progress_bar_when_not_a_tty(target: Target) -> None:
    run = await check(target.url("/status/200"))
    assert "[" not in run.err


async def test_default_policy_blocks_loopback(target: Target) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "check", "-f", "json", target.url("/status/200"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode == 2
    assert json.loads(out)[0]["error"]["kind"] == "blocked"


async def test_progress_bar_on_a_terminal(target: Target) -> None:
    import os
    import pty

    leader, follower = pty.openpty()  # stderr is a real terminal
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "linkprobe", "check", "--allow-private", "-f", "json",
            target.url("/status/200"), target.url("/status/404"),
            stdout=asyncio.subprocess.PIPE, stderr=follower,
        )  # fmt: skip
        await process.communicate()
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert process.returncode == 2
    assert b"2/2 ok 1 broken 1" in drawn


async def test_quiet_suppresses_the_bar_on_a_terminal(target: Target) -> None:
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "linkprobe", "check", "--allow-private", "-q", target.url("/status/200"),
            stdout=asyncio.subprocess.PIPE, stderr=follower,
        )  # fmt: skip
        await process.communicate()
        os.set_blocking(leader, False)
        try:
            drawn = os.read(leader, 4096)
        except BlockingIOError:
            drawn = b""
    finally:
        os.close(follower)
        os.close(leader)
    assert process.returncode == 0 and b"ok 1" not in drawn
