"""One run over several processes: URLs split by host, each share probed by its own engine.

A Python process probing with libcurl is bound by one core; a large input is split over N
processes to use every core. URLs are assigned by host, so a host's URLs all go to one process
and the per-host limit holds across them; the concurrency is divided between the processes.
The processes are forked before the event loop starts (`Shards.fork`): each child probes a share
and sends its results back through a pipe in pickled batches; this one merges them. Every
URL still yields exactly one result: a child that ends early leaves its missing URLs `internal`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pickle
import signal
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, BinaryIO

from linkprobe.engine.handle import Limits
from linkprobe.engine.limits import SPARE_DESCRIPTORS, ensure_descriptors
from linkprobe.engine.options import EngineConfig, ProbeOptions
from linkprobe.engine.outcome import ErrorKind, ProbeResult, failed
from linkprobe.engine.runner import Engine

MIN_SHARE = 256  # fewer URLs a process than this are not worth a fork
FLUSH_SECONDS = 0.05  # a child sends what it has at least this often (the progress bar is live)
BATCH = 256
REUSE_BLOCK = 1.5  # hosts of a wave (waves()) per slot: above the requests in flight, within the pool
LOST = "the probing process ended before this URL's result"
_LENGTH = struct.Struct("!I")
Runner = Callable[[Coroutine[Any, Any, None]], None]


def host_of(url: str) -> str:
    """The host part of a URL as written (case folded): the same host always lands in one share."""
    authority = url.partition("://")[2]
    for end in "/?#":
        authority = authority.partition(end)[0]
    host = authority.rpartition("@")[2].lower()
    return host if host.endswith("]") else host.rpartition(":")[0] or host


def share_of(url: str, parts: int) -> int:
    """Which of `parts` shares `url` belongs to, by a stable hash of its host: a host's URLs all
    land in one share (one process, one connection pool, one per-host limit)."""
    return host_share(host_of(url), parts)


def host_share(host: str, parts: int) -> int:
    return zlib.crc32(host.encode()) % parts


def processes_for(jobs: int, urls: int) -> int:
    return max(1, min(jobs, urls // MIN_SHARE))


def split(urls: list[str], parts: int, hosts: list[str] | None = None) -> list[list[int]]:
    """The indexes of `urls` in each share, by a stable hash of their host (`hosts`: each URL's
    host_of, when known)."""
    if parts == 1:
        return [list(range(len(urls)))]
    shares: list[list[int]] = [[] for _ in range(parts)]
    for index, host in enumerate(hosts if hosts is not None else map(host_of, urls)):
        shares[host_share(host, parts)].append(index)
    return shares


def waves(urls: list[str], share: list[int], block: int, hosts: list[str] | None = None) -> list[int]:
    """`share` reordered for connection reuse within a bounded pool: hosts are taken `block` at a
    time (in order of first appearance), and each block gives the first URL of each of its hosts,
    then the second, and so on. A host comes round again after about `block` requests: its last
    request has ended and its connection is still among the `block` most recently used, which
    the pool keeps (a block no larger than the pool). In input order, a host that comes round
    after more hosts than the pool holds reconnects every time. `hosts`: each URL's host_of,
    when known."""
    by_host: dict[str, list[int]] = {}
    for index in share:
        by_host.setdefault(host_of(urls[index]) if hosts is None else hosts[index], []).append(index)
    ordered: list[int] = []
    queues = list(by_host.values())
    for start in range(0, len(queues), block):
        group = queues[start : start + block]
        for round_ in range(max(len(h) for h in group)):
            ordered += [h[round_] for h in group if round_ < len(h)]
    return ordered


@dataclasses.dataclass
class Child:
    pid: int
    pipe: BinaryIO  # its results
    indexes: list[int]  # the positions of its URLs in the whole input


class Shards:
    """The processes of one run. Build with `fork` before any event loop runs."""

    def __init__(self, urls: list[str], own: list[int], children: list[Child], config: EngineConfig) -> None:
        self.urls, self.own, self.children, self.config = urls, own, children, config

    @classmethod
    def fork(
        cls, urls: list[str], jobs: int, config: EngineConfig, options: ProbeOptions, run: Runner
    ) -> Shards:
        """Split `urls` over `jobs` processes (fewer for a short input); `run` runs a coroutine
        to its end in a child (the caller's choice of event loop). With one process this one
        probes; with more, children probe and this one only merges their results (and writes
        them out): with a share of its own it fell behind the children on 2 cores."""
        parts = processes_for(jobs, len(urls))
        config, options = _divided(config, parts), _divided(options, parts)
        pool = Limits(config.concurrency, config.per_host).connections
        ensure_descriptors(pool + SPARE_DESCRIPTORS, f"concurrency {config.concurrency} a process")
        block = max(1, int(config.concurrency * REUSE_BLOCK))
        hosts = list(map(host_of, urls))  # once: the processes wait for this before they start
        shares = [waves(urls, share, block, hosts) for share in split(urls, parts, hosts)]
        if parts == 1:
            return cls(urls, shares[0], [], config)
        return cls(urls, [], [_fork_child(urls, share, config, options, run) for share in shares], config)

    async def run(self, options: ProbeOptions, stop: asyncio.Event) -> AsyncIterator[ProbeResult]:
        """Every URL's result, in completion order, `index` its position in the whole input."""
        if not self.children:
            async with Engine(self.config, shared=False) as engine:
                async for result in engine.run([self.urls[i] for i in self.own], options, stop=stop):
                    result.index = self.own[result.index]
                    yield result
            return
        merged: asyncio.Queue[list[ProbeResult] | None] = asyncio.Queue()
        tasks = [asyncio.create_task(_receive(child, self.urls, stop, merged)) for child in self.children]
        forward = asyncio.create_task(_forward_stop(stop, self.children))
        try:
            for _ in range(len(tasks)):
                while (batch := await merged.get()) is not None:
                    for result in batch:
                        yield result
        finally:
            forward.cancel()
            for task, child in zip(tasks, self.children, strict=True):
                if not task.done():  # the consumer left early: the child's results are not wanted
                    task.cancel()
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGKILL)
                _reap(child)


