"""`make bench` (crawl part): linkprobe crawl vs linkinator --recurse on a real documentation site.

The site is a Debian HTML documentation package (python-click-doc by default, BENCH_DOC_DIR to
change it), served on loopback by aiohttp's static handler (follows Debian's symlinks into
/usr/share/javascript). Links leaving the site are skipped by both tools (no network here).
Each tool runs ROUNDS times, alternating; the best round counts. Reported: pages, URLs checked,
broken links, pages/s, links/s, peak RSS, and linkprobe's ratios to linkinator.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOC_DIR = Path(os.environ.get("BENCH_DOC_DIR", "/usr/share/doc/python-click-doc/html"))
LINKINATOR = Path(os.environ.get("LINKINATOR", HERE / "node" / "node_modules" / ".bin" / "linkinator"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
LINKPROBE = Path(sys.executable).with_name("linkprobe")


def serve(directory: str, port: int) -> None:
    from aiohttp import web

    app = web.Application()

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(Path(directory) / "index.html")

    app.router.add_get("/", index)  # before the static route, which would answer 403 for a folder
    app.router.add_static("/", directory, follow_symlinks=True, show_index=False)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def measured(command: list[str]) -> None:
    """Run `command`; print its output file's path, wall seconds and peak RSS (KiB) as JSON."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {"seconds": seconds, "peak_kib": peak, "out": done.stdout.decode(), "code": done.returncode}
        )
    )


def run(command: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--measure", *command], capture_output=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def linkinator(root: str, skip: str) -> dict[str, Any]:
    result = run([str(LINKINATOR), root, "--recurse", "--skip", skip, "--format", "json"])
    links = [link for link in json.loads(result["out"])["links"] if link["state"] != "SKIPPED"]
    result["checked"] = len({link["url"] for link in links})
    result["broken"] = sorted({link["url"] for link in links if link["state"] == "BROKEN"})
    result["pages"] = len({link["parent"] for link in links if link.get("parent")})  # pages it scanned
    return result


def linkprobe(root: str, skip: str) -> dict[str, Any]:
    result = run(
        [str(LINKPROBE), "crawl", "--allow-private", "-q", "--format", "json", "--exclude", skip, root]
    )
    items = json.loads(result["out"])
    result["checked"] = len(items)
    result["broken"] = sorted(
        r["url"] for r in items if not r["ok"] and (r["error"] or {}).get("kind") != "unsupported"
    )
    result["pages"] = sum((r["content_type"] or "").startswith("text/html") and r["ok"] for r in items)
    return result


def main() -> None:
    from tests.conftest import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(DOC_DIR), str(port)])
    root = f"http://127.0.0.1:{port}/"
    skip = rf"^(?!http://127\.0\.0\.1:{port}/)"
    try:
        time.sleep(1.5)
        best: dict[str, dict[str, Any]] = {}
        for _ in range(ROUNDS):
            for name, contender in (("linkinator", linkinator), ("linkprobe", linkprobe)):
                result = contender(root, skip)
                if name not in best or result["seconds"] < best[name]["seconds"]:
                    best[name] = result
    finally:
        server.terminate()
        server.wait()
    print(f"crawl of {DOC_DIR} on loopback, best of {ROUNDS}")
    for name, r in best.items():
        print(
            f"{name:10} {r['seconds']:6.2f} s  pages {r['pages']:4}  urls {r['checked']:5}"
            f"  broken {len(r['broken']):4}"
            f"  {r['pages'] / r['seconds']:7.1f} pages/s  {r['checked'] / r['seconds']:8.1f} links/s"
            f"  peak {r['peak_kib'] / 1024:6.1f} MiB"
        )
    lp, lk = best["linkprobe"], best["linkinator"]
    print(
        f"linkprobe / linkinator: speed {lk['seconds'] / lp['seconds']:.2f}x,"
        f" memory {lp['peak_kib'] / lk['peak_kib']:.2f}x"
    )
    print(f"same broken links: {lp['broken'] == lk['broken']}; same pages: {lp['pages'] == lk['pages']}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["--measure"]:
        measured(sys.argv[2:])
    else:
        main()
