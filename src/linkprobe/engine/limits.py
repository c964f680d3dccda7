"""Engine-wide concurrency: a global limit and a per-host limit, shared by every run.

The slots are taken before an attempt's deadline starts, so time spent queueing behind the
limits never counts against a URL (queueing inside aiohttp's connector did, and healthy URLs
timed out under load). The per-host slot is taken first, so URLs of a busy host wait without
holding one of the global slots that other hosts could use.
"""

from __future__ import annotations

import os
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only a waiter needs the loop: a one-URL check runs without asyncio
    import asyncio


def cpus() -> int:
    """The CPUs this process may run on (not a container's CPU quota, which Linux does not say here)."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


class FifoSemaphore:
    """A semaphore that hands a released slot straight to the oldest waiter.

    asyncio.Semaphore.acquire() scans every waiter (via locked()) on each call; with hundreds of
    probes queued that scan dominated. Here acquire and release are O(1); only a waiter that is
    cancelled pays O(waiters) to leave the queue.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        """Take a slot without waiting if one is free (no coroutine: the common case)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        granted: asyncio.Future[None] = _loop().create_future()
        self._waiters.append(granted)
        try:
            await granted
        except BaseException:  # cancelled (or interrupted): pass a granted slot on, or leave the queue
            if granted.done() and not granted.cancelled():
                self.release()  # the slot arrived together with the cancellation: pass it on
            else:
                self._waiters.remove(granted)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class Slots:
    """The global limit and the per-host limits. A host costs a dict entry only while it has
    probes in flight, and a waiting queue only while it is full (most hosts never are)."""

    def __init__(self, total: int, per_host: int) -> None:
        self.total = FifoSemaphore(total)
        self.per_host = per_host
        self._active: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def try_acquire(self, host: str) -> bool:
        """Both slots at once without waiting, or neither: the fast path of acquire()."""
        active = self._active.get(host, 0)
        if active >= self.per_host or host in self._waiting or not self.total.try_acquire():
            return False
        self._active[host] = active + 1
        return True

    async def acquire(self, host: str) -> None:
        await self._acquire_host(host)
        try:
            await self.total.acquire()
        except BaseException:
            self._release_host(host)
            raise

    def release(self, host: str) -> None:
        self.total.release()
        self._release_host(host)

    async def _acquire_host(self, host: str) -> None:
        active = self._active.get(host, 0)
        if active < self.per_host and host not in self._waiting:
            self._active[host] = active + 1
            return
        granted: asyncio.Future[None] = _loop().create_future()
        self._waiting.setdefault(host, deque()).append(granted)
        try:
            await granted  # the releaser hands its slot over: the count stays as it was
        except BaseException:  # cancelled (or interrupted): pass a granted slot on, or leave the queue
            if granted.done() and not granted.cancelled():
                self._release_host(host)
            else:
                self._forget_waiter(host, granted)
            raise

    def _release_host(self, host: str) -> None:
        if host in self._waiting and self._hand_over(host):
            return
        active = self._active[host] - 1
        if active:
            self._active[host] = active
        else:
            del self._active[host]  # idle hosts cost no memory: inputs may span millions of hosts

    def _hand_over(self, host: str) -> bool:
        """Pass a released host slot to the oldest live waiter; False when none is left."""
        waiters = self._waiting[host]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                if not waiters:
                    del self._waiting[host]
                waiter.set_result(None)
                return True
        del self._waiting[host]
        return False

    def _forget_waiter(self, host: str, waiter: asyncio.Future[None]) -> None:
        waiters = self._waiting.get(host)
        if waiters is not None:
            waiters.remove(waiter)
            if not waiters:
                del self._waiting[host]

    def hosts_tracked(self) -> int:
        return len(self._active) + len(self._waiting)


def _loop() -> asyncio.AbstractEventLoop:
    import asyncio

    return asyncio.get_running_loop()
