"""The shipped UI: built from its sources, self-contained (no CDN), CSP-friendly, served by the API."""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import tomllib

import httpx
import pytest

from linkprobe.ui import STATIC
from linkprobe.ui.openapi import document
from tests.ui.conftest import ROOT

PAGES = ["index.html", "docs.html"]


def test_the_shipped_build_matches_the_sources() -> None:
    node = shutil.which("node")
    assert node, "node is missing: `make node` installs it"
    assert (ROOT / "ui" / "node_modules").is_dir(), "run `make ui` (npm ci from ui/package-lock.json)"
    run = subprocess.run(
        [node, "build.mjs", "--check"], cwd=ROOT / "ui", capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_ui_types_are_generated_from_the_current_openapi_document() -> None:
    """ui/src/openapi.ts is what `make ui` generates (npm run types) from the app's OpenAPI document
    now: a field the API adds, renames or drops fails here until the types are generated again."""
    npm = shutil.which("npm")
    assert npm, "npm is missing: `make node` installs it"
    run = subprocess.run(
        [npm, "run", "--silent", "types"], cwd=ROOT / "ui", input=json.dumps(document()),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    committed = (ROOT / "ui" / "src" / "openapi.ts").read_text()
    drift = difflib.unified_diff(
        committed.splitlines(), run.stdout.splitlines(), "committed", "generated", lineterm=""
    )
    assert run.stdout == committed, "ui/src/openapi.ts is stale (run make ui):\n" + "\n".join(
        list(drift)[:60]
    )


def test_the_package_ships_the_built_assets() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"ui/static/*", "ui/static/swagger/*"} <= set(data["linkprobe"])
    for name in [*PAGES, "app.js", "app.css", "docs.js", "swagger/swagger-ui-bundle.js", "swagger/LICENSE"]:
        assert (STATIC / name).is_file(), name


@pytest.mark.parametrize("name", PAGES)
def test_pages_load_nothing_from_elsewhere_and_nothing_inline(name: str) -> None:
    html = (STATIC / name).read_text()
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert references and all(ref.startswith(("/", "#")) for ref in references), references
    assert "style=" not in html and "<style" not in html
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, re.DOTALL)
    assert scripts and all(body.strip() == "" for body in scripts)  # every script is a file


async def test_the_api_serves_the_ui_and_its_assets(api: httpx.AsyncClient) -> None:
    for path in ["/", "/docs"]:
        page = await api.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for ref in re.findall(r'(?:src|href)="(/[^"]+)"', page.text):
            asset = await api.get(ref)
            assert asset.status_code == 200, ref
    assert (
        (await api.get("/ui/app.js"))
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )
    assert (await api.get("/ui/missing.js")).status_code == 404
