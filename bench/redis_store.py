"""The Redis store's memory and reads: one 100,000-URL task written through the store interface as
workers write it (batches of worker.FLUSH_COUNT, the chunk's last one flagged), then Redis bytes
per URL (`INFO memory` before and after), the time and the Redis server's CPU time of the writes,
and the time to read it back: every result in input order, pages of 50 walked with their cursor,
a rare and a common filter, a text search.

Part of `make bench`; alone: `PYTHONPATH=. .venv/bin/python bench/redis_store.py`. BENCH_REDIS_URLS
sets the size; the figures also go to bench/results/redis-store-*.json.
BENCH_BASELINE_REV (a git revision, e.g. the commit before the compact store) measures that
revision's store in the same run, on the same Redis, alternating rounds: the reads are then
reported as ratios against it (the machine is shared and noisy: only ratios of one run count).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
URLS = int(os.environ.get("BENCH_REDIS_URLS", "100000"))
ROUNDS = int(os.environ.get("BENCH_REDIS_ROUNDS", "2"))
CHUNK = 500  # settings.chunk_size's default
BATCH = 100  # worker.FLUSH_COUNT
PAGE = 50  # the API's default page


def result_of(index: int, url: str, rng: random.Random, at: datetime) -> Any:
    """A result as the engine makes one against the bench farm: mostly 200 with timings to the
    microsecond, 10% 404, 0.1% a DNS error (the rare filter)."""
    from linkprobe.engine import ErrorKind, ProbeResult, failed

    if index % 1000 == 7:
        return failed(url, index, ErrorKind.DNS, "Could not resolve host")

    def ms(low: float, high: float) -> float:  # to the microsecond, as the engine measures
        return int(rng.uniform(low, high) * 1000) / 1000

    status = 404 if index % 10 == 3 else 200
    return ProbeResult(
        url=url, index=index, ok=status == 200, final_url=url, status_code=status,
        elapsed_ms=ms(0.5, 40), queue_ms=ms(0, 5), connect_ms=ms(0.05, 0.5), ttfb_ms=ms(0.3, 30),
        content_type="text/html; charset=utf-8", content_length=rng.randrange(200, 20000),
        checked_at=at + timedelta(microseconds=index * 137), attempts=1,
    )  # fmt: skip


def urls(port: int) -> list[str]:
    return [f"http://127.1.{(i % 20000) // 250}.{i % 250 + 1}:{port}/item/{i}" for i in range(URLS)]


def used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def redis_cpu_s(client: Any) -> float:
    """CPU seconds the Redis server has used: one thread serves every worker and API replica."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def timed(read: Callable[[], Awaitable[int]]) -> tuple[float, int]:
    started = time.perf_counter()
    count = await read()
    return time.perf_counter() - started, count


