"""`linkprobe worker`: probing processes that take chunks from Redis.

Each process runs one engine (one connection pool) and `workers` chunk loops. With
`--processes N` the parent starts N children and forwards SIGTERM/SIGINT to them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import signal

import uvloop

from linkprobe.cli import settle_heap
from linkprobe.cli.serve import with_flags
from linkprobe.engine import ConfigError, Engine
from linkprobe.metrics import Metrics
from linkprobe.settings import Settings
from linkprobe.store import open_store
from linkprobe.worker import Worker

log = logging.getLogger("linkprobe.worker")


async def work(settings: Settings) -> None:
    store = open_store(settings)
    await store.open()
    try:
        async with Engine(settings.engine_config()) as engine:
            worker = Worker(store, engine, settings.workers, Metrics(), settings.reclaim_idle_s / 3)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker.stop)
            log.info("worker %s taking chunks from %s", worker.name, settings.redis_url)
            await worker.run()
    finally:
        await store.close()


def _child(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settle_heap()
    uvloop.run(work(settings))


def run_workers(args: argparse.Namespace, settings: Settings) -> int:
    settings = with_flags(settings, args)
    if not settings.redis_url:
        raise ConfigError("linkprobe worker needs Redis: --redis-url or LINKPROBE_REDIS_URL "
                          "(with the embedded store, linkprobe serve runs the workers)")  # fmt: skip
    if args.processes <= 1:
        _child(settings)
        return 0
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_child, args=(settings,), daemon=False) for _ in range(args.processes)]
    for child in children:
        child.start()

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                child.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
    return 0 if all(child.exitcode == 0 for child in children) else 1
