"""Schemathesis over the OpenAPI schema: generated requests never get a 5xx.

It runs against `linkprobe api` (no workers), so the arbitrary URLs it submits are stored but
never probed: no traffic leaves the machine. /events streams until a task ends, so it is covered
by the API tests instead.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from tests.conftest import start_service


async def test_no_server_errors_on_generated_requests(tmp_path: Path) -> None:
    service = await start_service(tmp_path, "api", "--db", str(tmp_path / "schema.db"), name="api")
    try:
        process = await asyncio.create_subprocess_exec(
            os.path.join(os.path.dirname(sys.executable), "schemathesis"),
            "run",
            f"{service.url}/openapi.json",
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
    finally:
        await service.stop()
    text = output.decode()
    assert process.returncode == 0, text[-4000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", text)
    assert counts is not None and counts.group(1) == counts.group(2) and int(counts.group(1)) > 100, text[
        -2000:
    ]