async def one(redis_url: str) -> dict[str, float]:
    """Measured in this interpreter, on whatever `linkprobe` PYTHONPATH names."""
    import redis

    from linkprobe.store import NewTask, ResultFilter
    from linkprobe.store.redis import RedisStore

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    store = RedisStore(redis_url, block_ms=20)
    await store.open()
    rng, at = random.Random(7), datetime(2026, 12, 8, tzinfo=UTC)
    before = used_memory(client)
    task, _ = await store.create_task(NewTask(), iter(urls(8080)), chunk_size=CHUNK)
    started, cpu = time.perf_counter(), redis_cpu_s(client)
    while (chunk := await store.claim_chunk("bench")) is not None:
        results = [result_of(chunk.start + i, url, rng, at) for i, url in enumerate(chunk.urls)]
        order = rng.sample(results, len(results))  # results arrive as probes end, not in input order
        batches = [order[first : first + BATCH] for first in range(0, len(order), BATCH)]
        for batch in batches[:-1]:
            await store.store_results(chunk, batch)
        await store.complete_chunk(chunk, batches[-1])
    write_s, write_redis_cpu_s = time.perf_counter() - started, redis_cpu_s(client) - cpu
    record = await store.get_task(task.id)
    assert record is not None and record.done == URLS, record
    bytes_per_url = (used_memory(client) - before) / URLS

    async def stream(flt: ResultFilter) -> int:
        return sum([1 async for _ in store.stream_results(task.id, flt)])

    async def pages() -> int:  # the first 20 pages, each from the previous one's cursor
        cursor, seen = None, 0
        for _ in range(20):
            items, cursor = await store.results(task.id, ResultFilter(), cursor, PAGE)
            seen += len(items)
        return seen

    async def middle() -> int:  # one page in the middle of the task (a cursor from a link)
        items, _ = await store.results(task.id, ResultFilter(), URLS // 2 + 123, PAGE)
        return len(items)

    async def first_page(flt: ResultFilter) -> int:
        items, _ = await store.results(task.id, flt, None, PAGE)
        return len(items)

    reads = {
        "stream_all": lambda: stream(ResultFilter()),
        "pages_20x50": pages,
        "page_middle": middle,
        "stream_rare_error_kind": lambda: stream(ResultFilter(error_kind="dns")),
        "page_status_404": lambda: first_page(ResultFilter(status_code=404)),
        "page_outcome_broken": lambda: first_page(ResultFilter(outcome="broken")),
        "search_url_rare": lambda: first_page(ResultFilter(url_contains=f"/item/{URLS - 5}")),
    }
    figures = {"bytes_per_url": bytes_per_url, "write_s": write_s, "write_redis_cpu_s": write_redis_cpu_s}
    for name, read in reads.items():
        figures[f"{name}_s"], figures[f"{name}_n"] = await timed(read)
    await store.close()
    client.flushall()
    return figures


def source_of(rev: str, into: Path) -> Path:
    """The `src` tree of a git revision, extracted (no worktree: the repository is shared)."""
    archive = subprocess.run(["git", "archive", rev, "src"], cwd=HERE.parent, capture_output=True, check=True)
    tar = into / "src.tar"
    tar.write_bytes(archive.stdout)
    with tarfile.open(tar) as opened:
        opened.extractall(into, filter="data")
    return into / "src"


def run_one(src: Path, redis_url: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{HERE.parent}"}
    done = subprocess.run(
        [sys.executable, str(HERE / "redis_store.py"), "--one", redis_url],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def best(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Per figure the best round (least time; bytes are the same every round)."""
    return {name: min(r[name] for r in rounds) for name in rounds[0]}


def redis_figures() -> dict[str, dict[str, float]]:
    from bench.scale import redis_server

    baseline = os.environ.get("BENCH_BASELINE_REV")
    with tempfile.TemporaryDirectory() as tmp, redis_server(tmp) as redis_url:
        sides = {"current": HERE.parent / "src"}
        if baseline:
            sides = {"baseline": source_of(baseline, Path(tmp)), **sides}
        rounds: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
        for _ in range(ROUNDS):
            for side, src in sides.items():
                rounds[side].append(run_one(src, redis_url))
    results = {side: best(found) for side, found in rounds.items()}
    print(f"\nRedis store, a {URLS:,}-URL task in batches of {BATCH} (chunks of {CHUNK}), best of {ROUNDS}")
    for side, figures in results.items():
        print(f"  {side}: " + json.dumps({name: round(v, 4) for name, v in figures.items()}))
    if baseline:
        now, then = results["current"], results["baseline"]
        ratios = {
            name: round(now[name] / then[name], 3) for name in now if then.get(name) and name.endswith("_s")
        }
        print(f"  bytes per URL: {now['bytes_per_url']:.0f} ({baseline}: {then['bytes_per_url']:.0f})")
        print("  time ratios current/baseline: " + json.dumps(ratios))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    saved = {"urls": URLS, "rounds": ROUNDS, "baseline_rev": baseline, "figures": results}
    (out / f"redis-store-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(saved, indent=2))
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(asyncio.run(one(sys.argv[2]))))
    else:
        redis_figures()
