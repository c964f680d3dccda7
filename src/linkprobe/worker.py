"""The worker: takes chunks from the store's queue, probes them with the shared engine, and writes
their results back in small batches as they complete (idempotent per URL), then acknowledges the
chunk with its last results.

Crawl tasks also have `pages` chunks (each page fetched, its links handed to Store.discover
before its own result is stored, so the task never looks finished early) and `fragments` chunks
(page#fragment judged by the page's anchors); the site rule and robots.txt are linkprobe.crawl's.

Cancellation: every half second the worker asks the store which of its tasks still want work;
for a chunk whose task seems gone, the store decides atomically (drop_chunk) whether it is really
cancelled or deleted, and only then is the chunk stopped, with its reason logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TypeVar
from urllib.parse import urldefrag

import orjson

from linkprobe.crawl import (
    Extractor,
    Robots,
    SiteRule,
    disallowed,
    fragment_verdict,
    html_at,
    page_options,
)
from linkprobe.engine import Engine, ProbeOptions, ProbeResult
from linkprobe.engine.outcome import RESULT_FIELDS
from linkprobe.frontier import CrawlSpec
from linkprobe.metrics import Metrics, published
from linkprobe.settings import Settings
from linkprobe.store import Chunk, ChunkKind, Store, StoreUnavailable
from linkprobe.store.base import Reused

log = logging.getLogger("linkprobe.worker")
IDLE_POLL_S = 0.2
CANCEL_POLL_S = 0.5
FLUSH_S = 0.25  # results reach the store at least this often while a chunk runs...
FLUSH_COUNT = 100  # ...or as soon as this many are waiting
STALL_S = 2.0  # no result from any chunk for this long: the held chunks are stalled
# A chunk whose URLs give no result for longer than a probe can take (ProbeOptions.longest_s),
# plus this, is wedged: given up, its probes cancelled, and left to be redelivered.
GIVE_UP_MARGIN_S = 30.0
WEDGED_S = 300.0  # /readyz says not ready this long after a chunk was given up
SPARE_FACTOR = 4  # a worker holds up to this many times `slots` chunks when they stall
# ...and up to this many times `slots` when they move fast (Worker._ahead): it holds chunks with as
# many URLs left as it would finish in AHEAD_S at its recent rate. Each chunk's URLs wait in the engine's
# queue at once, where a slot freed by a host goes to that host's next URL in any held chunk of the
# task: over many hosts, a chunk of consecutive input URLs meets each host once, and the bounded
# pool keeps a host's connection only until it comes round again within a few hundred requests.
AHEAD_FACTOR = 16
AHEAD_S = 3.0
# serve's worker processes hold at least this many times their engine's slots in URLs whatever the
# rate: each claims its own host share of every range (SQLiteStore), so what one holds ahead takes
# nothing from the others, and a short task's first ranges find their hosts' next URLs held.
SHARE_AHEAD_SLOTS = 25
RATE_S = 0.2  # the rate is measured over this long
T = TypeVar("T")
# Pages of one chunk fetched or parsed at once: each holds its body (up to crawl.max_page_bytes)
# until it is parsed, and pages are parsed EXTRACTORS at a time, so a wider window only holds memory.
PAGE_WINDOW = 16
PUBLISH_S = 1.0  # a serve worker process publishes its metrics and health this often
PR_SET_PDEATHSIG = 1  # Linux prctl(2)
STOP_S = 10.0  # a worker process asked to stop has this long before it is killed


class Batch:
    """The results of one chunk on their way to the store, written in small batches so that they
    are durable, and progress moves, while the chunk runs (not once per chunk)."""

    def __init__(self, worker: Worker, chunk: Chunk) -> None:
        self.worker = worker
        self.chunk = chunk
        self.results: list[ProbeResult] = []
        self.due = asyncio.Event()
        self.closing = False

    def add(self, result: ProbeResult) -> None:
        self.results.append(result)
        if len(self.results) >= FLUSH_COUNT:
            self.due.set()

    def take(self) -> list[ProbeResult]:
        taken, self.results = self.results, []
        return taken

    async def flush_every(self, interval: float) -> None:
        """Write what is waiting every `interval`, or sooner when a batch is full, until closing
        (the chunk's last results then go with its completion)."""
        while not self.closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.due.wait(), interval)
            self.due.clear()
            if self.results and not self.closing:
                await self.worker._write(self.chunk, self.take())


