"""`make bench`: throughput of linkprobe against a bare aiohttp + uvloop loop, in the same run.

Workload: 20,000 URLs over 5,000 loopback hosts (127.1.x.y), served by bench/farm.py.
Each contender runs in fresh subprocesses, alternating, `ROUNDS` times; the best round counts.
Figures: URLs/s and client CPU ms per URL; ratios are against the bare loop of the same run.
"""

from __future__ import annotations

import json
import math
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
URLS = int(os.environ.get("BENCH_URLS", "20000"))
HOSTS = int(os.environ.get("BENCH_HOSTS", "5000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONCURRENCY = 256
PER_HOST = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def farm_urls(port: int, count: int = URLS, hosts: int = HOSTS, path: str = "/item/") -> list[str]:
    """`count` URLs spread round-robin over `hosts` distinct loopback addresses."""
    return [
        f"http://127.1.{(i % hosts) // 250}.{(i % hosts) % 250 + 1}:{port}{path}{i}" for i in range(count)
    ]


def start_farm() -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    farm = subprocess.Popen(
        [sys.executable, str(HERE / "farm.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
    assert farm.stdout is not None and farm.stdout.readline().strip() == "ready"
    return farm, port


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def measure(contender: str, gc_mode: str) -> Callable[[int], dict[str, float]]:
    """Run one contender in a fresh interpreter; it prints its own figures as JSON."""
    return lambda port: _measure([contender, str(port), str(URLS), str(HOSTS), gc_mode])


def _measure(args: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(HERE / "contenders.py"), *args], check=True, capture_output=True, text=True
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return max(runs, key=lambda r: r["urls_per_s"])


def report(name: str, figures: dict[str, float], baseline: dict[str, float]) -> dict[str, float]:
    ratio = figures["urls_per_s"] / baseline["urls_per_s"]
    cpu_ratio = figures["cpu_ms_per_url"] / baseline["cpu_ms_per_url"]
    cpu = (
        ""
        if math.isnan(cpu_ratio)
        else f"  {figures['cpu_ms_per_url']:.3f} CPU ms/URL  CPU/URL {cpu_ratio:.2f}x"
    )
    rate = f"{figures['urls_per_s']:>7.0f} URLs/s"
    print(f"{name:<30} {rate}  throughput {ratio:.2f}x{cpu}  ok {figures['ok']:.0f}/{URLS}")
    if "get_p99_ms" in figures:  # the task's own GET while it runs, against the idle service
        busy, idle = figures["get_p99_ms"], figures["get_idle_p99_ms"]
        print(f"{'':<30} GET /api/v1/tasks/{{id}} p99 {busy:.1f} ms while it runs, {idle:.1f} ms idle"
              f" ({busy / idle:.1f}x)")  # fmt: skip
    return {**figures, "throughput_ratio": ratio, "cpu_ratio": cpu_ratio}


BARE, BARE_DEFAULT_GC, ENGINE_DEFAULT_GC = "bare aiohttp + uvloop", "bare, default GC", "engine, default GC"
# The baseline of each contender: the bare loop run with the same GC settings (BARE by default).
BASELINES = {BARE_DEFAULT_GC: BARE_DEFAULT_GC, ENGINE_DEFAULT_GC: BARE_DEFAULT_GC}


def main(extra: list[tuple[str, Callable[[int], dict[str, float]]]] | None = None) -> None:
    raise_fd_limit()
    farm, port = start_farm()
    # Every linkprobe command tunes the collector (cli.settle_heap), so the headline pair runs
    # with that tuning on both sides; the default-GC pair shows the engine as a bare library.
    contenders: dict[str, Callable[[int], dict[str, float]]] = {
        BARE: measure("bare", "tuned"),
        "linkprobe engine": measure("engine", "tuned"),
        BARE_DEFAULT_GC: measure("bare", "default"),
        ENGINE_DEFAULT_GC: measure("engine", "default"),
        **dict(extra or []),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    try:
        for _ in range(ROUNDS):  # alternating, so that a noisy minute hurts every contender alike
            for name, run in contenders.items():
                runs[name].append(run(port))
    finally:
        farm.terminate()
        farm.wait()
    print(f"workload: {URLS} URLs over {HOSTS} hosts, concurrency {CONCURRENCY}, per host {PER_HOST}")
    print(f"best of {ROUNDS} rounds each; ratios against the bare loop of this run with the same GC")
    results = {
        name: report(name, best(figures), best(runs[BASELINES.get(name, BARE)]))
        for name, figures in runs.items()
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=2))


def service_figures(port: int) -> dict[str, float]:
    from bench.service import end_to_end

    return end_to_end(port, URLS, HOSTS)


def distributed_figures(processes: int) -> Callable[[int], dict[str, float]]:
    def run(port: int) -> dict[str, float]:
        from bench.service import distributed

        return distributed(port, URLS, HOSTS, processes)

    return run


def check_one_figures() -> dict[str, dict[str, float]]:
    from bench.check_one import check_one

    farm, port = start_farm()
    try:
        return check_one(port, ROUNDS)
    finally:
        farm.terminate()
        farm.wait()


def memory_figures() -> dict[str, dict[str, float]]:
    from bench.service import upload_memory

    figures = {str(n): upload_memory(n) for n in (10_000, 1_000_000)}
    for f in figures.values():
        print(
            f"upload of {int(f['urls']):>9} URLs ({f['body_mib']:.0f} MiB): accepted in {f['seconds']:.1f}s, "
            f"peak RSS {f['peak_mib']:.0f} MiB (idle {f['idle_mib']:.0f} MiB)"
        )
    return figures


if __name__ == "__main__":
    main(
        extra=[
            ("service end-to-end (serve)", service_figures),
            ("distributed, 1 worker process", distributed_figures(1)),
            ("distributed, 2 worker processes", distributed_figures(2)),
        ]
    )
    memory_figures()
    check_one_figures()
    from bench.intake import intake_figures

    intake_figures()
    from bench.scale import scale_figures

    scale_figures()
    from bench.changes import changes_figures

    changes_figures()
