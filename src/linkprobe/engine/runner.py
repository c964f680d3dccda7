"""The engine: runs many probes concurrently on one shared transport and streams results.

Memory is bounded by the concurrency window, not by the input: inputs are pulled lazily and
results are handed to the consumer as they complete.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Iterator, Sized
from types import TracebackType

from linkprobe.engine.egress import EgressPolicy
from linkprobe.engine.handle import Limits
from linkprobe.engine.limits import SPARE_DESCRIPTORS, Lane, Slots, ensure_descriptors
from linkprobe.engine.options import EngineConfig, ProbeOptions
from linkprobe.engine.outcome import ErrorKind, ProbeResult, failed
from linkprobe.engine.probe import Prober
from linkprobe.engine.transport import Transport

Inputs = Iterable[str] | AsyncIterable[str]


class Engine:
    """Probe URLs. Use as `async with Engine(config) as engine:`; share one engine per process."""

    def __init__(self, config: EngineConfig | None = None, *, shared: bool = True) -> None:
        """`shared`: runs of several tasks may use this engine at once (serve, the worker), and
        each lane leaves a reserve of the slots to the others (limits.RESERVE_SHARE). False for
        a process that runs one list (check, crawl): its run may use every slot."""
        self.config = config or EngineConfig()
        self.shared = shared
        self.policy = EgressPolicy(self.config.allow_private, self.config.allow_cidrs)
        self._transport: Transport | None = None
        self._prober: Prober | None = None

    async def __aenter__(self) -> Engine:
        config = self.config
        # The pool is bounded by the slots (connections, idle ones included, at most twice the
        # requests in flight, however many hosts a run has), and the process may open them all.
        limits = Limits(config.concurrency, config.per_host)
        ensure_descriptors(limits.connections + SPARE_DESCRIPTORS, f"concurrency {config.concurrency}")
        self._transport = Transport(self.policy, limits)
        self._prober = Prober(self._transport, Slots(config.concurrency, config.per_host, self.shared))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._transport = self._prober = None

    @property
    def prober(self) -> Prober:
        if self._prober is None:
            raise RuntimeError("Engine used outside `async with`")
        return self._prober

    async def probe(
        self, url: str, index: int = 0, options: ProbeOptions | None = None, lane: Lane = None
    ) -> ProbeResult:
        return await self.prober.probe(url, index, options or ProbeOptions(), lane=lane)

    async def fetch(
        self, url: str, index: int = 0, options: ProbeOptions | None = None, lane: Lane = None
    ) -> tuple[ProbeResult, bytes]:
        """Probe `url` like probe() and also return the final body, at most options.max_body_bytes
        after decoding (empty with HEAD): the one read of a page that is crawled."""
        page = bytearray()
        result = await self.prober.probe(url, index, options or ProbeOptions(), page, lane)
        return result, bytes(page)

    def run(
        self,
        urls: Inputs,
        options: ProbeOptions | None = None,
        *,
        start_index: int = 0,
        stop: asyncio.Event | None = None,
        lane: Lane = None,
        window: int | None = None,
    ) -> AsyncGenerator[ProbeResult, None]:
        """Yield one result per input URL, in completion order; `index` is the input position.

        Setting `stop` cancels what is in flight: those URLs and every URL not yet started
        are still yielded, with the error kind `cancelled`. Runs with the same `lane` (a task's
        chunks) share one fair share of the engine's slots; without one, a run is its own lane.
        `window`: the URLs taken at once (default: options.concurrency, at most the input's
        length). Beyond the engine's slots they wait in its queue, where the slot a probe frees
        goes to a URL of the same lane and host: a worker's chunks, each run whole, so reuse
        connections across chunks (limits.LaneSemaphore).
        """
        run = _Run(self.prober, urls, options or ProbeOptions(), start_index, stop, window)
        run.lane = run if lane is None else lane
        return run.results()


class _Run:
    def __init__(
        self, prober: Prober, urls: Inputs, options: ProbeOptions, start: int, stop: asyncio.Event | None,
        window: int | None = None,
    ) -> None:  # fmt: skip
        self.prober = prober
        self.options = options
        self.stop = stop
        self.inputs = _numbered(urls, start)
        # Results are handed over in batches: one consumer wake-up drains everything ready, instead
        # of one task switch per result through an asyncio.Queue (measured: a large share of the
        # engine's overhead over a bare aiohttp loop).
        self.ready: deque[ProbeResult] = deque()
        self.has_results = asyncio.Event()
        self.has_room = asyncio.Event()
        self.has_room.set()
        self.finished = False
        self.stopped = False
        # A short input needs no more workers than URLs (a chunk of 500 would start 256).
        wanted = window or options.concurrency
        self.window = min(wanted, len(urls)) if isinstance(urls, Sized) else wanted
        self.probing: set[asyncio.Task[None]] = set()
        self.lane: Lane = self

    async def results(self) -> AsyncGenerator[ProbeResult, None]:
        workers = [asyncio.create_task(self._worker()) for _ in range(max(self.window, 1))]
        closer = asyncio.create_task(self._close_when_done(workers))
        watcher = asyncio.create_task(self._watch_stop()) if self.stop is not None else None
        try:
            while not (self.finished and not self.ready):
                await self.has_results.wait()
                self.has_results.clear()
                while self.ready:
                    yield self.ready.popleft()
                self.has_room.set()
            async for index, url in self.inputs:  # only after a stop: nothing may be dropped
                yield failed(url, index, ErrorKind.CANCELLED, "the run was stopped before this URL started")
        finally:  # a consumer that leaves early: its probes end (and free their handles) first
            tasks = [task for task in (*workers, closer, watcher) if task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        track = self.stop is not None  # only a stoppable run needs to know who is probing
        while (item := self.inputs.pull() or await self.inputs.pull_async()) is not None:
            index, url = item
            if track:
                self.probing.add(me)
            try:
                result = await self.prober.probe(url, index, self.options, lane=self.lane)
            except asyncio.CancelledError:
                if not self.stopped:
                    raise
                result = failed(url, index, ErrorKind.CANCELLED, "the run was stopped mid-probe")
            finally:
                if track:
                    self.probing.discard(me)
            if len(self.ready) < self.window:  # the common case, without a coroutine per result
                self.ready.append(result)
                self.has_results.set()
            else:
                await self._hand_over(result)
            if self.stopped:
                return

    async def _hand_over(self, result: ProbeResult) -> None:
        while len(self.ready) >= self.window:  # backpressure when the consumer is slow
            self.has_room.clear()
            await self.has_room.wait()
        self.ready.append(result)
        self.has_results.set()

    async def _close_when_done(self, workers: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*workers, return_exceptions=True)
        self.finished = True
        self.has_results.set()

    async def _watch_stop(self) -> None:
        assert self.stop is not None
        await self.stop.wait()
        self.stopped = True
        # Only probes are cancelled: a worker awaiting an async input would lose that URL.
        for task in list(self.probing):
            task.cancel()


class _numbered:
    """A shared source of (index, url) for the workers, sync or async underneath.

    Workers pull from it concurrently; async inputs are serialised by a lock because an async
    generator cannot be re-entered.
    """

    def __init__(self, urls: Inputs, start: int) -> None:
        self._sync: Iterator[tuple[int, str]] | None = (
            enumerate(urls, start) if isinstance(urls, Iterable) else None
        )
        self._async: AsyncIterator[str] | None = None if self._sync is not None else aiter(urls)  # type: ignore[arg-type]
        self._index = start  # of the async source
        self._lock = asyncio.Lock()

    def __aiter__(self) -> _numbered:
        return self

    def pull(self) -> tuple[int, str] | None:
        """The next input of a sync source without a coroutine; None when exhausted or async."""
        return None if self._sync is None else next(self._sync, None)

    async def pull_async(self) -> tuple[int, str] | None:
        """The next input of an async source; None when exhausted (or for a sync source)."""
        if self._async is None:
            return None
        try:
            async with self._lock:
                url = await anext(self._async)
        except StopAsyncIteration:
            return None
        index = self._index
        self._index += 1
        return index, url

    async def __anext__(self) -> tuple[int, str]:
        item = self.pull() or await self.pull_async()
        if item is None:
            raise StopAsyncIteration
        return item
