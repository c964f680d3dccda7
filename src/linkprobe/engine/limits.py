"""Engine-wide concurrency: a global limit shared fairly between lanes, and a per-host limit.

The slots are taken before an attempt's deadline starts, so time spent queueing behind the
limits never counts against a URL (queueing inside aiohttp's connector did, and healthy URLs
timed out under load). The per-host slot is taken first, so URLs of a busy host wait without
holding one of the global slots that other hosts could use.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only a waiter needs the loop: a one-URL check runs without asyncio
    import asyncio


SPARE_DESCRIPTORS = 64  # beyond the pool: the store, pipes, logs, the interpreter's own


def ensure_descriptors(needed: int, what: str) -> None:
    """Make sure this process may open `needed` files: the soft limit is raised to the hard one
    when it is lower, and a hard limit below `needed` is a ConfigError saying what to change.
    Running out mid-run would fail healthy targets with "Too many open files"."""
    import resource

    from linkprobe.engine.errors import ConfigError

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ConfigError(
            f"{what} needs up to {needed} open files, and this process may open {hard} (ulimit -n): "
            "lower the concurrency, or raise the limit"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpus() -> int:
    """The CPUs this process may run on (not a container's CPU quota, which Linux does not say here)."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


Lane = Hashable  # who a slot is for: a run, or a task's runs together (Engine.run's `lane`)
NOBODY: Lane = object()  # not a lane (None is one: the lane of probes given none)
RESERVE_SHARE = 16  # a lane may hold all slots but 1/16th: those stay free for other lanes


class LaneSemaphore:
    """The global slots, shared fairly between lanes (tasks), in order within a lane, except
    that a slot released by a probe of a host goes first to a waiter of the same lane for the
    same host: that host's connection has just gone idle, and is reused before the bounded pool
    drops it (a worker's chunks meet a host again far apart in input order).

    A released slot goes to the waiting lane that holds the fewest, and no lane holds more than
    `cap` (all but a reserve), so a lane whose URLs hang holds at most its share once others
    wait, and a newcomer finds a free slot at once. acquire and release are O(1) in the waiters
    of a lane (O(lanes waiting) to pick one, and lanes are tasks: few; O(waiters for the host),
    at most the per-host limit, to keep the host's queue); a cancelled waiter pays O(its lane's
    waiters) to leave.
    """

    __slots__ = ("_by_host", "_free", "_held", "_waiters", "cap")

    def __init__(self, size: int, shared: bool = True) -> None:
        self._free = size
        # Only lanes that may meet others keep a reserve: a lone one would never use it.
        self.cap = size - size // RESERVE_SHARE if shared else size
        self._held: dict[Lane, int] = {}
        # A lane's waiters in order, each with its host; granted ones are skipped when reached.
        self._waiters: dict[Lane, deque[tuple[asyncio.Future[None], str | None]]] = {}
        self._by_host: dict[tuple[Lane, str], deque[asyncio.Future[None]]] = {}  # waiting, per host

    def try_acquire(self, lane: Lane = None) -> bool:
        """Take a slot without waiting if one is free for `lane` (no coroutine: the common case).
        While a slot is free no lane under its cap is waiting (_grant keeps it so)."""
        held = self._held.get(lane, 0)
        if self._free > 0 and held < self.cap:
            self._free -= 1
            self._held[lane] = held + 1
            return True
        return False

    async def acquire(self, lane: Lane = None, host: str | None = None) -> None:
        """A slot for `lane`; `host` (the probe's) lets a slot its host frees come first."""
        if self.try_acquire(lane):
            return
        granted: asyncio.Future[None] = _loop().create_future()
        self._waiters.setdefault(lane, deque()).append((granted, host))
        if host is not None:
            self._by_host.setdefault((lane, host), deque()).append(granted)
        try:
            await granted
        except BaseException:  # cancelled (or interrupted): pass a granted slot on, or leave the queue
            if granted.done() and not granted.cancelled():
                self.release(lane)
            else:
                self._forget(lane, granted, host)
            raise

    def release(self, lane: Lane = None, host: str | None = None) -> None:
        """Give back a slot of `lane`, held by a probe of `host` (None: unknown, or moved)."""
        held = self._held[lane] - 1
        if held:
            self._held[lane] = held
        else:
            del self._held[lane]
        self._free += 1
        if self._waiters and not (host is not None and self._pass_on(lane, host, held)):
            self._grant()

    def _pass_on(self, lane: Lane, host: str, held: int) -> bool:
        """Grant the slot just released to the oldest waiter of `lane` for `host`, if any, and if
        no other waiting lane holds fewer slots (fairness between lanes comes first)."""
        waiters = self._by_host.get((lane, host))
        if waiters is None or any(
            self._held.get(other, 0) < held for other in self._waiters if other != lane
        ):
            return False
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # its entry in the lane's queue is skipped when reached
                break
        else:
            del self._by_host[(lane, host)]
            return False
        if not waiters:
            del self._by_host[(lane, host)]
        self._free -= 1
        self._held[lane] = held + 1
        waiter.set_result(None)
        return True

    def _grant(self) -> None:
        while self._free > 0:
            lane = self._neediest()
            if lane is NOBODY:
                return
            waiters = self._waiters[lane]
            waiter, host = waiters.popleft()
            if not waiters:
                del self._waiters[lane]
            if waiter.done():  # cancelled in the same tick, or granted for its host: the next
                continue
            if host is not None:
                self._unlist(lane, host, waiter)
            self._free -= 1
            self._held[lane] = self._held.get(lane, 0) + 1
            waiter.set_result(None)

    def _unlist(self, lane: Lane, host: str, waiter: asyncio.Future[None]) -> None:
        """Take `waiter` out of its host's queue (at most the per-host limit long)."""
        waiters = self._by_host.get((lane, host))
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._by_host[(lane, host)]

    def _neediest(self) -> Lane:
        """The waiting lane under its cap that holds the fewest slots (NOBODY: no lane may take one)."""
        held = self._held
        lanes = [lane for lane in self._waiters if held.get(lane, 0) < self.cap]
        return min(lanes, key=lambda lane: held.get(lane, 0)) if lanes else NOBODY

    def _forget(self, lane: Lane, waiter: asyncio.Future[None], host: str | None) -> None:
        waiters = self._waiters.get(lane)
        if waiters is not None and (waiter, host) in waiters:
            waiters.remove((waiter, host))
            if not waiters:
                del self._waiters[lane]
        if host is not None:
            self._unlist(lane, host, waiter)

    def held(self, lane: Lane = None) -> int:
        return self._held.get(lane, 0)


class Slots:
    """The global limit and the per-host limits. A host costs a dict entry only while it has
    probes in flight, and a waiting queue only while it is full (most hosts never are)."""

    def __init__(self, total: int, per_host: int, shared: bool = True) -> None:
        self.total = LaneSemaphore(total, shared)
        self.per_host = per_host
        self._active: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def try_acquire(self, host: str, lane: Lane = None) -> bool:
        """Both slots at once without waiting, or neither: the fast path of acquire()."""
        active = self._active.get(host, 0)
        if active >= self.per_host or host in self._waiting or not self.total.try_acquire(lane):
            return False
        self._active[host] = active + 1
        return True

    async def acquire(self, host: str, lane: Lane = None) -> None:
        await self._acquire_host(host)
        try:
            await self.total.acquire(lane, host)
        except BaseException:
            self._release_host(host)
            raise

    def release(self, host: str | None, lane: Lane = None) -> None:
        """Both slots; only the global one with `host` None (a probe cancelled while it moved).
        The global slot goes first to a probe of the same lane waiting for the same host."""
        self.total.release(lane, host)
        if host is not None:
            self._release_host(host)

    async def move(self, held: list[str | None], new: str) -> None:
        """A redirect to another host: the probe's host slot passes from held[0] to `new`, waiting
        for one there if need be (its global slot is kept). held[0] is None while it waits, so a
        cancellation then releases no host slot twice."""
        old, held[0] = held[0], None
        if old is not None:
            self._release_host(old)
        await self._acquire_host(new)
        held[0] = new

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
