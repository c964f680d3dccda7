"""The worker's own lifecycle (the chunk flow itself is covered through the API and fault tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from linkprobe.engine import Engine, EngineConfig, StoreUnavailable
from linkprobe.store import Chunk
from linkprobe.store.sqlite import SQLiteStore
from linkprobe.worker import Worker


class CancelToOutageStore(SQLiteStore):
    """A store whose blocking claim turns cancellation into a connection error, as a Redis
    client may when a cancelled XREADGROUP tears its connection down."""

    async def claim_chunk(self, worker: str) -> Chunk | None:
        try:
            await asyncio.sleep(0.05)  # a blocking read
        except asyncio.CancelledError:
            raise StoreUnavailable("connection closed while reading") from None
        return await super().claim_chunk(worker)


async def test_worker_stops_even_when_the_store_swallows_its_cancellation(tmp_path: Path) -> None:
    store = CancelToOutageStore(tmp_path / "store.db")
    await store.open()
    try:
        async with Engine(EngineConfig(allow_private=True)) as engine:
            worker = Worker(store, engine, slots=4)
            running = asyncio.create_task(worker.run())
            await asyncio.sleep(0.3)  # every loop is idle in a claim
            worker.stop()
            await asyncio.wait({running}, timeout=5)  # no wait_for: it would cancel and wait again
            assert running.done() and running.exception() is None
    finally:
        await store.close()
