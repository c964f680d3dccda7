"""`make bench` (crawl part): linkprobe crawl vs linkinator --recurse on real documentation sites.

Sites: Debian HTML documentation packages (BENCH_CRAWL_SITES, folders separated by spaces):
python-click-doc (27 pages, 13 broken links), python3.11-doc (527 pages, 50 MB, index pages of
2.5 MB) and postgresql-doc-15 (1,170 pages), each served on loopback by nginx (Debian's, with a
temporary config: keep-alive, sendfile, one worker, symlinks into /usr/share/javascript followed).

The same work for both tools:
- the same start URL (the site's root) and scope: pages of the site are fetched and followed;
  links leaving it are skipped by both (linkinator `--skip` of what does not start with the
  site, linkprobe `--include` of what does), as this machine has no network; mailto: and the
  like are skipped by both;
- the same concurrency: linkinator `--concurrency N`, linkprobe `--concurrency N --per-host N`
  (BENCH_CONCURRENCY, default linkinator's 100); whole pages are read (linkprobe's 1 MiB body
  cap is raised: linkinator has none); linkprobe also reads robots.txt (one more request);
- linkinator runs through bench/linkinator.mjs (its check(), ended when it resolves: the CLI
  waits out the server's keep-alive timeout on connections it leaves unread, 75 s here);
- Python bytecode is compiled first (`make bytecode`), as pip does on install (this environment sets
  PYTHONDONTWRITEBYTECODE, and compiling the imports from source costs linkprobe 1.4 s a run),
  and stdout is buffered as Python buffers a pipe by default (PYTHONUNBUFFERED is left out);

One metric for both, computed the same way:
- pages: distinct paths the server answered 200 text/html to a GET of that tool (nginx's
  access log): the HTML documents each fetched (both parse every page of the site they fetch);
- links: distinct http(s) URLs (without fragment) the tool reports as checked;
- broken: the links it reports broken; the two sets are compared (symmetric difference);
- wall seconds, CPU seconds (user + system, all threads and processes) and peak RSS from GNU
  time (its largest process); pages/s and links/s from the wall time. On a shared machine the CPU
  ratio is the steadier one;
- the span of its requests as the server saw them (from the first request's start to the last
  one's; nginx's $msec less $request_time): the crawl itself, without the process's start-up,
  the last pages' parsing and exit;
- peak memory of the whole process tree (linkprobe parses pages in worker processes): the sum of
  each process's proportional set size (PSS: pages shared by forked processes counted once),
  sampled every 20 ms in one more, untimed run of each tool.
Each tool runs BENCH_ROUNDS times per site (default 3), alternating; the fastest round counts.
The figures also go to bench/results/crawl-*.json.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.run import free_port

HERE = Path(__file__).resolve().parent
DOCS = "/usr/share/doc/{}/html"
SITES = os.environ.get(
    "BENCH_CRAWL_SITES",
    " ".join(DOCS.format(p) for p in ("python-click-doc", "python3.11-doc", "postgresql-doc-15")),
).split()
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "100"))
LINKPROBE = Path(sys.executable).with_name("linkprobe")
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
# Python's default buffering of a piped stdout: this environment sets PYTHONUNBUFFERED, which
# makes each result line of linkprobe's NDJSON a write(2) (measured: 0.6 s of a 527-page crawl).
ENVIRONMENT = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
# The configuration of every bench's nginx: str.format templates, whose {files} and {temp_paths}
# put everything nginx writes in the run's temporary folder (nginx_server).
NGINX_FILES = """pid {dir}/nginx.pid;
error_log {dir}/error.log warn;"""
NGINX_TEMP_PATHS = """client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;"""
NGINX_CONF = """daemon off;
worker_processes 1;
{files}
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format bench '$msec $request_time $request_method $status "$sent_http_content_type" $request_uri';
    access_log {dir}/access.log bench;
    {temp_paths}
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        index index.html;
    }}
}}
"""


@dataclass
class Run:
    tool: str
    seconds: float
    cpu: float
    peak_kib: int
    links: set[str]
    broken: set[str]
    command: list[str] = field(default_factory=list)
    pages: set[str] = field(default_factory=set)
    requests: int = 0
    span: float = 0.0  # the server's view: from the tool's first request to its last (start_span)
    tree_kib: int = 0  # peak PSS of the process tree (tree_memory)


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on port {port}")


@contextmanager
def nginx_server(template: str, **fields: object) -> Iterator[tuple[int, Path]]:
    """Run nginx on a free port with the configuration `template` (see NGINX_CONF; filled in with
    its {port}, the temporary folder {dir} and `fields`); yields the port and the folder."""
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        port = free_port()
        conf = Path(tmp) / "nginx.conf"
        files, temp_paths = NGINX_FILES.format(dir=tmp), NGINX_TEMP_PATHS.format(dir=tmp)
        conf.write_text(template.format(dir=tmp, port=port, files=files, temp_paths=temp_paths, **fields))
        command = [NGINX, "-p", tmp, "-c", str(conf), "-e", f"{tmp}/error.log"]
        server = subprocess.Popen(command)
        try:
            wait_listening(port, server)
            yield port, Path(tmp)
        finally:
            server.terminate()
            server.wait()


@contextmanager
def nginx(root: str) -> Iterator[tuple[str, Path]]:
    """Serve `root` on a free loopback port; yields the site's URL and nginx's access log."""
    with nginx_server(NGINX_CONF, root=root) as (port, tmp):
        yield f"http://127.0.0.1:{port}/", tmp / "access.log"


def timed(command: list[str]) -> tuple[float, float, int, bytes]:
    """Run `command` under GNU time: wall seconds, CPU seconds, peak RSS (KiB) and its stdout."""
    with tempfile.NamedTemporaryFile("r") as report:
        started = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%U %S %M", "-o", report.name, *command],
            capture_output=True,
            check=False,
            env=ENVIRONMENT,
        )
        seconds = time.perf_counter() - started
        if done.returncode not in (0, 1, 2):  # linkinator 1 and linkprobe 2: broken links found
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
        user, system, peak = report.read().splitlines()[-1].split()
        return seconds, float(user) + float(system), int(peak), done.stdout


def links_of(url: str) -> str:
    return url.partition("#")[0]


def linkinator(root: str, skip: str) -> Run:
    node = ["node", str(HERE / "linkinator.mjs"), root, skip, str(CONCURRENCY)]
    seconds, cpu, peak, out = timed(node)
    links = [link for link in json.loads(out)["links"] if link["state"] != "SKIPPED"]
    checked = {links_of(link["url"]) for link in links}
    broken = {links_of(link["url"]) for link in links if link["state"] == "BROKEN"}
    return Run("linkinator", seconds, cpu, peak, checked, broken, node)


def linkprobe(root: str, _skip: str) -> Run:
    limits = ["--concurrency", str(CONCURRENCY), "--per-host", str(CONCURRENCY)]
    limits += ["--max-body-bytes", str(1 << 30)]  # whole pages, as linkinator reads them
    crawl = [str(LINKPROBE), "crawl", "--allow-private", "-q", "--format", "ndjson", *limits]
    # The same scope as linkinator's `skip` (RE2 has no lookahead): only links inside the site.
    command = [*crawl, "--include", f"^{re.escape(root)}", root]
    seconds, cpu, peak, out = timed(command)
    results = [json.loads(line) for line in out.splitlines()]
    checked = [r for r in results if (r["error"] or {}).get("kind") != "unsupported"]
    broken = {links_of(r["url"]) for r in checked if not r["ok"]}
    return Run("linkprobe", seconds, cpu, peak, {links_of(r["url"]) for r in checked}, broken, command)


def tree_pids(root: int) -> list[int]:
    """`root` and its descendants."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError):
            continue  # ended meanwhile
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sorted(tree)


