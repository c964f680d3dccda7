"""`linkprobe check` as a real subprocess against the loopback target server."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import resource
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.conftest import Target, wait_for


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
    assert "error" in run.err or "invalid value" in run.err


async def test_json_is_in_input_order(target: Target) -> None:
    urls = [target.url("/slow?s=0.3"), target.url("/status/404"), "http://bad host.example/"]
    urls.append(target.url("/status/200"))
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


async def test_an_argument_without_a_scheme_must_be_an_existing_file(tmp_path: Path) -> None:
    run = await check(str(tmp_path / "urls.txt"))
    assert run.code == 3
    assert run.err.strip() == f"linkprobe: no such file: {tmp_path / 'urls.txt'} " + (
        "(an argument without a scheme such as https:// is a file)"
    )
    directory = await check(str(tmp_path / "docs"))
    assert directory.code == 3 and f"no such file: {tmp_path / 'docs'} " in directory.err
    glob = await check(str(tmp_path / "*.md"))
    assert glob.code == 3 and glob.err.strip() == f"linkprobe: no file matches {tmp_path / '*.md'}"


async def test_unwritable_output_exits_3_before_probing(target: Target) -> None:
    run = await check("-o", "/no/such/dir/x", target.url("/status/200"))
    assert run.code == 3
    assert run.err.strip() == "linkprobe: cannot write --output /no/such/dir/x: No such file or directory"


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--timeout", "1000"], {}, "--timeout"),
        (["--concurrency", "0"], {}, "--concurrency"),
        (["--max-redirects", "-1"], {}, "--max-redirects"),
        (["--per-host", "0"], {}, "--per-host"),
        (["--allow-cidr", "not-a-network"], {}, "--allow-cidr"),
        (["-H", "X-Token: a\rb"], {}, "-H/--header"),
        (["-H", "no colon"], {}, "-H/--header"),
        (["--user-agent", "a\nb"], {}, "--user-agent"),
        ([], {"LINKPROBE_CONCURRENCY": "many"}, "LINKPROBE_CONCURRENCY"),
    ],
)
async def test_bad_flag_values_exit_3_with_one_sentence_naming_the_flag(
    args: list[str], env: dict[str, str], named: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "check", *args, "http://x.example/",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **env},
    )  # fmt: skip
    _, raw = await process.communicate()
    err = raw.decode()
    assert process.returncode == 3
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"linkprobe: invalid value for {named}: "), err
    for internal in ("ProbeOptions", "EngineConfig", "Settings", "validation error", "pydantic", "Traceback"):
        assert internal not in err


async def test_url_list_line_endings_and_trailing_comments(target: Target, tmp_path: Path) -> None:
    a, b, c, d = (target.url(f"/status/{code}") for code in (200, 201, 202, 203))
    listing = tmp_path / "urls.txt"
    listing.write_bytes(f"{a}  # home\r{b}\r\n{c}\t#tab comment\n{d}#kept\r\n# end".encode())
    from_file = await check("-f", "json", str(listing))
    from_stdin = await check("-f", "json", "-", stdin=listing.read_bytes().decode())
    for run in (from_file, from_stdin):
        assert run.code == 0, run.err
        assert [item["url"] for item in json.loads(run.out)] == [a, b, c, d + "#kept"]


async def test_blocked_rows_say_why_and_how_to_allow_it(target: Target) -> None:
    url = target.url("/status/200")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "check", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    lines = out.decode().splitlines()
    row = next(i for i, line in enumerate(lines) if line.endswith(url))
    assert "blocked" in lines[row]
    assert "blocked by egress policy: 127.0.0.1 is" in lines[row + 1]
    assert lines[row + 1].endswith("to allow it: --allow-private or --allow-cidr 127.0.0.1/32")
    as_json = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "check", "-f", "json", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await as_json.communicate()
    assert "--allow-private or --allow-cidr" in err.decode()


async def test_unsupported_redirect_passes_unless_fail_unsupported(target: Target) -> None:
    urls = [target.url("/status/200"), target.url("/redirect-to?url=mailto:someone@example.com")]
    run = await check(*urls)
    assert run.code == 0, run.out
    assert "2 URLs: 1 ok, 0 broken, 1 unsupported" in run.out
    failing = await check("--fail-unsupported", *urls)
    assert failing.code == 2
    assert "1 unsupported" in failing.out


@pytest.mark.parametrize("fmt", ["json", "table"])
async def test_ctrl_c_exits_130_keeping_results_and_counting_cancelled_apart(
    target: Target, tmp_path: Path, fmt: str
) -> None:
    """A real SIGINT once the first URL is done and the second is in flight (one at a time)."""
    urls = [target.url("/status/200"), target.url("/slow?s=60"), target.url("/status/201")]
    output = tmp_path / f"out.{fmt}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "check", "--allow-private", "--concurrency", "1",
        "--timeout", "120", "-f", fmt, "-o", str(output), *urls,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    deadline = asyncio.get_running_loop().time() + 60
    while target.active == 0:  # the slow URL has arrived, so the first one has finished
        assert asyncio.get_running_loop().time() < deadline, "the slow URL never arrived"
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 130, err
    text = output.read_text()
    if fmt == "json":
        data = json.loads(text)
        assert [item["url"] for item in data] == urls
        assert data[0]["ok"] is True
        assert [item["error"]["kind"] for item in data[1:]] == ["cancelled", "cancelled"]
    else:
        assert "Interrupted (Ctrl-C) before the end: 3 URLs: 1 ok, 0 broken, 2 cancelled" in text


async def test_check_imports_neither_the_service_nor_the_stores(target: Target) -> None:
    """What `linkprobe check` loads: the engine, not FastAPI, Redis, uvicorn or the stores."""
    heavy = ["fastapi", "starlette", "uvicorn", "redis", "linkprobe.api", "linkprobe.store", "sqlite3"]
    script = (
        "import sys\nfrom linkprobe.cli import main\n"
        f"code = main(['check', '--allow-private', '-q', {target.url('/status/200')!r}])\n"
        f"print(code, [m for m in {heavy!r} if m in sys.modules])"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err
    assert out.decode().splitlines()[-1] == "0 []", out


async def test_junit_skips_unsupported_rather_than_failing(target: Target) -> None:
    unsupported = target.url("/redirect-to?url=ftp://files.example/a")
    run = await check("-f", "junit", target.url("/status/500"), unsupported)
    suite = ET.fromstring(run.out)
    assert (suite.get("failures"), suite.get("skipped")) == ("1", "1")
    skipped = [case.get("name") for case in suite.iter("testcase") if case.find("skipped") is not None]
    assert skipped == [unsupported]


def _urls_over_hosts(target: Target, count: int, hosts: int, path: str = "/status/200") -> list[str]:
    sep = "&" if "?" in path else "?"
    return [
        target.url(f"{path}{sep}n={n}", host=f"127.0.{n % hosts // 200}.{n % hosts % 200 + 1}")
        for n in range(count)
    ]


async def test_jobs_split_the_input_and_every_url_has_one_result_in_order(
    target: Target, tmp_path: Path
) -> None:
    urls = _urls_over_hosts(target, 1200, 60)
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls))
    run = await check("--jobs", "3", "-f", "json", str(listing))
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert [item["url"] for item in data] == urls and all(item["ok"] for item in data)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listed:
        return [int(child) for child in listed.read().split()]


async def _slow_run(target: Target, tmp_path: Path) -> tuple[asyncio.subprocess.Process, list[str], Path]:
    """2 processes, each with slow URLs that hold their every slot, started and waiting."""
    urls = _urls_over_hosts(target, 1000, 100) + _urls_over_hosts(target, 40, 40, "/slow?s=60")
    listing, output = tmp_path / "urls.txt", tmp_path / "out.json"
    listing.write_text("\n".join(urls))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "check", "--allow-private", "--retries", "0", "--jobs", "2",
        "--timeout", "120", "--concurrency", "16", "-f", "json", "-o", str(output), str(listing),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await wait_for(lambda: target.active >= 16, "the slow URLs of both processes")
    return process, urls, output


async def test_ctrl_c_with_jobs_exits_130_and_cancels_what_is_left_in_every_process(
    target: Target, tmp_path: Path
) -> None:
    process, urls, output = await _slow_run(target, tmp_path)
    assert len(_children(process.pid)) == 2
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 130, err
    data = json.loads(output.read_text())
    assert [item["url"] for item in data] == urls
    kinds = {item["error"]["kind"] for item in data if "/slow" in item["url"]}
    assert kinds == {"cancelled"}


async def test_a_probing_process_that_dies_leaves_internal_results_not_gaps(
    target: Target, tmp_path: Path
) -> None:
    process, urls, output = await _slow_run(target, tmp_path)
    child = _children(process.pid)[0]
    os.kill(child, signal.SIGKILL)
    await wait_for(lambda: target.active <= 8, "the dead process's connections to close")
    os.kill(process.pid, signal.SIGINT)  # the parent's own slow URLs would take a minute
    await asyncio.wait_for(process.communicate(), 60)
    data = json.loads(output.read_text())
    assert [item["url"] for item in data] == urls
    kinds = [item["error"]["kind"] for item in data if item["error"]]
    assert "internal" in kinds and set(kinds) <= {"internal", "cancelled"}


async def test_ctrl_c_during_a_one_url_check_exits_130_with_the_url_cancelled(
    target: Target, tmp_path: Path
) -> None:
    """One URL is probed without an event loop: Ctrl-C must still stop it and say so."""
    output = tmp_path / "out.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "check", "--allow-private", "--timeout", "120",
        "-f", "json", "-o", str(output), target.url("/slow?s=60"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await wait_for(lambda: target.active >= 1, "the slow URL to arrive")
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, err
    (item,) = json.loads(output.read_text())
    assert item["error"]["kind"] == "cancelled" and b"Traceback" not in err


async def test_with_jobs_results_stream_while_a_few_urls_hang(target: Target, tmp_path: Path) -> None:
    """Each probing process sends what it has at least every 50 ms, not only with its next result."""
    fast = _urls_over_hosts(target, 600, 60)
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join([*fast, *_urls_over_hosts(target, 2, 2, "/slow?s=60")]))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "check", "--allow-private", "--retries", "0", "--jobs", "2",
        "--timeout", "120", "-f", "ndjson", str(listing),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    seen: set[str] = set()
    try:
        while len(seen) < len(fast):
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            seen.add(json.loads(line)["url"])
        assert process.returncode is None  # every fast result arrived while the slow ones hang
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.communicate(), 60)
    assert seen == set(fast)


def _open_files(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


async def _check_limited(limit: int, *args: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkprobe", "check", "--allow-private", "--retries", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=lambda: _open_files(limit),
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def test_under_a_low_open_file_limit_every_healthy_url_over_more_hosts_than_files_is_ok(
    target: Target, tmp_path: Path
) -> None:
    urls = _urls_over_hosts(target, 1500, 600)  # 600 hosts, 256 descriptors
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls))
    run = await _check_limited(256, "--concurrency", "64", "-f", "json", str(listing))
    assert run.code == 0, run.err
    assert [item["ok"] for item in json.loads(run.out)] == [True] * len(urls)


async def test_a_concurrency_the_open_file_limit_cannot_hold_is_refused_before_probing(
    target: Target,
) -> None:
    run = await _check_limited(
        256, "--concurrency", "1000", target.url("/status/200"), target.url("/status/201")
    )
    assert run.code == 3 and "ulimit -n" in run.err and "concurrency 1000" in run.err, run.err