class Worker:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        slots: int,
        metrics: Metrics | None = None,
        heartbeat_s: float = 10.0,
        give_up_margin_s: float = GIVE_UP_MARGIN_S,
        ahead_urls: int = 0,
    ) -> None:
        """`ahead_urls`: URLs held ahead whatever the rate (see SHARE_AHEAD_SLOTS)."""
        self.store = store
        self.ahead_urls = ahead_urls
        self.engine = engine
        self.slots = slots
        self.heartbeat_s = heartbeat_s
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.active: dict[asyncio.Task[None], Chunk] = {}
        self.moved: dict[asyncio.Task[None], float] = {}  # when each chunk last gave a result
        self.longest: dict[asyncio.Task[None], float] = {}  # the longest one of its URLs can take
        self.give_up_margin_s = give_up_margin_s
        self.given_up: tuple[float, str] | None = None  # when a chunk was last given up, and why
        self._stopping = asyncio.Event()
        self.metrics = metrics
        self.progressed_at = time.monotonic()  # when a result of any chunk last reached the store
        self.crawls = CrawlChunks(self)
        self.left: dict[asyncio.Task[None], int] = {}  # the URLs of each held chunk without a result
        self.finished = 0  # results so far, of every chunk
        self.rate = 0.0  # results a second, over the last RATE_S
        self._rate_from = (time.monotonic(), 0)
        self._held_ahead: set[asyncio.Task[None]] = set()  # the chunks _ahead holds

    def _stalled(self) -> bool:
        """Every slot holds a chunk and none has answered for STALL_S (hanging servers): a spare
        loop takes one more chunk, so the next task in turn is not kept waiting behind them."""
        return len(self.active) >= self.slots and time.monotonic() - self.progressed_at > STALL_S

    def _hungry(self) -> bool:
        """The held chunks have fewer URLs left than this worker would finish in AHEAD_S at its
        rate of the last RATE_S, and fewer chunks than AHEAD_FACTOR x `slots`: _ahead takes one
        more. A rate, not a count: on slow targets few are held, and a held chunk waits its turn
        for seconds, well within the time without a result that gives it up."""
        now = time.monotonic()
        since, count = self._rate_from
        if now - since >= RATE_S:
            self.rate = (self.finished - count) / (now - since)
            self._rate_from = (now, self.finished)
        if len(self.active) >= self.slots * AHEAD_FACTOR:
            return False
        return sum(self.left.values()) < max(self.rate * AHEAD_S, self.ahead_urls)

    async def run(self) -> None:
        """Run until stop(): the chunk loops (`slots`, and the spare ones), the claims ahead, the
        cancellation watcher and the heartbeat."""
        loops = [asyncio.create_task(self._loop(n)) for n in range(self.slots * SPARE_FACTOR)]
        helpers = [
            asyncio.create_task(self._watch_cancellations()),
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._ahead()),
        ]
        await self._stopping.wait()
        for task, chunk in self.active.items():
            log.info("chunk %s/%s stopped in flight: the worker is stopping (it will be redelivered)",
                     chunk.task_id, chunk.number)  # fmt: skip
            task.cancel()
        for task in (*loops, *helpers, *self._held_ahead):
            task.cancel()
        await asyncio.gather(*loops, *helpers, *self._held_ahead, return_exceptions=True)
        self.crawls.robots.close()

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
            if slot >= self.slots and not self._stalled():  # a spare loop: only for stalled work
                await asyncio.sleep(IDLE_POLL_S)
                continue
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
            await self._hold(chunk)

    async def _ahead(self) -> None:
        """Claim chunks beyond `slots`, one after the other, while the held ones would not keep
        this worker busy for AHEAD_S (see AHEAD_FACTOR); each is held in a task of its own."""
        while not self._stopping.is_set():
            if not self._hungry():
                await asyncio.sleep(RATE_S / 5)
                continue
            try:
                chunk = await self.store.claim_chunk(f"{self.name}/ahead")
            except StoreUnavailable:  # the loops log it
                chunk = None
            if chunk is None:
                await asyncio.sleep(IDLE_POLL_S)
                continue
            held = asyncio.create_task(self._hold(chunk))
            self._held_ahead.add(held)
            held.add_done_callback(self._held_ahead.discard)

    async def _hold(self, chunk: Chunk) -> None:
        """Process `chunk` to its end (a cancelled chunk ends here; a cancelled loop raises)."""
        for held, other in self.active.items():
            if (other.task_id, other.number) == (chunk.task_id, chunk.number):
                # Delivered again while this worker still holds it (its lease ran out, as in a store
                # outage): the held probes go on and complete it, the heartbeat now renewing this
                # delivery's lease (SQLite renews only the latest); probing it twice would not.
                log.info("chunk %s/%s delivered again while held here: left to its probes in flight",
                         chunk.task_id, chunk.number)  # fmt: skip
                self.active[held] = chunk
                return
        work = asyncio.create_task(self._process(chunk))
        self.active[work] = chunk
        self.progressed_at = self.moved[work] = time.monotonic()  # a fresh chunk gets its time
        self.longest[work] = _longest(chunk)
        self.left[work] = len(chunk.urls)
        try:
            await asyncio.wait({work})
        finally:
            work.cancel()
            self.active.pop(work, None)
            self.moved.pop(work, None)
            self.longest.pop(work, None)
            self.left.pop(work, None)
        await self._settle(work, chunk)

    async def _settle(self, work: asyncio.Task[None], chunk: Chunk) -> None:
        if work.cancelled():  # given up (logged with its reason) or stopping: nothing to store
            return
        if (error := work.exception()) is not None:  # left unacknowledged: it will be redelivered
            log.error("chunk %s/%s failed: %r", chunk.task_id, chunk.number, error)

    async def _process(self, chunk: Chunk) -> None:
        options = chunk.options  # typed and checked where the store read it
        started = time.perf_counter()
        batch = Batch(self, chunk)
        flusher = asyncio.create_task(batch.flush_every(FLUSH_S))
        me, moved, left = asyncio.current_task(), self.moved, self.left
        assert me is not None
        try:
            async for result in self._results(chunk, options):
                batch.add(result)
                moved[me] = time.monotonic()
                left[me] -= 1
                self.finished += 1
        except BaseException:
            flusher.cancel()
            raise
        batch.closing = True
        batch.due.set()
        await flusher  # a batch on its way lands before the chunk's completion
        await self._write(chunk, batch.take(), final=True)
        log.debug("chunk %s/%s: %d URLs in %.2fs", chunk.task_id, chunk.number, len(chunk.urls),
                  time.perf_counter() - started)  # fmt: skip

    def _results(self, chunk: Chunk, options: ProbeOptions) -> AsyncIterator[ProbeResult]:
        """The chunk's results: links straight from the engine (it reports links of another scheme,
        mailto: found in documents, `unsupported`); pages and fragments of crawl tasks are read
        (CrawlChunks)."""
        if chunk.kind is not ChunkKind.LINKS:
            return self.crawls.results(chunk, options)
        if options.max_age:
            return self._reused_or_probed(chunk, options)
        # One lane per task: its chunks share one fair part of the engine's slots with the others.
        # The whole chunk waits in the engine's queue, where a freed host's slot goes to the next
        # URL of that host in any held chunk of the task (Engine.run's window), unless the task's
        # own concurrency is what bounds its URLs in flight.
        whole = options.concurrency >= self.engine.config.concurrency
        window = len(chunk.urls) if whole else None
        lane = chunk.task_id
        if chunk.indexes is None:
            return self.engine.run(chunk.urls, options, start_index=chunk.start, lane=lane, window=window)
        return _indexed(self.engine.run(chunk.urls, options, lane=lane, window=window), chunk.indexes)

    async def _reused_or_probed(self, chunk: Chunk, options: ProbeOptions) -> AsyncIterator[ProbeResult]:
        """options.max_age: the results the owner's tasks probed recently with the same options
        are reused as they were (cached_from, their checked_at); only the other URLs are probed,
        and their results kept for later tasks."""
        found = await self.store.cached(chunk.task_id, chunk.urls, options.max_age)
        probe: list[int] = []  # input indexes of the URLs to probe
        urls: list[str] = []
        for index, url in zip(chunk.positions, chunk.urls, strict=True):
            if (hit := found.get(url)) is None:
                probe.append(index)
                urls.append(url)
                continue
            first = ProbeResult.from_dict(orjson.loads(hit[1]))
            first.index = index
            yield Reused(**{f.name: getattr(first, f.name) for f in RESULT_FIELDS}, cached_from=hit[0])
        fresh: list[ProbeResult] = []
        async for result in self.engine.run(urls, options, start_index=0, lane=chunk.task_id):
            result.index = probe[result.index]
            fresh.append(result)
            yield result
        await self._stored(lambda: self.store.remember(chunk.task_id, fresh), "results to reuse")

    async def _stored(self, write: Callable[[], Awaitable[None]], what: str) -> None:
        """Run a store write until the store takes it: what it carries exists only in memory."""
        delay = IDLE_POLL_S
        while True:
            try:
                return await write()
            except StoreUnavailable as exc:
                log.warning("cannot store %s, retrying in %.1fs: %s", what, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _write(self, chunk: Chunk, results: list[ProbeResult], final: bool = False) -> None:
        store = self.store
        write = store.complete_chunk if final else store.store_results
        await self._stored(lambda: write(chunk, results), "chunk results")
        if results:
            self.progressed_at = time.monotonic()
        if self.metrics is not None:
            self.metrics.observe(results)

    async def _watch_cancellations(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(CANCEL_POLL_S)
            watched = dict(self.active)  # only these: chunks claimed meanwhile were not asked about
            if not watched:
                continue
            try:
                live = await self.store.live_tasks({c.task_id for c in watched.values()})
                for work, chunk in watched.items():
                    if chunk.task_id not in live:  # a hint only: the store decides, atomically
                        await self._give_up(work, chunk)
            except StoreUnavailable:
                continue

    async def _give_up(self, work: asyncio.Task[None], chunk: Chunk) -> None:
        reason = await self.store.drop_chunk(chunk)
        if reason is not None:
            log.info("chunk %s/%s stopped in flight: its task was %s", chunk.task_id, chunk.number, reason)
            work.cancel()

    async def _heartbeat(self) -> None:
        """Renew the leases of the chunks that move; give up the ones that have not given a result
        for longer than a probe can take: a live process alone must not hold a chunk forever."""
        while not self._stopping.is_set():
            await asyncio.sleep(self.heartbeat_s)
            # A chunk may wait for slots held by any other chunk's probes: it is wedged only when
            # quiet for longer than the longest of them could hold one.
            longest = max(self.longest.values(), default=0.0)
            moving = [c for work, c in list(self.active.items()) if not self._wedged(work, c, longest)]
            with contextlib.suppress(StoreUnavailable):
                await self.store.heartbeat(moving)

    def _wedged(self, work: asyncio.Task[None], chunk: Chunk, longest: float) -> bool:
        """Given up when quiet too long; a chunk without a result yet is quiet only while every
        held chunk is (it waits in the engine's queue behind them, held ahead)."""
        now = time.monotonic()
        since = self.moved.get(work, now)
        if self.left.get(work) == len(chunk.urls):  # no result yet: it waits its turn behind the
            since = max(since, self.progressed_at)  # held chunks, quiet only once they are too
        quiet = now - since
        if quiet <= longest + self.give_up_margin_s:
            return False
        why = f"no result for {quiet:.0f}s (a probe of this worker takes at most {longest:g}s)"
        log.warning("chunk %s/%s given up: %s; its probes are cancelled and it will be redelivered",
                    chunk.task_id, chunk.number, why)  # fmt: skip
        self.given_up = (time.monotonic(), f"chunk {chunk.task_id}/{chunk.number} given up: {why}")
        if self.metrics is not None:
            self.metrics.gave_up()
        work.cancel()
        return True

    def problem(self) -> str | None:
        """Why this worker is not healthy: a chunk given up lately (its engine made no progress)."""
        if self.given_up is None or time.monotonic() - self.given_up[0] > WEDGED_S:
            return None
        return f"engine wedged: {self.given_up[1]}"


def _longest(chunk: Chunk) -> float:
    """The longest one URL of `chunk` can take once it holds its slots: a page of a crawl is read
    twice at most (robots.txt, then the page), its links then handed to the store."""
    longest = chunk.options.longest_s
    return longest if chunk.kind is ChunkKind.LINKS else 2 * longest


class CrawlChunks:
    """The `pages` and `fragments` chunks of crawl tasks. robots.txt files are kept per origin
    for every crawl this worker serves (bounded, crawl.Robots)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.robots = Robots(worker.engine)
        self.extract = Extractor()  # shared by every chunk: at most EXTRACTORS pages parsed at once

    def results(self, chunk: Chunk, options: ProbeOptions) -> AsyncIterator[ProbeResult]:
        if chunk.crawl is None:
            raise ValueError(f"a {chunk.kind} chunk of a task that is not a crawl")
        crawl = chunk.crawl
        options = page_options(options, crawl)
        limit = max(1, min(options.concurrency, PAGE_WINDOW))
        urls = enumerate(chunk.urls, chunk.start)
        if chunk.kind is ChunkKind.PAGES:
            rule = SiteRule(crawl)
            return completed((self._page(chunk, rule, i, url, options) for i, url in urls), limit)
        return _flat(
            completed(
                (
                    self._fragments(crawl, page, links, options, chunk.task_id)
                    for page, links in by_page(urls)
                ),
                limit,
            )
        )

    async def _allowed(self, crawl: CrawlSpec, url: str, options: ProbeOptions) -> bool:
        return crawl.ignore_robots or await self.robots.allowed(url, options)

    async def _page(
        self, chunk: Chunk, rule: SiteRule, index: int, url: str, options: ProbeOptions
    ) -> ProbeResult:
        """Fetch one page and hand its links to the store, before its own result is stored."""
        if not await self._allowed(rule.crawl, url, options):
            return disallowed(url, index)
        result, body = await self.worker.engine.fetch(url, index, options, lane=chunk.task_id)
        final = rule.followed(url, result)
        found = []
        if final is not None:  # grouped by URL, as `linkprobe crawl` reads a page
            found = rule.found(await self.extract.page(body, final, rule.crawl.check_fragments), chunk.depth)
        store = self.worker.store
        await self.worker._stored(lambda: store.discover(chunk, index, url, found), "the links of a page")
        return result

    async def _fragments(
        self, crawl: CrawlSpec, page: str, links: list[tuple[int, str]], options: ProbeOptions, lane: str
    ) -> list[ProbeResult]:
        """Each page#fragment of one page, judged by its anchors; as the page itself when it was
        not read as HTML (broken, not HTML)."""
        if not await self._allowed(crawl, page, options):
            return [disallowed(url, index) for index, url in links]
        result, body = await self.worker.engine.fetch(page, links[0][0], options, lane=lane)
        final = html_at(result, page)
        if final is None:
            return [dataclasses.replace(result, url=url, index=index) for index, url in links]
        anchors = (await self.extract(body, final, anchors=True)).anchors
        return [fragment_verdict(url, index, anchors, result) for index, url in links]


def by_page(links: Iterable[tuple[int, str]]) -> list[tuple[str, list[tuple[int, str]]]]:
    """(index, page#fragment) pairs grouped by page: each page is read once per chunk."""
    pages: dict[str, list[tuple[int, str]]] = {}
    for index, url in links:
        pages.setdefault(urldefrag(url).url, []).append((index, url))
    return list(pages.items())


async def completed(calls: Iterable[Awaitable[T]], limit: int) -> AsyncIterator[T]:
    """The calls' values as they complete, at most `limit` running at once."""
    running: set[asyncio.Future[T]] = set()
    try:
        for call in calls:
            running.add(asyncio.ensure_future(call))
            if len(running) >= limit:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        while running:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        for future in running:
            future.cancel()


async def _indexed(results: AsyncIterator[ProbeResult], indexes: list[int]) -> AsyncIterator[ProbeResult]:
    """A run's results (numbered from 0) with the input indexes of a chunk's URLs."""
    async for result in results:
        result.index = indexes[result.index]
        yield result


async def _flat(lists: AsyncIterator[list[T]]) -> AsyncIterator[T]:
    async for items in lists:
        for item in items:
            yield item


# -- worker processes: `linkprobe worker --processes N`, and `linkprobe serve`'s --


async def work(settings: Settings, shared: Path | None = None, share: int | None = None) -> None:
    """Probe chunks until SIGTERM or SIGINT. With `shared` (a worker process of `linkprobe serve`)
    the store is the serving process's SQLite file, and this process's metrics and health are
    published there every second for the API's /metrics and /readyz."""
    from linkprobe.store import open_store

    store = open_store(settings, follower=shared is not None, share=share)
    await store.open()
    metrics = Metrics()
    try:
        async with Engine(settings.engine_config()) as engine:
            shares = share is not None and not settings.redis_url  # SQLite: its own host share
            ahead = SHARE_AHEAD_SLOTS * engine.config.concurrency if shares else 0
            worker = Worker(
                store, engine, settings.workers, metrics, settings.reclaim_idle_s / 3, ahead_urls=ahead
            )
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker.stop)
            log.info("worker %s taking chunks from %s", worker.name, settings.redis_url or settings.db)
            publisher = asyncio.create_task(_publish(metrics, worker, shared)) if shared else None
            await worker.run()
            if publisher is not None:
                publisher.cancel()
    finally:
        await store.close()


async def _publish(metrics: Metrics, worker: Worker, shared: Path) -> None:
    path = shared / f"worker-{os.getpid()}.json"  # process_problems finds it by this name
    while True:
        metrics.publish(path, worker.problem())
        await asyncio.sleep(PUBLISH_S)


SERVE_WORKER_NICENESS = 5  # added to `linkprobe serve`'s worker processes' nice value


def child_process(
    settings: Settings, shared: Path | None = None, parent: int | None = None, share: int | None = None
) -> None:
    """A worker process: `linkprobe worker`'s, or one of `linkprobe serve`'s (with `shared`, and
    the serving process's pid)."""
    import uvloop

    from linkprobe.cli import settle_heap

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if parent is not None:
        _end_with_parent(parent)
        # The API first: its requests are short and come rarely, so the probes lose little, while
        # at equal priority a poll waited behind both busy workers (p99 of the task view).
        os.nice(SERVE_WORKER_NICENESS)
    settle_heap()
    uvloop.run(work(settings, shared, share))


def _end_with_parent(parent: int) -> None:
    """Linux: SIGTERM this process when the serving process ends, even by kill -9 (a worker left
    behind would go on writing to the file a new server then opens)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above (it may be pid 1 itself)
        os._exit(0)


def shared_settings(settings: Settings, processes: int) -> Settings:
    """The settings of one of `processes` worker processes that share the service's limits: the
    concurrency and the per-host limit divided between them (at least 1 each)."""
    concurrency = max(1, -(-settings.concurrency // processes))
    per_host = max(1, settings.per_host // processes)
    return settings.model_copy(update={"concurrency": concurrency, "per_host": per_host})


def start_processes(settings: Settings, count: int, shared: Path | None = None) -> list[BaseProcess]:
    """`count` worker processes, started (spawned: nothing of this process's state is shared).
    serve's (with `shared`) each prefer their own host share of the chunks (SQLiteStore)."""
    context = multiprocessing.get_context("spawn")
    parent = os.getpid() if shared is not None else None  # serve's: they end with it
    children: list[BaseProcess] = [
        context.Process(
            target=child_process, args=(settings, shared, parent, n if shared else None), daemon=False
        )
        for n in range(count)
    ]
    for child in children:
        child.start()
    return children


def stop_processes(children: list[BaseProcess]) -> None:
    """SIGTERM (the worker stops, its chunks left to be redelivered), then SIGKILL after 10 s."""
    for child in children:
        if child.pid is not None and child.is_alive():
            child.terminate()
    for child in children:
        child.join(STOP_S)
        if child.is_alive():
            child.kill()
            child.join()


def process_problems(children: list[BaseProcess], shared: Path) -> list[str]:
    """What is wrong with serve's worker processes: one that ended, or what one published."""
    ended = [f"worker process {c.pid} ended (exit code {c.exitcode})" for c in children if not c.is_alive()]
    # Not ready before each has published once: until then it is still starting (importing, opening
    # the store and the engine), and work submitted meanwhile waits for it.
    starting = [
        f"worker process {c.pid} is starting"
        for c in children
        if c.is_alive() and not (shared / f"worker-{c.pid}.json").exists()
    ]
    said = [str(p["problem"]) for p in published(shared) if p.get("problem")]
    return ended + starting + said
