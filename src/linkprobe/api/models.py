"""Request and response models of the public API (/api/v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from linkprobe.engine import ProbeOptions
from linkprobe.store import TaskRecord, TaskStatus


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(
        ..., min_length=1, description="URLs to probe; invalid ones become invalid_url results."
    )
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    options: ProbeOptions = Field(default_factory=ProbeOptions)


class Submit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(..., min_length=1)


class Submitted(BaseModel):
    task_id: str


class Progress(BaseModel):
    total: int
    done: int
    ok: int
    broken: int


class Task(BaseModel):
    id: str
    name: str | None
    description: str | None
    status: TaskStatus
    progress: Progress
    by_status: dict[str, int] = Field(description="Results counted by HTTP status code (URLs with no error).")
    by_error: dict[str, int] = Field(description="Results counted by error kind.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    options: dict[str, Any]

    @classmethod
    def of(cls, record: TaskRecord) -> Task:
        return cls(
            id=record.id, name=record.name, description=record.description, status=record.status,
            progress=Progress(total=record.total, done=record.done, ok=record.ok, broken=record.broken),
            by_status=record.by_status, by_error=record.by_error, created_at=record.created_at,
            started_at=record.started_at, finished_at=record.finished_at, options=record.options,
        )  # fmt: skip


class TaskPage(BaseModel):
    items: list[Task]
    next_cursor: str | None


class ErrorInfo(BaseModel):
    kind: str
    message: str


class Hop(BaseModel):
    status_code: int
    url: str


class Result(BaseModel):
    url: str
    index: int
    ok: bool
    final_url: str | None
    status_code: int | None
    error: ErrorInfo | None
    redirects: list[Hop]
    elapsed_ms: float
    dns_ms: float | None
    connect_ms: float | None
    tls_ms: float | None
    ttfb_ms: float | None
    content_type: str | None
    content_length: int | None
    checked_at: datetime
    attempts: int


class ResultPage(BaseModel):
    items: list[Result]
    next_cursor: str | None


class Problem(BaseModel):
    detail: Any
