"""Two runs compared URL by URL (linkprobe.changes) over the store, in memory that does not grow
with them: each run's results are read in URL order (Store.seen_by_url) and merged on a thread,
which pulls them through the event loop a batch at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from itertools import islice

from fastapi import Request

from linkprobe import changes
from linkprobe.changes import Change, Compared, Seen
from linkprobe.store import TERMINAL, Store, TaskRecord

BATCH = 1000  # items pulled across the merge's thread at a time
log = logging.getLogger("linkprobe.api")


async def _pull(stream: AsyncIterator[Seen], size: int) -> list[Seen]:
    batch: list[Seen] = []
    async for item in stream:
        batch.append(item)
        if len(batch) >= size:
            break
    return batch


@contextlib.asynccontextmanager
async def merged(
    store: Store, previous: str, current: str, after: str | None
) -> AsyncIterator[Iterator[Compared]]:
    """changes.merge of the two runs after URL `after`: an iterator for a thread to drive (each of
    its steps may wait on the event loop for the store's next batch, so never on the loop)."""
    loop = asyncio.get_running_loop()
    streams = [store.seen_by_url(previous, after), store.seen_by_url(current, after)]

    def pulled(stream: AsyncIterator[Seen]) -> Iterator[Seen]:
        while batch := asyncio.run_coroutine_threadsafe(_pull(stream, BATCH), loop).result():
            yield from batch

    try:
        yield changes.merge(pulled(streams[0]), pulled(streams[1]))
    finally:
        for stream in streams:
            if isinstance(stream, AsyncGenerator):
                await stream.aclose()


async def changed(
    store: Store, previous: str, current: str, wanted: Change | None = None, after: str | None = None
) -> AsyncGenerator[Compared, None]:
    """The URLs after `after` that changed between two runs (only `wanted` ones when given), in URL
    order."""
    async with merged(store, previous, current, after) as items:
        while batch := await asyncio.to_thread(lambda: list(islice(items, BATCH))):
            for item in batch:
                if item.change is not None and wanted in (None, item.change):
                    yield item


async def count(store: Store, previous: str, current: str) -> dict[str, int]:
    """How many URLs of each change (changes.counts), counted on the merge's thread."""
    async with merged(store, previous, current, None) as items:
        return await asyncio.to_thread(changes.counts, (item.change for item in items))


class ChangeCounter:
    """Counts a re-run's changes once it has ended, in the background, and keeps them with the
    task (Store.set_changes) for every later view; one count at a time per task in this process."""

    def __init__(self) -> None:
        self.running: dict[str, asyncio.Task[None]] = {}

    def note(self, store: Store, record: TaskRecord) -> None:
        wanted = record.status in TERMINAL and record.rerun_of and record.changes is None
        if wanted and record.id not in self.running:
            assert record.rerun_of is not None
            self.running[record.id] = asyncio.create_task(self._count(store, record.rerun_of, record.id))

    async def _count(self, store: Store, previous: str, current: str) -> None:
        try:
            if await store.get_task(previous) is not None:  # else the first run is gone: no baseline
                await store.set_changes(current, {"since": previous, **await count(store, previous, current)})
        except Exception:  # the store down, the task deleted meanwhile: counted at a later view
            log.warning("the changes of task %s could not be counted", current, exc_info=True)
        finally:
            del self.running[current]


def counter(request: Request) -> ChangeCounter:
    """The app's ChangeCounter (made on first use)."""
    state = request.app.state
    if not hasattr(state, "change_counter"):
        state.change_counter = ChangeCounter()
    found: ChangeCounter = state.change_counter
    return found
