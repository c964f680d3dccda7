"""The /api/v1 routes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from linkprobe.api.caps import apply_caps, cap_crawl, crawl_bounds, option_bounds
from linkprobe.api.compare import counter
from linkprobe.api.deps import Caller, FoundTask, QuotasDep, SettingsDep, StoreDep, found_task
from linkprobe.api.documents import INPUT_FORMATS
from linkprobe.api.intake import Submission, check_count, from_short_json, read_submission
from linkprobe.api.models import Egress, Problem, Result, ResultPage, Service, Submitted, Task, TaskPage
from linkprobe.api.quotas import Quotas
from linkprobe.api.security import Principal
from linkprobe.engine.outcome import ErrorKind, Outcome, classify
from linkprobe.outcomes import OUTCOMES, PERMANENT_STATUSES
from linkprobe.report import csv_text
from linkprobe.settings import EGRESS_HINT, Settings
from linkprobe.store import (
    TERMINAL,
    IdempotencyConflict,
    QuotaExceeded,
    ResultFilter,
    Store,
    TaskRecord,
    TaskStatus,
)

EVENT_INTERVAL_S = 0.5
RedirectFilter = Literal["any", "permanent", "temporary"]
REDIRECT_DOC = (
    "Results that redirected: any, or by the link's own answer (the first hop): permanent (301, 308: "
    "update the link to its final_url) or temporary."
)
RETIRED_KINDS = (ErrorKind.BODY_TOO_LARGE,)  # kept for stored results, no longer produced (see `body`)
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "API key missing, unknown or revoked"},
    404: {"model": Problem, "description": "No such task"},
    422: {"model": Problem, "description": "Invalid request"},
    503: {"model": Problem, "description": "Store unavailable"},
}
DOCUMENT_BODIES = {"text/html": "HTML", "text/markdown": "Markdown", "application/xml": "sitemap"}
CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/TaskCreate"},
                "example": {"urls": ["https://example.com/", "https://example.org/a"], "name": "docs links"},
            },
            "text/plain": {"schema": {"type": "string", "description": "One URL per line"}},
            **{
                media: {
                    "schema": {
                        "type": "string",
                        "description": f"A {kind} document: its links are checked. Query: name, "
                        "description, options, document (its name in `sources`), input_format, "
                        "base_url, include, exclude (as the multipart fields).",
                    }
                }
                for media, kind in DOCUMENT_BODIES.items()
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "URL lists (one URL a line) or documents: HTML, Markdown, "
                            "sitemaps (.xml, .xml.gz), text; the kind comes from the file name's "
                            "extension or the part's content type. Each unique URL of the documents "
                            "is probed once and its results list where it was found (`sources`).",
                        },
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                        "options": {"type": "string", "description": "ProbeOptions as JSON"},
                        "input_format": {
                            "type": "string",
                            "enum": list(INPUT_FORMATS),
                            "description": "Read every file as this kind (`urls`: a URL list; `text`: "
                            "URLs found anywhere in it).",
                        },
                        "base_url": {
                            "type": "string",
                            "description": "Where the documents are published (a folder): relative "
                            "links resolve against it and the file's name. Without it they stay as "
                            "written and come out invalid_url.",
                        },
                        "include": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Regular expressions: only links of documents matching one "
                            "are checked (repeatable; an include wins over an exclude).",
                        },
                        "exclude": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Regular expressions: links of documents matching one are "
                            "skipped (repeatable).",
                        },
                    },
                }
            },
        },
    }
}


router = APIRouter(prefix="/api/v1", responses=ERRORS)
IdempotencyKey = Annotated[str | None, Header(max_length=200)]


@router.post(
    "/tasks",
    status_code=202,
    response_model=Task,
    openapi_extra=CREATE_BODY,
    responses={409: {"model": Problem}, 413: {"model": Problem}, 415: {"model": Problem}},
)
async def create_task(
    request: Request, response: Response, who: Caller, store: StoreDep, settings: SettingsDep,
    quotas: QuotasDep, idempotency_key: IdempotencyKey = None,
) -> Task:  # fmt: skip
    """Submit a task: JSON {"urls": [...]} or {"crawl": {"start": ...}} (a site to crawl),
    text/plain (one URL a line) or multipart files (URL lists or documents whose links are
    checked, each unique URL once, with its `sources`)."""
    async with quotas.upload():
        submission = await read_submission(request, settings)
    return Task.of(await accept(store, settings, quotas, submission, idempotency_key, response, who))


@router.post(
    "/submit",
    status_code=202,
    response_model=Submitted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Submit"}}},
        }
    },
    responses={409: {"model": Problem}, 413: {"model": Problem}},
)
async def submit(
    request: Request, response: Response, who: Caller, store: StoreDep, settings: SettingsDep,
    quotas: QuotasDep, idempotency_key: IdempotencyKey = None,
) -> Submitted:  # fmt: skip
    """The short form: {"urls": [...]} answers {"task_id": ...}."""
    async with quotas.upload():
        submission = await from_short_json(request, settings)
    record = await accept(store, settings, quotas, submission, idempotency_key, response, who)
    return Submitted(task_id=record.id)


@router.get("/tasks", response_model=TaskPage)
async def list_tasks(
    who: Caller,
    store: StoreDep,
    status: TaskStatus | None = None,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TaskPage:
    """Tasks, newest first; pass `next_cursor` back as `cursor` for the next page."""
    records, next_cursor = await store.list_tasks(status, cursor, limit, who.scope)
    return TaskPage(items=[Task.of(r) for r in records], next_cursor=next_cursor)


@router.get("/service", response_model=Service)
async def service(who: Caller, settings: SettingsDep) -> Service:
    """What this service allows (option bounds from its caps, crawl limits) and how it judges
    (outcomes, error kinds, permanent redirects, the egress policy and how to change it)."""
    return Service(
        options=option_bounds(settings), crawl=crawl_bounds(settings), outcomes=list(OUTCOMES),
        error_kinds=[kind.value for kind in ErrorKind if kind not in RETIRED_KINDS],
        permanent_redirects=list(PERMANENT_STATUSES),
        egress=Egress(allow_private=settings.allow_private, allow_cidrs=settings.allow_cidrs,
                      policy=settings.egress_policy(), to_allow=EGRESS_HINT),
    )  # fmt: skip


@router.get("/tasks/{task_id}", response_model=Task)
async def get_task(task: FoundTask, store: StoreDep, request: Request) -> Task:
    counter(request).note(store, task)  # a re-run that has ended: its changes counted once
    return Task.of(task)


@router.delete("/tasks/{task_id}", status_code=204, response_class=Response)
async def delete_task(task: FoundTask, store: StoreDep) -> Response:
    """Stop in-flight work (within a second) and delete the task and its results."""
    if not await store.delete_task(task.id):
        raise HTTPException(404, f"task {task.id} not found")
    return Response(status_code=204)


@router.post("/tasks/{task_id}/cancel", response_model=Task)
async def cancel_task(task: FoundTask, store: StoreDep) -> Task:
    """Stop a task but keep it: URLs not yet probed get a `cancelled` result."""
    record = await store.cancel_task(task.id)
    if record is None:
        raise HTTPException(404, f"task {task.id} not found")
    return Task.of(record)


@router.get(
    "/tasks/{task_id}/results",
    response_model=ResultPage,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def results(
    task_id: str,
    who: Caller,
    store: StoreDep,
    outcome: Outcome | None = None,
    redirect: Annotated[RedirectFilter | None, Query(description=REDIRECT_DOC)] = None,
    error_kind: ErrorKind | None = None,
    status_code: Annotated[int | None, Query(ge=100, le=599)] = None,
    q: Annotated[str | None, Query(max_length=500, description="Substring of the URL (any case)")] = None,
    cursor: Annotated[int | None, Query(ge=-1, le=2**53)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Literal["json", "ndjson", "csv"] = "json",
) -> Any:
    """Results in input order. `format=ndjson|csv` streams the whole (filtered) set. Each
    outcome selects only itself: `broken` is neither ok, `unsupported` nor `cancelled`."""
    # Looked up here, not as a FoundTask dependency: dependencies run before the query is
    # validated, and a bad query is a 422 whether or not the task exists.
    task = await found_task(task_id, store, who)
    flt = _filter(outcome, error_kind, status_code, q, redirect)
    if format == "ndjson":
        return StreamingResponse(
            _ndjson(store.stream_results(task.id, flt)), media_type="application/x-ndjson"
        )
    if format == "csv":
        rows = store.stream_results(task.id, flt)
        csv_rows = _csv(rows, task.crawl is not None, bool(task.options.max_age))
        return StreamingResponse(csv_rows, media_type="text/csv")
    items, next_cursor = await store.results(task.id, flt, cursor, limit)
    return ResultPage(
        items=[Result.model_validate(i) for i in items],
        next_cursor=None if next_cursor is None else str(next_cursor),
    )


@router.get("/tasks/{task_id}/events", responses={200: {"content": {"text/event-stream": {}}}})
async def events(
    task: FoundTask, request: Request, store: StoreDep, settings: SettingsDep
) -> StreamingResponse:
    """Server-sent events: `progress` (at most twice a second) and a final `done` (or `deleted`),
    after which the stream ends; a `: keepalive` comment at least every 15 s of silence."""
    return StreamingResponse(
        _events(store, task.id, request, settings.sse_keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _filter(
    outcome: Outcome | None, error_kind: ErrorKind | None, status_code: int | None, q: str | None,
    redirect: str | None = None,
) -> ResultFilter:  # fmt: skip
    """The store's filter: the results of one outcome word (ProbeResult.outcome), as the task's
    progress counts them. An error kind of another outcome (the one classifier says) is a 422."""
    kind = None if error_kind is None else error_kind.value
    if outcome is not None and error_kind is not None and classify(False, error_kind) != outcome:
        raise HTTPException(422, f"outcome={outcome.value} and error_kind={kind} select nothing")
    return ResultFilter(None if outcome is None else outcome.value, kind, status_code, q, redirect=redirect)


async def accept(
    store: Store, settings: Settings, quotas: Quotas, submission: Submission, key: str | None,
    response: Response, who: Principal,
) -> TaskRecord:  # fmt: skip
    quota = quotas.quota(who, submission.count)
    try:
        check_count(submission.count, settings)
        submission.task.options = apply_caps(submission.task.options, settings)
        if submission.task.crawl is not None:
            cap_crawl(submission.task.crawl, settings)
            submission.task.crawl.max_urls = settings.max_urls_per_task
            # The store charges discoveries to the owner's day and stops where its quota does.
            submission.task.crawl.urls_per_day = settings.quota_urls_per_day if quota else None
        submission.task.owner = who.owner
        idempotency = (_per_owner(key, who), submission.fingerprint) if key else None
        urls, task = submission.urls, submission.task
        record, _ = await store.create_task(task, urls, settings.chunk_size, idempotency, quota)
    except IdempotencyConflict:
        raise HTTPException(409, "Idempotency-Key was already used with a different body") from None
    except QuotaExceeded as exc:
        assert quota is not None  # only a quota refuses
        raise quotas.refused(quota, exc) from None
    finally:
        submission.close()
    response.headers["Location"] = f"/api/v1/tasks/{record.id}"
    response.headers["Retry-After"] = "1"
    return record


def _per_owner(key: str, who: Principal) -> str:
    """Idempotency keys are per owner: one owner's key never answers another owner's task."""
    return f"{who.owner}/{key}" if who.owner else key


async def _ndjson(rows: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for row in rows:
        yield (row + "\n").encode()


async def _csv(rows: AsyncIterator[str], crawl: bool, cached: bool) -> AsyncIterator[bytes]:
    """CSV, with a `sources` column for a task whose results have sources: a crawl, or a document
    upload (every URL of one has them, so its first result tells); a `cached_from` column for a
    task whose results may be reused (options.max_age)."""
    first = await anext(rows, None)
    batch: list[dict[str, Any]] = [] if first is None else [json.loads(first)]
    sourced = crawl or any("sources" in row for row in batch)
    yield csv_text([], sources=sourced, cached=cached).encode()
    async for row in rows:
        batch.append(json.loads(row))
        if len(batch) >= 1000:
            yield csv_text(batch, header=False, sources=sourced, cached=cached).encode()
            batch = []
    if batch:
        yield csv_text(batch, header=False, sources=sourced, cached=cached).encode()


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


async def _events(store: Store, task_id: str, request: Request, keepalive_s: float) -> AsyncIterator[bytes]:
    """Progress when it changes, a comment after `keepalive_s` of silence (so proxies and
    clients can tell a quiet task from a dead connection), and the end after the final event."""
    last: Any = None
    clock = asyncio.get_running_loop().time
    quiet_since = clock()
    while not await request.is_disconnected():
        record = await store.get_task(task_id)
        if record is None:
            yield _sse("deleted", {"id": task_id})
            return
        task = Task.of(record).model_dump(mode="json")
        if task != last:
            yield _sse("progress", task)
            last, quiet_since = task, clock()
        if record.status in TERMINAL:
            yield _sse("done", task)
            return
        if clock() - quiet_since >= keepalive_s:
            yield b": keepalive\n\n"
            quiet_since = clock()
        await asyncio.sleep(min(EVENT_INTERVAL_S, keepalive_s))
