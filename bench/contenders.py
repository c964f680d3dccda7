"""One benchmark contender in its own interpreter: `contenders.py NAME PORT URLS HOSTS GC`.

GC is `tuned` (the collector settings every linkprobe command applies, cli.settle_heap) or
`default` (Python's); both contenders of a pair always run under the same one.
Prints {"urls_per_s", "cpu_ms_per_url", "ok"} as JSON on its last line.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from bench.loops import bare
from bench.run import CONCURRENCY, PER_HOST, farm_urls, raise_fd_limit
from linkprobe.cli import settle_heap
from linkprobe.engine import Engine, EngineConfig, ProbeOptions


async def engine(urls: list[str]) -> int:
    config = EngineConfig(allow_private=True, concurrency=CONCURRENCY, per_host=PER_HOST)
    async with Engine(config) as running:
        return sum([r.ok async for r in running.run(urls, ProbeOptions(concurrency=CONCURRENCY))])


CONTENDERS: dict[str, Callable[[list[str]], Coroutine[Any, Any, int]]] = {"bare": bare, "engine": engine}


def main() -> None:
    name, port, count, hosts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    raise_fd_limit()
    urls = farm_urls(port, count, hosts)
    if sys.argv[5] == "tuned":
        settle_heap()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    ok = uvloop.run(CONTENDERS[name](urls))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(json.dumps({"urls_per_s": count / wall, "cpu_ms_per_url": cpu * 1000 / count, "ok": ok}))


if __name__ == "__main__":
    main()
