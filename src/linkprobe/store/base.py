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

import orjson

from linkprobe.engine import ErrorKind, ProbeResult, StoreError, failed


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
    owner: str | None = None  # the API key id that created the task (None: no authentication)


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
    owner: str | None = None


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


@dataclass(slots=True, frozen=True)
class DeliveryPolicy:
    """When a claimed chunk counts as orphaned, and how often it may be delivered before it is
    dead-lettered (its URLs then get an `internal` error result, so the task still ends)."""

    reclaim_idle_s: float = 30.0
    max_deliveries: int = 5


def lane_of(task: NewTask, task_id: str) -> str:
    """The round-robin key: the task's owner once tasks have owners, the task itself until then."""
    owner = getattr(task, "owner", None)
    return f"owner:{owner}" if owner else f"task:{task_id}"


def count_key(error_kind: str | None, status_code: int | None) -> str:
    """The one class of a result, for counts and filters: `e:<kind>` when it has an error (even with
    a status, as a redirect loop has), else `s:<status>`. `?status_code=` and `by_status` agree."""
    return f"e:{error_kind}" if error_kind else f"s:{status_code}"


def cancelled_results(missing: Iterable[tuple[int, str]]) -> list[ProbeResult]:
    """The results of the (index, URL) pairs a cancel leaves without one."""
    return [failed(url, idx, ErrorKind.CANCELLED, "the task was cancelled") for idx, url in missing]


def dead_letter_results(chunk: Chunk) -> list[ProbeResult]:
    message = f"chunk dead-lettered after {chunk.deliveries} deliveries (its worker kept dying)"
    return [failed(url, chunk.start + i, ErrorKind.INTERNAL, message) for i, url in enumerate(chunk.urls)]


def page_of(rows: list[tuple[int, str]], limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """A results page from up to limit + 1 (index, JSON) rows: the items and the next cursor."""
    return [orjson.loads(row) for _, row in rows[:limit]], (rows[limit - 1][0] if len(rows) > limit else None)


class StoreLocked(StoreError):
    """Another process serves this store's file (SQLite): one serving process per database."""


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""


class Store(abc.ABC):
    """Async store. Methods raise linkprobe.engine.StoreUnavailable when the backend is down."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create the schema, requeue work orphaned by a crash."""

    def lock(self) -> None:  # noqa: B027 (optional hook: only a file store has one owner)
        """Claim the store for this process, or raise StoreLocked. open() calls it too."""

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
        self, status: TaskStatus | None, cursor: str | None, limit: int, owner: str | None = None
    ) -> tuple[list[TaskRecord], str | None]:
        """Newest first (only `owner`'s tasks when given); the page and the next page's cursor."""

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
    async def store_results(self, chunk: Chunk, results: list[ProbeResult]) -> None:
        """Store some of a claimed chunk's results and move the task's progress, atomically.

        Idempotent per URL index: a result for an index that already has one is ignored, so a
        redelivered chunk never counts a URL twice. Results for a cancelled or deleted task are
        ignored. Also renews the chunk's lease.
        """

    @abc.abstractmethod
    async def complete_chunk(self, chunk: Chunk, results: list[ProbeResult]) -> None:
        """Store a chunk's last results (as store_results) and acknowledge it, atomically."""

    @abc.abstractmethod
    async def drop_chunk(self, chunk: Chunk) -> str | None:
        """Give up a claimed chunk if, at this moment, its task is cancelled or deleted.

        Decided by the store atomically: returns the reason ("cancelled" or "deleted") when the
        chunk was acknowledged unprocessed, None when the task still wants it (keep working).
        """

    @abc.abstractmethod
    async def heartbeat(self, chunks: Iterable[Chunk]) -> None:
        """Tell the store these claimed chunks are still being worked on (keeps them from reclaim)."""

    async def problem(self) -> str | None:
        """Why the store cannot serve right now (for /readyz), or None when it is ready."""
        return None if await self.ping() else "store unreachable"

    @abc.abstractmethod
    async def live_tasks(self, task_ids: Iterable[str]) -> set[str]:
        """Which of these tasks still want work (exist and are not cancelled)."""

    @abc.abstractmethod
    async def stats(self) -> dict[str, Any]:
        """{"tasks": {status: count}, "queued_chunks": n} for metrics."""
