"""Engine-wide concurrency: a global limit and a per-host limit, shared by every run.

The slots are taken before an attempt's deadline starts, so time spent queueing behind the
limits never counts against a URL (queueing inside aiohttp's connector did, and healthy URLs
timed out under load). The per-host slot is taken first, so URLs of a busy host wait without
holding one of the global slots that other hosts could use.
"""

from __future__ import annotations

import asyncio
from collections import deque


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

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
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


class _Host:
    __slots__ = ("semaphore", "users")

    def __init__(self, size: int) -> None:
        self.semaphore = FifoSemaphore(size)
        self.users = 0


class Slots:
    def __init__(self, total: int, per_host: int) -> None:
        self.total = FifoSemaphore(total)
        self.per_host = per_host
        self._hosts: dict[str, _Host] = {}

    async def acquire(self, host: str) -> _Host:
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._hosts[host] = _Host(self.per_host)
        entry.users += 1
        try:
            await entry.semaphore.acquire()
            try:
                await self.total.acquire()
            except BaseException:
                entry.semaphore.release()
                raise
        except BaseException:
            self._forget(host, entry)
            raise
        return entry

    def release(self, host: str, entry: _Host) -> None:
        self.total.release()
        entry.semaphore.release()
        self._forget(host, entry)

    def _forget(self, host: str, entry: _Host) -> None:
        entry.users -= 1
        if entry.users == 0:
            del self._hosts[host]  # idle hosts cost no memory: inputs may span millions of hosts

    def hosts_tracked(self) -> int:
        return len(self._hosts)
