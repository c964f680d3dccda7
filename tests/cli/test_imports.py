"""`linkprobe check` imports only what it uses: never the service stack, pydantic only to read
LINKPROBE_* settings, the document parsers only for documents, uvloop only for long runs.
`linkprobe crawl` shares the stores' crawl rules (store.base), never the rest of the stack."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from linkprobe.cli.check import LONG_RUN
from tests.conftest import Site, Target

SERVICE_STACK = {
    "fastapi", "starlette", "uvicorn", "redis", "pydantic", "pydantic_settings", "prometheus_client",
    "multipart", "ijson", "orjson", "lxml", "markdown_it", "linkprobe.api", "linkprobe.store",
    "linkprobe.settings", "linkprobe.worker", "linkprobe.crawl",
}  # fmt: skip
# What a crawl never needs: it parses HTML (lxml) and shares store.base with the worker.
NOT_FOR_CRAWL = SERVICE_STACK - {"lxml", "orjson", "linkprobe.store", "linkprobe.crawl"}

# Runs the command in this interpreter, then lists the modules it loaded (package names and
# linkprobe's subpackages) after the JSON report on stdout.
RUN_AND_LIST = """
import json, sys
from linkprobe.cli import main
code = main(sys.argv[1:])
names = {name.split(".")[0] for name in sys.modules}
names |= {".".join(name.split(".")[:2]) for name in sys.modules if name.startswith("linkprobe.")}
print(json.dumps({"code": code, "modules": sorted(names)}))
"""


async def loaded_by(
    command: str, *args: str, env: dict[str, str] | None = None, code: int = 0
) -> tuple[list[dict[str, object]], set[str]]:
    clean = {name: value for name, value in os.environ.items() if not name.upper().startswith("LINKPROBE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_AND_LIST, command, "-q", "--retries", "0", "-f", "json", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**clean, **(env or {})},
    )  # fmt: skip
    out, err = await process.communicate()
    report, _, listing = out.decode().rpartition("\n{")
    loaded = json.loads("{" + listing)
    assert loaded["code"] == code, err.decode()
    return json.loads(report), set(loaded["modules"])


async def loaded_by_check(
    *args: str, env: dict[str, str] | None = None
) -> tuple[list[dict[str, object]], set[str]]:
    return await loaded_by("check", *args, env=env)


async def test_a_url_check_loads_no_service_stack(target: Target) -> None:
    results, modules = await loaded_by_check("--allow-private", target.url("/status/200"))
    assert [r["status_code"] for r in results] == [200]
    assert "pycurl" in modules and "linkprobe.engine" in modules
    assert "aiohttp" not in modules  # the transport is libcurl alone
    assert modules & SERVICE_STACK == set()
    assert "uvloop" not in modules
    assert "asyncio" not in modules  # one URL is probed on a blocking transport, without a loop
    assert "re2" not in modules  # no --include/--exclude: no pattern engine


async def test_a_url_check_builds_only_its_command_and_dials_without_socket_py(target: Target) -> None:
    """What a check of one URL does not use stays out of its memory (bench/check_one.py)."""
    results, modules = await loaded_by_check("--allow-private", target.url("/status/200"))
    assert [r["status_code"] for r in results] == [200]
    assert "linkprobe.frontier" not in modules  # crawl's flags are declared only for a crawl
    assert "shutil" not in modules  # argparse's terminal width (with bz2, lzma): only for printed help
    assert "socket" not in modules  # the egress check and the dials use _socket


async def test_a_long_run_gets_uvloop(target: Target, tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text("".join(target.url(f"/status/200?n={n}") + "\n" for n in range(LONG_RUN)))
    results, modules = await loaded_by_check("--allow-private", str(listing))
    assert len(results) == LONG_RUN and all(r["status_code"] == 200 for r in results)
    assert "uvloop" in modules


async def test_settings_in_the_environment_are_still_read(target: Target) -> None:
    """Without --allow-private the loopback target is blocked, unless LINKPROBE_ALLOW_PRIVATE says."""
    results, modules = await loaded_by_check(
        target.url("/status/200"), env={"LINKPROBE_ALLOW_PRIVATE": "true"}
    )
    assert [r["status_code"] for r in results] == [200]
    assert "pydantic_settings" in modules  # the environment is parsed by the one Settings declaration


async def test_documents_load_their_parser_only(target: Target, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(f'<a href="{target.url("/status/200")}">ok</a>')
    results, modules = await loaded_by_check("--allow-private", str(page))
    assert [r["status_code"] for r in results] == [200]
    assert "lxml" in modules and modules & (SERVICE_STACK - {"lxml"}) == set()


async def test_a_crawl_loads_no_pydantic_api_or_redis(site: Site) -> None:
    results, modules = await loaded_by("crawl", "--allow-private", site.url("/index.html"), code=2)
    by_url = {r["url"]: r for r in results}
    assert by_url[site.url("/missing.html")]["status_code"] == 404
    assert by_url["mailto:team@site.example"]["error"] == {
        "kind": "unsupported",
        "message": "mailto: links are not checked",
    }
    assert {"lxml", "linkprobe.crawl", "linkprobe.frontier"} <= modules
    assert modules & NOT_FOR_CRAWL == set()
    assert not any(name.startswith("linkprobe.store") for name in modules)  # the frontier is the library's
