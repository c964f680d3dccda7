"""Request and response models of the public API (/api/v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from linkprobe.api.options import ProbeOptionsModel
from linkprobe.api.security import redact
from linkprobe.engine.outcome import RESULT_FIELDS, ErrorKind
from linkprobe.store import TaskRecord, TaskStatus


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(
        ..., min_length=1, description="URLs to probe; invalid ones become invalid_url results."
    )
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    options: ProbeOptionsModel = Field(default_factory=ProbeOptionsModel)


class Submit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(..., min_length=1)


class Submitted(BaseModel):
    task_id: str


class Progress(BaseModel):
    total: int
    done: int
    ok: int
    broken: int = Field(description="Done and neither ok nor unsupported.")
    unsupported: int = Field(description="Redirected to a scheme that is not http(s): neither ok nor broken.")


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
    options: dict[str, Any] = Field(description="The task's probe options; header values are redacted.")

    @classmethod
    def of(cls, record: TaskRecord) -> Task:
        return cls(
            id=record.id, name=record.name, description=record.description, status=record.status,
            progress=progress(record),
            by_status=record.by_status, by_error=record.by_error, created_at=record.created_at,
            started_at=record.started_at, finished_at=record.finished_at, options=redact(record.options),
        )  # fmt: skip


def progress(record: TaskRecord) -> Progress:
    """The stores count ok and not ok; unsupported results are taken out of the latter here."""
    unsupported = record.by_error.get(ErrorKind.UNSUPPORTED.value, 0)
    return Progress(
        total=record.total, done=record.done, ok=record.ok, broken=record.broken - unsupported,
        unsupported=unsupported,
    )  # fmt: skip


class TaskPage(BaseModel):
    items: list[Task]
    next_cursor: str | None


class Place(BaseModel):
    document: str = Field(description="The uploaded file's name, or the URL of the crawled page.")
    line: int = Field(description="1-based line of the element, Markdown block or sitemap <loc>.")


class Sources(BaseModel):
    """Where a URL of a document upload or a crawl was found (extract.Sources)."""

    total: int = Field(description="How many places hold the URL, all counted.")
    places: list[Place] = Field(description="The first places, at most 10.")


def _result_model() -> type[BaseModel]:
    """The API's result, derived from the engine's one declaration (engine/outcome.py): every
    field the NDJSON and CSV forms carry, with its description, and the error kinds as an enum;
    then `sources`, only on results that have them (document uploads, crawls)."""
    fields: dict[str, Any] = {
        f.name: (f.type, Field(... if f.required else f.default, description=f.doc)) for f in RESULT_FIELDS
    }
    fields["sources"] = (
        Sources | None,
        Field(None, exclude_if=lambda value: value is None, description=Sources.__doc__),
    )
    return create_model("Result", __doc__="One probed URL.", **fields)


Result = _result_model()
ResultPage = create_model(
    "ResultPage",
    items=(list[Result], ...),  # type: ignore[valid-type]  # built above from RESULT_FIELDS
    next_cursor=(str | None, ...),
)


class Problem(BaseModel):
    detail: Any