def pss_kib(pid: int) -> int:
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)


def tree_memory(command: list[str]) -> int:
    """Peak PSS (KiB) of the process tree of `command`, summed over its processes every 20 ms."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENVIRONMENT)
    peak = 0
    while process.poll() is None:
        peak = max(peak, sum(pss_kib(pid) for pid in tree_pids(process.pid)))
        time.sleep(0.02)
    return peak


def served(log: Path, offset: int, run: Run) -> None:
    """Fill in what the server saw of `run`: its requests and the HTML pages it was sent."""
    previous = -1
    while log.stat().st_size != previous:  # a dropped connection's request is logged as it closes
        previous = log.stat().st_size
        time.sleep(0.2)
    starts = []
    with log.open() as lines:
        lines.seek(offset)
        for line in lines:
            logged, took, method, status, content_type, path = line.split(" ", 5)
            starts.append(float(logged) - float(took))
            run.requests += 1
            if method == "GET" and status == "200" and content_type.strip('"').startswith("text/html"):
                run.pages.add(path.rstrip("\n"))
    run.span = max(starts) - min(starts)


def crawl_site(directory: str) -> dict[str, Run]:
    best: dict[str, Run] = {}
    with nginx(directory) as (root, log):
        skip = f"^(?!{re.escape(root)})"
        for _ in range(ROUNDS):
            for contender in (linkinator, linkprobe):
                offset = log.stat().st_size if log.exists() else 0
                run = contender(root, skip)
                served(log, offset, run)
                if run.tool not in best or run.seconds < best[run.tool].seconds:
                    best[run.tool] = run
        for run in best.values():
            run.tree_kib = tree_memory(run.command)
    return best


def report(directory: str, best: dict[str, Run]) -> None:
    lk, lp = best["linkinator"], best["linkprobe"]
    print(f"\ncrawl of {directory} on loopback (nginx), concurrency {CONCURRENCY}, best of {ROUNDS}")
    for r in (lk, lp):
        print(
            f"{r.tool:10} {r.seconds:6.2f} s  CPU {r.cpu:6.2f} s  pages {len(r.pages):5}"
            f"  links {len(r.links):6}  broken {len(r.broken):4}  requests {r.requests:6}"
            f"  {len(r.pages) / r.seconds:7.1f} pages/s  {len(r.links) / r.seconds:8.1f} links/s"
            f"  requests span {r.span:5.2f} s  peak RSS {r.peak_kib / 1024:6.1f} MiB"
            f"  peak PSS (all processes) {r.tree_kib / 1024:6.1f} MiB"
        )
    print(
        f"linkprobe / linkinator: speed {lk.seconds / lp.seconds:.2f}x"
        f" (requests span {lk.span / lp.span:.2f}x),"
        f" CPU {lp.cpu / lk.cpu:.2f}x,"
        f" peak RSS {lp.peak_kib / lk.peak_kib:.2f}x,"
        f" peak PSS (all processes) {lp.tree_kib / lk.tree_kib:.2f}x"
    )
    for name, ours, theirs in (("pages", lp.pages, lk.pages), ("links", lp.links, lk.links)):
        print(f"{name}: same {ours == theirs}; only linkprobe {sorted(ours - theirs)[:5]}", end="")
        print(f" only linkinator {sorted(theirs - ours)[:5]}")
    print(f"broken: same {lp.broken == lk.broken}; symmetric difference {sorted(lp.broken ^ lk.broken)}")


def save(results: dict[str, dict[str, Run]]) -> None:
    """The figures as JSON in bench/results/, with the other benches' (sets as counts)."""
    figures = {
        directory: {
            run.tool: {
                "seconds": run.seconds, "cpu_seconds": run.cpu, "peak_kib": run.peak_kib,
                "tree_pss_kib": run.tree_kib, "requests_span_seconds": run.span,
                "pages": len(run.pages), "links": len(run.links), "broken": sorted(run.broken),
                "requests": run.requests,
            }
            for run in best.values()
        }
        for directory, best in results.items()
    }  # fmt: skip
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    name = f"crawl-{time.strftime('%Y%m%d-%H%M%S')}.json"
    (out / name).write_text(
        json.dumps({"rounds": ROUNDS, "concurrency": CONCURRENCY, "sites": figures}, indent=2)
    )


def main() -> None:
    results = {directory: crawl_site(directory) for directory in SITES}
    save(results)
    for directory, best in results.items():
        report(directory, best)
    if len(results) > 1:
        print("\npeak PSS of all processes by site size (links):")
        for directory, best in results.items():
            sizes = ", ".join(f"{r.tool} {r.tree_kib / 1024:.1f} MiB" for r in best.values())
            print(f"  {directory} ({len(best['linkprobe'].links)} links): {sizes}")


if __name__ == "__main__":
    main()
