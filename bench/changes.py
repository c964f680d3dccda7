"""What changed between two runs of BENCH_CHANGES_URLS URLs (default 1,000,000, the issue's size),
on SQLite and on Redis: the time to compare them whole (every URL merged, the changes counted, as
the task view's counts are), then again (Redis keeps an ended task's URL order after the first
time), and the comparing process's peak RSS growth, which must not grow with the runs (SQLite reads
both in URL order on an index; Redis sorts each externally on disk once).

The runs are written through the Store interface with made-up results (no probing): the second
run has a tenth of the URLs broken, a hundredth moved elsewhere and a hundredth replaced by new
URLs, in a shuffled input order. The comparison runs in a fresh process, so its peak is its own.

Run alone: `PYTHONPATH=. .venv/bin/python bench/changes.py`; BENCH_CHANGES_URLS=100000 for a
quicker look.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from bench.scale import redis_server
from linkprobe.api.compare import count
from linkprobe.engine import ErrorKind, ProbeResult, failed
from linkprobe.store import NewTask, Store
from linkprobe.store.redis import RedisStore
from linkprobe.store.sqlite import SQLiteStore

URLS = int(os.environ.get("BENCH_CHANGES_URLS", "1000000"))
CHUNK = 1000


def urls_of(run: int, total: int) -> list[str]:
    """The run's URLs in a shuffled input order: the last hundredth differ between the runs."""
    urls = [f"https://h{i % 5000}.example/page/{i}" for i in range(total - total // 100)]
    urls += [f"https://h{i % 5000}.example/run{run}/{i}" for i in range(total // 100)]
    random.Random(run).shuffle(urls)
    return urls


def result_of(run: int, url: str, index: int) -> ProbeResult:
    number = int(url.rsplit("/", 1)[1])
    if run == 2 and number % 10 == 0:
        return failed(url, index, ErrorKind.CONNECT_REFUSED, "refused")
    final = f"{url}/moved" if run == 2 and number % 100 == 1 else url
    return ProbeResult(url=url, index=index, ok=True, status_code=200, final_url=final, attempts=1)


def open_store(kind: str, where: str) -> Store:
    return SQLiteStore(Path(where) / "bench.db") if kind == "sqlite" else RedisStore(where)


async def fill(kind: str, where: str) -> list[str]:
    store = open_store(kind, where)
    await store.open()
    ids = []
    try:
        for run in (1, 2):
            task, _ = await store.create_task(NewTask(), iter(urls_of(run, URLS)), CHUNK)
            ids.append(task.id)
            while (chunk := await store.claim_chunk("bench")) is not None:
                results = [result_of(run, url, chunk.start + i) for i, url in enumerate(chunk.urls)]
                await store.complete_chunk(chunk, results)
    finally:
        await store.close()
    return ids


def hwm_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))


async def compare_here(kind: str, where: str, first: str, second: str) -> dict[str, float]:
    """In the child: compare the runs whole; its time and peak RSS growth."""
    store = open_store(kind, where)
    await store.open()
    try:
        before = hwm_kib()
        started = time.perf_counter()
        counts = await count(store, first, second)
        seconds = time.perf_counter() - started
        await count(store, first, second)  # again: Redis reads the URL order it kept the first time
        again = time.perf_counter() - started - seconds
    finally:
        await store.close()
    growth = (hwm_kib() - before) / 1024
    return {"seconds": seconds, "again_seconds": again, "peak_growth_mib": growth, **counts}


def compared(kind: str, where: str, ids: list[str]) -> dict[str, float]:
    child = subprocess.run(
        [sys.executable, __file__, "compare", kind, where, *ids],
        capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": "."},
    )  # fmt: skip
    if child.returncode:
        raise RuntimeError(f"the comparison failed: {child.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(child.stdout)
    return figures


def measure(kind: str) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        redis_server(tmp) if kind == "redis" else nullcontext(tmp) as where,
    ):
        started = time.perf_counter()
        ids = asyncio.run(fill(kind, where))
        filled = time.perf_counter() - started
        return {"fill_seconds": filled, **compared(kind, where, ids)}


def changes_figures() -> dict[str, dict[str, float]]:
    results = {kind: measure(kind) for kind in ("sqlite", "redis")}
    print(f"\nThe changes between two runs of {URLS:,} URLs, compared whole (counts as the task view's)")
    for kind, f in results.items():
        print(f"  {kind}: " + json.dumps({k: round(v, 2) for k, v in f.items()}))
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["compare"]:
        kind, where, first, second = sys.argv[2:6]
        print(json.dumps(asyncio.run(compare_here(kind, where, first, second))))
    else:
        changes_figures()
