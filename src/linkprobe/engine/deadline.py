"""Per-attempt deadlines without one event-loop timer per attempt.

asyncio.timeout arms and cancels a loop timer for every attempt; at thousands of probes a second
that was a measurable share of the engine's CPU. Here one sweeper task wakes every TICK seconds and
cancels the probes that are overdue, which costs O(in flight) per tick and nothing per probe. The
price is precision: a deadline fires up to TICK late.
"""

from __future__ import annotations

import asyncio
import contextlib

TICK = 0.05


class Deadlines:
    def __init__(self) -> None:
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._now = self._start  # the running loop's clock, once the sweeper runs

    def _start(self) -> float:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self._sweep())
        self._now = loop.time
        return loop.time()

    def arm(self, task: asyncio.Task[object], seconds: float) -> None:
        self._due[task] = self._now() + seconds

    def disarm(self, task: asyncio.Task[object]) -> None:
        self._due.pop(task, None)

    def expired(self, task: asyncio.Task[object]) -> bool:
        """After a CancelledError: True (and the cancellation is absorbed) when it was the deadline.

        False when someone else cancelled the task too: that cancellation must propagate.
        """
        if task not in self._expired:
            return False
        self._expired.discard(task)
        return task.uncancel() == 0

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK)
            now = loop.time()
            for task, due in list(self._due.items()):
                if due <= now:
                    del self._due[task]
                    self._expired.add(task)
                    task.cancel()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
            self._now = self._start
