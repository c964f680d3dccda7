"""A rate that does not fall with size: one large task (default 1,000,000 URLs over 20,000 hosts)
through `linkprobe serve` on SQLite and on Redis, against the same run's 20,000-URL task on the
same service. Reports the rate ratio (target >= 0.9x), the service's peak RSS, the p99 of
`GET /api/v1/tasks/{id}` while the large task runs (target <= 50 ms) and, on Redis, the bytes of
Redis memory per finished URL (target <= 300).

Run alone: `PYTHONPATH=. .venv/bin/python bench/scale.py`; BENCH_SCALE_URLS sets the large size
(e.g. 200000 for a quicker look), BENCH_SCALE_HOSTS the hosts. Every task is bounded in time
(bench.service.READY_TIMEOUT_S scaled to the size).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.crawl import tree_pids
from bench.run import farm_urls, free_port, raise_fd_limit, start_farm
from bench.service import p99_ms, start

SMALL = 20_000
LARGE = int(os.environ.get("BENCH_SCALE_URLS", "1000000"))
HOSTS = int(os.environ.get("BENCH_SCALE_HOSTS", "20000"))
SECONDS_PER_URL_BOUND = 0.01  # a task slower than 100 URL/s is called stalled and stops the bench


def tree_hwm_mib(pid: int) -> float:
    """The largest peak RSS among the service's processes (API, worker processes)."""
    peaks = [0]
    for each in tree_pids(pid):
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
    return max(peaks) / 1024


def run_task(base: str, port: int, urls: int) -> dict[str, float]:
    """Submit `urls` farm URLs as text, poll until ready; the rate and the GET's p99 meanwhile."""
    body = "\n".join(farm_urls(port, urls, min(HOSTS, urls)))
    latencies: list[float] = []
    deadline = time.monotonic() + 120 + urls * SECONDS_PER_URL_BOUND
    with httpx.Client(base_url=base, timeout=60) as client:
        started = time.perf_counter()
        answer = client.post("/api/v1/tasks", content=body, headers={"content-type": "text/plain"})
        task_id = answer.json()["id"]
        while time.monotonic() < deadline:
            asked = time.perf_counter()
            task = client.get(f"/api/v1/tasks/{task_id}").json()
            latencies.append(time.perf_counter() - asked)
            if task["status"] == "ready":
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"{urls}-URL task stalled at {task['progress']['done']} done")
    wall = time.perf_counter() - started
    return {"urls_per_s": urls / wall, "get_p99_ms": p99_ms(latencies), "ok": task["progress"]["ok"]}


def redis_used(url: str) -> int:
    command = ["redis-cli", "-u", url, "info", "memory"]
    info = subprocess.run(command, capture_output=True, text=True, check=True)
    used = next(line for line in info.stdout.splitlines() if line.startswith("used_memory:"))
    return int(used.split(":")[1])


@contextmanager
def redis_server(tmp: str) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--save", "",
         "--appendonly", "yes", "--appendfsync", "everysec", "--logfile", f"{tmp}/redis.log"],
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            ping = subprocess.run(["redis-cli", "-u", url, "ping"], check=False, capture_output=True)
            if ping.returncode == 0:
                break
            time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait()


def measure(port: int, store: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, redis_server(tmp) as redis_url:
        env = {"LINKPROBE_REDIS_URL": redis_url} if store == "redis" else {}
        process, base = start("serve", Path(tmp) / "bench.db", env)
        try:
            small = run_task(base, port, SMALL)
            before = redis_used(redis_url)
            large = run_task(base, port, LARGE)
            figures = {
                "small_urls_per_s": small["urls_per_s"], "large_urls_per_s": large["urls_per_s"],
                "rate_ratio": large["urls_per_s"] / small["urls_per_s"], "large_ok": large["ok"],
                "get_p99_ms": large["get_p99_ms"], "peak_rss_mib": tree_hwm_mib(process.pid),
            }  # fmt: skip
            if store == "redis":
                figures["redis_bytes_per_url"] = (redis_used(redis_url) - before) / LARGE
        finally:
            process.terminate()
            process.wait()
    return figures


def scale_figures() -> dict[str, dict[str, float]]:
    raise_fd_limit()
    farm, port = start_farm()
    try:
        results = {store: measure(port, store) for store in ("sqlite", "redis")}
    finally:
        farm.terminate()
        farm.wait()
    print(f"\nA {LARGE:,}-URL task over {HOSTS:,} hosts through serve, against its {SMALL:,}-URL task")
    for store, f in results.items():
        print(f"  {store}: " + json.dumps({k: round(v, 2) for k, v in f.items()}))
    return results


if __name__ == "__main__":
    scale_figures()
