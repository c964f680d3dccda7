"""API responsiveness under hostile intake: GET /healthz and GET /api/v1/tasks/{id} latency
(p50, p99) from POLLERS clients while one hostile body is processed by `linkprobe api` (SQLite,
no workers), the hostile request's own time, and the CPU time the API process spent meanwhile
(`api_cpu_s`: its own, the intake processes' not included; on a busy machine the latencies vary
with the load, this much less). The issue's target: p99 under 50 ms.

Run alone with `PYTHONPATH=. .venv/bin/python bench/intake.py` (bench/run.py runs it last).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.run import free_port

POLLERS = int(os.environ.get("BENCH_POLLERS", "20"))
POLL_EVERY_S = 0.05  # each client's pause between answers (a UI polls a task; it does not flood)
SCALE = float(os.environ.get("BENCH_INTAKE_SCALE", "1"))  # below 1: smaller bodies, quicker


def _n(count: int) -> int:
    return max(1, int(count * SCALE))


def deep_json() -> bytes:
    return b'{"urls": ' + b"[" * _n(200_000) + b"]" * _n(200_000) + b"}"


def long_line() -> bytes:
    return b"http://127.0.0.1:9/" + b"a" * _n(16 << 20)


def comment_lines() -> bytes:
    return b"# a comment line, no URL here\n" * _n((260 << 20) // 30) + b"http://127.0.0.1:9/\n"


def big_task() -> bytes:
    return json.dumps({"urls": [f"http://127.0.0.1:9/item/{i}" for i in range(_n(200_000))]}).encode()


def html_page() -> bytes:
    rows = (b'<p><a href="https://example.com/page/%07d">link</a></p>\n' % i for i in range(_n(1_000_000)))
    return b"<html><body>\n" + b"".join(rows) + b"</body></html>\n"


def gzip_sitemap() -> bytes:
    rows = (b"<url><loc>https://example.com/p/%d</loc></url>\n" % i for i in range(_n(1_300_000)))
    xml = b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' + b"".join(rows) + b"</urlset>\n"
    return gzip.compress(xml)


CASES: list[tuple[str, str, Callable[[], bytes]]] = [
    ("deep nesting (400 KB)", "application/json", deep_json),
    ("one 16 MB line", "text/plain", long_line),
    ("260 MB of comment lines", "text/plain", comment_lines),
    ("200,000-URL JSON task", "application/json", big_task),
    ("HTML page, 1M links", "text/html", html_page),
    ("gzip sitemap (64 MiB inflated)", "application/gzip", gzip_sitemap),
]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def _poll(client: httpx.AsyncClient, path: str, done: asyncio.Event, out: list[float]) -> None:
    while not done.is_set():
        start = time.perf_counter()
        with contextlib.suppress(httpx.TransportError):  # a dropped connection: counted as the wait it was
            await client.get(path)
        out.append((time.perf_counter() - start) * 1000)
        await asyncio.sleep(POLL_EVERY_S)


async def _send(url: str, content_type: str, body: bytes) -> int:
    """POST the hostile body from another process (curl), so that sending it takes nothing from
    the pollers' event loop: their latencies are the API's alone."""
    with tempfile.NamedTemporaryFile(suffix=".body") as file:
        file.write(body)
        file.flush()
        curl = await asyncio.create_subprocess_exec(
            "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Content-Type: {content_type}",
            "--data-binary", f"@{file.name}", f"{url}/api/v1/tasks", stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await curl.communicate()
    return int(out or 0)


def cpu_s(pid: int) -> float:
    """The process's own CPU time (user and system), not its children's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _case(url: str, task_path: str, content_type: str, body: bytes, pid: int) -> dict[str, float]:
    done = asyncio.Event()
    latencies: dict[str, list[float]] = {"/healthz": [], task_path: []}
    limits = httpx.Limits(max_connections=POLLERS + 1)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        pollers = [
            asyncio.create_task(_poll(client, path, done, latencies[path]))
            for n in range(POLLERS)
            for path in ["/healthz" if n % 2 else task_path]
        ]
        start, cpu = time.perf_counter(), cpu_s(pid)
        status = await _send(url, content_type, body)
        took, cpu = time.perf_counter() - start, cpu_s(pid) - cpu
        done.set()
        await asyncio.gather(*pollers)
    return {
        "status": status, "request_s": round(took, 2), "api_cpu_s": round(cpu, 2),
        "healthz_p50_ms": round(percentile(latencies["/healthz"], 0.5), 1),
        "healthz_p99_ms": round(percentile(latencies["/healthz"], 0.99), 1),
        "task_p50_ms": round(percentile(latencies[task_path], 0.5), 1),
        "task_p99_ms": round(percentile(latencies[task_path], 0.99), 1),
    }  # fmt: skip


async def _wait_healthy(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("linkprobe api did not start")


async def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        command = [sys.executable, "-m", "linkprobe", "api", "--db", str(Path(tmp) / "bench.db")]
        server = subprocess.Popen(  # noqa: ASYNC220 (started once, before anything is measured)
            [*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await _wait_healthy(url)
            async with httpx.AsyncClient(base_url=url) as client:
                task = (await client.post("/api/v1/tasks", json={"urls": ["http://127.0.0.1:9/"]})).json()
            chosen = os.environ.get("BENCH_INTAKE_CASES")  # e.g. "0,3": some cases only
            cases = [CASES[int(i)] for i in chosen.split(",")] if chosen else CASES
            for name, content_type, make in cases:
                path = f"/api/v1/tasks/{task['id']}"
                figures = await _case(url, path, content_type, make(), server.pid)
                rows.append({"case": name, **figures})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            server.terminate()
            server.wait()
    return rows


def intake_figures() -> None:
    print(f"\nAPI responsiveness under hostile intake ({POLLERS} clients polling /healthz and a task)")
    asyncio.run(run())


if __name__ == "__main__":
    intake_figures()
