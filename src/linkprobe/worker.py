"""The worker: takes chunks from the store's queue, probes them with the shared engine, and writes
each chunk's results back in one atomic, idempotent step.

Cancellation: every half second the worker asks the store whether the tasks it is working on
still want work; a deleted or cancelled task has its chunks stopped at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

from linkprobe.engine import Engine, ProbeOptions, ProbeResult, StoreUnavailable
from linkprobe.metrics import Metrics
from linkprobe.store import Chunk, Store

log = logging.getLogger("linkprobe.worker")
IDLE_POLL_S = 0.2
CANCEL_POLL_S = 0.5


class Worker:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        slots: int,
        metrics: Metrics | None = None,
        heartbeat_s: float = 10.0,
    ) -> None:
        self.store = store
        self.engine = engine
        self.slots = slots
        self.heartbeat_s = heartbeat_s
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.active: dict[asyncio.Task[None], Chunk] = {}
        self._stopping = asyncio.Event()
        self.metrics = metrics

    async def run(self) -> None:
        """Run until stop(): `slots` chunk loops and the cancellation watcher."""
        loops = [asyncio.create_task(self._loop(n)) for n in range(self.slots)]
        helpers = [asyncio.create_task(self._watch_cancellations()), asyncio.create_task(self._heartbeat())]
        await self._stopping.wait()
        for task in (*loops, *helpers, *self.active):
            task.cancel()
        await asyncio.gather(*loops, *helpers, return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()

    async def shutdown(self, running: asyncio.Task[None]) -> None:
        """Stop and wait for run() to return (in-flight chunks are abandoned, to be redelivered)."""
        self.stop()
        await asyncio.gather(running, return_exceptions=True)

    async def _loop(self, slot: int) -> None:
        backoff = IDLE_POLL_S
        # Checked as well as cancelled: a store client may turn a cancelled blocking read into a
        # connection error, and a loop that took that for an outage would never stop.
        while not self._stopping.is_set():
            try:
                chunk = await self.store.claim_chunk(f"{self.name}/{slot}")
            except StoreUnavailable as exc:
                log.warning("store unavailable, retrying in %.1fs: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = IDLE_POLL_S
            if chunk is None:
                await asyncio.sleep(IDLE_POLL_S)
                continue
            work = asyncio.create_task(self._process(chunk))
            self.active[work] = chunk
            try:
                await asyncio.wait({work})  # a cancelled chunk ends here; a cancelled loop raises
            finally:
                work.cancel()
                self.active.pop(work, None)
            await self._settle(work, chunk)

    async def _settle(self, work: asyncio.Task[None], chunk: Chunk) -> None:
        if work.cancelled():  # its task was deleted or cancelled: acknowledge it unprocessed
            with contextlib.suppress(StoreUnavailable):
                await self.store.drop_chunk(chunk)
        elif (error := work.exception()) is not None:  # left unacknowledged: it will be redelivered
            log.error("chunk %s/%s failed: %r", chunk.task_id, chunk.number, error)

    async def _process(self, chunk: Chunk) -> None:
        options = ProbeOptions.model_validate(chunk.options)
        started = time.perf_counter()
        results: list[ProbeResult] = [
            r async for r in self.engine.run(chunk.urls, options, start_index=chunk.start)
        ]
        await self._complete(chunk, results)
        if self.metrics is not None:
            self.metrics.observe(results)
        log.debug("chunk %s/%s: %d URLs in %.2fs", chunk.task_id, chunk.number, len(results),
                  time.perf_counter() - started)  # fmt: skip

    async def _complete(self, chunk: Chunk, results: list[ProbeResult]) -> None:
        delay = IDLE_POLL_S
        while True:  # the results are in memory: keep them until the store takes them
            try:
                await self.store.complete_chunk(chunk, results)
                return
            except StoreUnavailable as exc:
                log.warning("cannot store chunk results, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _watch_cancellations(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(CANCEL_POLL_S)
            if not self.active:
                continue
            try:
                live = await self.store.live_tasks({c.task_id for c in self.active.values()})
            except StoreUnavailable:
                continue
            for work, chunk in list(self.active.items()):
                if chunk.task_id not in live:
                    work.cancel()

    async def _heartbeat(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(self.heartbeat_s)
            with contextlib.suppress(StoreUnavailable):
                await self.store.heartbeat(list(self.active.values()))