def _divided(settings: Any, parts: int) -> Any:
    """`settings` with its concurrency shared between `parts` processes (at least 1 each)."""
    return dataclasses.replace(settings, concurrency=max(1, -(-settings.concurrency // parts)))


def _fork_child(
    urls: list[str], share: list[int], config: EngineConfig, options: ProbeOptions, run: Runner
) -> Child:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        return Child(pid, open(read_fd, "rb", buffering=0), share)
    status = 1
    try:  # the child: probe its share, send the results, and never return into the caller
        os.close(read_fd)
        with open(write_fd, "wb") as pipe:
            run(_child_main([urls[i] for i in share], config, options, pipe))
        status = 0
    finally:
        os._exit(status)


async def _child_main(urls: list[str], config: EngineConfig, options: ProbeOptions, pipe: BinaryIO) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)  # stopped by the parent too
    outbox = Outbox(pipe)
    ticker = asyncio.create_task(outbox.flush_every(FLUSH_SECONDS))
    try:
        async with Engine(config, shared=False) as engine:  # one list: no other lane to reserve for
            async for result in engine.run(urls, options, stop=stop):
                outbox.add(result)
    finally:
        ticker.cancel()
    outbox.flush()


class Outbox:
    """A child's results on their way to the parent: sent by the batch, and at least every
    FLUSH_SECONDS while any wait (a few hanging URLs must not hold back the ones done)."""

    def __init__(self, pipe: BinaryIO) -> None:
        self.pipe = pipe
        self.pending: list[ProbeResult] = []

    def add(self, result: ProbeResult) -> None:
        self.pending.append(result)
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        _send(self.pipe, self.pending)  # blocking: a parent slow to read holds the child back
        self.pending = []

    async def flush_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.flush()


def _send(pipe: BinaryIO, results: list[ProbeResult]) -> None:
    if results:
        data = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
        pipe.write(_LENGTH.pack(len(data)) + data)
        pipe.flush()


async def _receive(
    child: Child, urls: list[str], stop: asyncio.Event, merged: asyncio.Queue[list[ProbeResult] | None]
) -> None:
    """A child's results, re-indexed; at its end, a result for each URL it left: `cancelled` when
    the run was stopped (Ctrl-C may end a child before it can say so), else `internal`."""
    seen = bytearray(len(child.indexes))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), child.pipe)
    try:
        while batch := await _read_batch(reader):
            for result in batch:
                seen[result.index] = 1
                result.index = child.indexes[result.index]
            merged.put_nowait(batch)
        kind = ErrorKind.CANCELLED if stop.is_set() else ErrorKind.INTERNAL
        why = "the run was stopped before this URL finished" if stop.is_set() else LOST
        lost = [
            failed(urls[i], i, kind, why) for position, i in enumerate(child.indexes) if not seen[position]
        ]
        if lost:
            merged.put_nowait(lost)
    finally:
        transport.close()
        merged.put_nowait(None)


async def _read_batch(reader: asyncio.StreamReader) -> list[ProbeResult]:
    """The next batch of results, or [] at the end of the stream (a torn record counts as the end)."""
    try:
        head = await reader.readexactly(_LENGTH.size)
        batch: list[ProbeResult] = pickle.loads(await reader.readexactly(_LENGTH.unpack(head)[0]))
    except asyncio.IncompleteReadError:
        return []
    return batch


async def _forward_stop(stop: asyncio.Event, children: list[Child]) -> None:
    await stop.wait()
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGINT)


def _reap(child: Child) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child.pid, 0)
