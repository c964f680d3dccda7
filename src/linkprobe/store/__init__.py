"""Task storage: one interface (base.Store), an embedded SQLite and a Redis implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from linkprobe.frontier import ChunkKind, CrawlSpec, Found
from linkprobe.store.base import (
    TERMINAL,
    Chunk,
    DeliveryPolicy,
    IdempotencyConflict,
    NewTask,
    Quota,
    QuotaExceeded,
    ResultFilter,
    Store,
    TaskRecord,
    TaskStatus,
)
from linkprobe.store.errors import StoreError, StoreLocked, StoreUnavailable

if TYPE_CHECKING:  # `linkprobe crawl` imports store.base: not pydantic with it
    from linkprobe.settings import Settings


def open_store(
    settings: Settings, follower: bool = False, share: int | None = None, shares: int = 1
) -> Store:
    """The store the settings select: Redis when a Redis URL is set, else embedded SQLite (as a
    follower in the worker processes of `linkprobe serve`: the serving process owns the file).
    SQLite with serve's worker processes: `shares` (the serving process's: its worker processes)
    cuts each chunk of a new task by host, `share` (a worker process's) is the one it prefers."""
    if settings.redis_url:
        from linkprobe.store.redis import RedisStore

        return RedisStore(
            settings.redis_url, settings.reclaim_idle_s, settings.max_deliveries, settings.retention_s
        )
    from linkprobe.store.sqlite import SQLiteStore

    policy = DeliveryPolicy(settings.reclaim_idle_s, settings.max_deliveries)
    return SQLiteStore(settings.db, policy, settings.retention_s, follower, share=share, shares=shares)


__all__ = [
    "TERMINAL",
    "Chunk",
    "ChunkKind",
    "CrawlSpec",
    "DeliveryPolicy",
    "Found",
    "IdempotencyConflict",
    "NewTask",
    "Quota",
    "QuotaExceeded",
    "ResultFilter",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "TaskRecord",
    "TaskStatus",
    "open_store",
]
