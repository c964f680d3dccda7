"""Schemathesis over the OpenAPI schema: generated requests never get a 5xx, with API keys
required (every request carrying a valid key) and with keys off.

It runs against `linkprobe api` (no workers) on each store, so the arbitrary URLs it submits are stored but
never probed: no traffic leaves the machine. /events streams until a task ends, so it is covered
by the API tests instead.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.api.test_auth import make_key
from tests.conftest import STORES, service_on

GENEROUS = {"LINKPROBE_QUOTA_SUBMISSIONS_PER_MINUTE": "100000", "LINKPROBE_QUOTA_TASKS_IN_FLIGHT": "100000"}


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("auth", ["required", "off"])
async def test_no_server_errors_on_generated_requests(tmp_path: Path, auth: str, kind: str) -> None:
    """With keys required every request carries a valid (non-admin) key, so the generated requests
    reach the routes, owner scoping and quotas, not only the 401 answer."""
    env, headers = {"LINKPROBE_AUTH": auth, **GENEROUS}, []
    async with service_on(kind, tmp_path, env, workers=False) as service:
        if auth == "required":
            key = await asyncio.to_thread(make_key, service.store_args, "schemathesis")
            headers = ["--header", f"Authorization: Bearer {key}"]
        process = await asyncio.create_subprocess_exec(
            os.path.join(os.path.dirname(sys.executable), "schemathesis"),
            "run",
            f"{service.url}/openapi.json",
            *headers,
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "40",
            "--exclude-path-regex",
            "/events$",
            "--request-timeout",
            "10",
            "--seed",
            "1",
            "--generation-deterministic",
            cwd=tmp_path,  # its example cache stays out of the repository
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
    text = output.decode()
    assert process.returncode == 0, text[-4000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", text)
    assert counts is not None and counts.group(1) == counts.group(2) and int(counts.group(1)) > 100, text[
        -2000:
    ]
    answered = Counter(re.findall(r'HTTP/1\.1" (\d{3})', service.log.read_text()))
    # Tasks were created, so the key opened the routes (with keys required, a task needs a valid
    # key; schemathesis also sends a few requests without it, as the schema declares the key).
    assert answered["202"] > 0, answered
