"""Service figures for `make bench`: end-to-end throughput through the API, and the peak memory
of a large upload. Both run `linkprobe` as real subprocesses, like production."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.crawl import tree_pids
from bench.run import farm_urls, free_port

READY_TIMEOUT_S = 600


def start(command: str, db: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {**os.environ, "LINKPROBE_ALLOW_PRIVATE": "1", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "linkprobe", command, "--port", str(port), "--db", str(db)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(400):  # ready: the store open, and serve's worker processes started
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"linkprobe {command} did not start")


def wait_ready(base: str, task_id: str, latencies: list[float] | None = None) -> dict[str, object]:
    """Poll the task until `ready`; each GET's latency goes to `latencies` (it runs under load)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            task: dict[str, object] = client.get(f"{base}/api/v1/tasks/{task_id}").json()
            if latencies is not None:
                latencies.append(time.perf_counter() - started)
            if task["status"] == "ready":
                return task
            time.sleep(0.05)
    raise TimeoutError(task_id)


def p99_ms(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def idle_get_p99_ms(base: str, task_id: str, count: int = 300) -> float:
    """The same GET on the idle service: the baseline of the p99 under load."""
    latencies = []
    with httpx.Client() as client:
        for _ in range(count):
            started = time.perf_counter()
            client.get(f"{base}/api/v1/tasks/{task_id}").raise_for_status()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.005)
    return p99_ms(latencies)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time so far of a process and its descendants (those alive, and those
    that ended and were waited for: a process's cutime and cstime)."""
    ticks = 0
    for each in tree_pids(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        ticks += sum(int(field) for field in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def timed_task(base: str, port: int, urls: int, hosts: int, pid: int | None = None) -> dict[str, float]:
    """Submit the farm workload as a text upload and time it until the task is `ready`; with
    `pid`, also the CPU that process (`linkprobe serve`) and its children spent per URL."""
    body = "\n".join(farm_urls(port, urls, hosts))
    cpu = cpu_seconds(pid) if pid is not None else float("nan")
    started = time.perf_counter()
    response = httpx.post(f"{base}/api/v1/tasks", content=body, headers={"content-type": "text/plain"})
    latencies: list[float] = []
    task = wait_ready(base, response.json()["id"], latencies)
    wall = time.perf_counter() - started
    ok = task["progress"]["ok"]  # type: ignore[index]
    if pid is not None:
        cpu = cpu_seconds(pid) - cpu
    return {
        "urls_per_s": urls / wall, "cpu_ms_per_url": cpu * 1000 / urls, "ok": float(ok),
        "get_p99_ms": p99_ms(latencies), "get_idle_p99_ms": idle_get_p99_ms(base, response.json()["id"]),
    }  # fmt: skip


def end_to_end(port: int, urls: int, hosts: int, env: dict[str, str] | None = None) -> dict[str, float]:
    """Submit the farm workload to `linkprobe serve` (its environment: `env` over ours) and time
    it until `ready`."""
    with tempfile.TemporaryDirectory() as tmp:
        process, base = start("serve", Path(tmp) / "bench.db", env)
        try:
            figures = timed_task(base, port, urls, hosts, process.pid)
        finally:
            process.terminate()
            process.wait()
    return figures


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def upload_memory(count: int) -> dict[str, float]:
    """Peak RSS of `linkprobe api` (no workers) after accepting a text upload of `count` URLs."""
    with tempfile.TemporaryDirectory() as tmp:
        process, base = start("api", Path(tmp) / "upload.db", {"LINKPROBE_MAX_REQUEST_BYTES": str(1 << 30)})
        try:
            idle = peak_rss_mib(process.pid)
            body = "".join(f"http://host{i % 50000}.example/page/{i}\n" for i in range(count)).encode()
            started = time.perf_counter()
            headers = {"content-type": "text/plain"}
            response = httpx.post(f"{base}/api/v1/tasks", content=body, headers=headers, timeout=600)
            seconds = time.perf_counter() - started
            assert response.status_code == 202, response.text
            peak = peak_rss_mib(process.pid)
        finally:
            process.terminate()
            process.wait()
    return {
        "urls": count,
        "body_mib": len(body) / 2**20,
        "idle_mib": idle,
        "peak_mib": peak,
        "seconds": seconds,
    }


def distributed(port: int, urls: int, hosts: int, processes: int) -> dict[str, float]:
    """The farm workload through `linkprobe api` + `linkprobe worker --processes N` on Redis."""
    with tempfile.TemporaryDirectory() as tmp:
        redis_port = free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", tmp, "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec", "--logfile", f"{tmp}/redis.log"],
        )  # fmt: skip
        env = {"LINKPROBE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
        time.sleep(0.3)
        api, base = start("api", Path(tmp) / "unused.db", env)
        workers = subprocess.Popen(
            [sys.executable, "-m", "linkprobe", "worker", "--processes", str(processes)],
            env={**os.environ, "LINKPROBE_ALLOW_PRIVATE": "1", **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(1.0)  # let the workers connect
            figures = timed_task(base, port, urls, hosts)
        finally:
            for process in (workers, api, redis):
                process.terminate()
                process.wait()
    return figures
