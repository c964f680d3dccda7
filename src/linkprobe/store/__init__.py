"""Task storage: one interface (base.Store), an embedded SQLite and a Redis implementation."""

from linkprobe.store.base import (
    TERMINAL,
    Chunk,
    IdempotencyConflict,
    NewTask,
    ResultFilter,
    Store,
    TaskRecord,
    TaskStatus,
)

__all__ = [
    "TERMINAL",
    "Chunk",
    "IdempotencyConflict",
    "NewTask",
    "ResultFilter",
    "Store",
    "TaskRecord",
    "TaskStatus",
]
