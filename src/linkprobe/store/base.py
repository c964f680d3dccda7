"""The store interface: tasks, their URLs, results, the chunk work queue and progress.

Every implementation passes tests/store/test_contract.py. The API and the worker only ever see
this interface, so SQLite (single node) and Redis (distributed) are interchangeable.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from linkprobe.engine import ProbeResult


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    READY = "ready"
    ERROR = "error"
    CANCELLED = "cancelled"


TERMINAL = frozenset({TaskStatus.READY, TaskStatus.ERROR, TaskStatus.CANCELLED})


@dataclass(slots=True)
class NewTask:
    name: str | None = None
    description: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TaskRecord:
    id: str
    name: str | None
    description: str | None
    options: dict[str, Any]
    status: TaskStatus
    total: int
    done: int
    ok: int
    broken: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    by_status: dict[str, int] = field(default_factory=dict)
    by_error: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Chunk:
    """A slice of one task's URLs, claimed by one worker. `receipt` identifies the delivery."""

    task_id: str
    number: int
    start: int
    urls: list[str]
    options: dict[str, Any]
    deliveries: int = 1
    receipt: str = ""


@dataclass(slots=True, frozen=True)
class ResultFilter:
    ok: bool | None = None
    error_kind: str | None = None
    status_code: int | None = None
    url_contains: str | None = None  # case-insensitive substring of the input URL


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""


class Store(abc.ABC):
    """Async store. Methods raise linkprobe.engine.StoreUnavailable when the backend is down."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create the schema, requeue work orphaned by a crash."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    @abc.abstractmethod
    async def create_task(
        self, task: NewTask, urls: Iterable[str], chunk_size: int, idempotency: tuple[str, str] | None = None
    ) -> tuple[TaskRecord, bool]:
        """Store a task and its URLs durably, split into chunks of `chunk_size`.

        `urls` may be a lazy iterable (a spooled upload): it is consumed once. `idempotency` is
        (key, body fingerprint). Returns (task, created); a replay returns the original task with
        created False; a known key with another fingerprint raises IdempotencyConflict.
        """

    @abc.abstractmethod
    async def get_task(self, task_id: str) -> TaskRecord | None: ...

    @abc.abstractmethod
    async def list_tasks(
        self, status: TaskStatus | None, cursor: str | None, limit: int
    ) -> tuple[list[TaskRecord], str | None]:
        """Newest first; returns the page and the cursor of the next page (None at the end)."""

    @abc.abstractmethod
    async def delete_task(self, task_id: str) -> bool:
        """Remove the task, its URLs, results and queued chunks. False if unknown."""

    @abc.abstractmethod
    async def cancel_task(self, task_id: str) -> TaskRecord | None:
        """Stop a task but keep it: URLs without a result get a `cancelled` result."""

    @abc.abstractmethod
    async def results(
        self, task_id: str, flt: ResultFilter, after: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Results in input order after index `after`; returns the page and the next cursor."""

    @abc.abstractmethod
    def stream_results(self, task_id: str, flt: ResultFilter) -> AsyncIterator[str]:
        """Every matching result as its JSON text, in input order, a page at a time."""

    @abc.abstractmethod
    async def claim_chunk(self, worker: str) -> Chunk | None:
        """Take the next chunk to process, or None when the queue is empty."""

    @abc.abstractmethod
    async def complete_chunk(self, chunk: Chunk, results: list[ProbeResult]) -> None:
        """Store a chunk's results and progress, and acknowledge it, atomically and idempotently."""

    async def drop_chunk(self, chunk: Chunk) -> None:  # noqa: B027 (optional hook, no-op by default)
        """Give up a claimed chunk whose task was deleted or cancelled (acknowledge it unprocessed)."""

    async def heartbeat(self, chunks: Iterable[Chunk]) -> None:  # noqa: B027 (optional hook)
        """Tell the store these claimed chunks are still being worked on (keeps them from reclaim)."""

    @abc.abstractmethod
    async def live_tasks(self, task_ids: Iterable[str]) -> set[str]:
        """Which of these tasks still want work (exist and are not cancelled)."""

    @abc.abstractmethod
    async def stats(self) -> dict[str, Any]:
        """{"tasks": {status: count}, "queued_chunks": n} for metrics."""
