"""Links over time: run a task again, and what changed between two runs (/api/v1).

A re-run is a new task with the first one's inputs (its URL list or documents' links, read back
from the store, or its crawl spec) and options, admitted like any submission. Changes compare two
runs URL by URL with linkprobe.changes: both runs' results are read in URL order (Store.seen_by_url)
and merged on a thread, a batch at a time, so memory does not grow with the tasks.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import io
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import IO, Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, HTTPException, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from linkprobe.api.compare import changed
from linkprobe.api.deps import Caller, FoundTask, QuotasDep, SettingsDep, StoreDep
from linkprobe.api.intake import Submission
from linkprobe.api.models import Problem, Task
from linkprobe.api.security import Principal
from linkprobe.api.tasks import ERRORS, IdempotencyKey, accept
from linkprobe.changes import Change, Compared
from linkprobe.engine import ProbeOptions
from linkprobe.engine.options import SECRET_OPTIONS
from linkprobe.engine.outcome import ErrorKind, Outcome
from linkprobe.store import TERMINAL, CrawlSpec, NewTask, ResultFilter, Store, TaskRecord

MAX_CURSOR = 8192  # a cursor is the last URL of a page

router = APIRouter(prefix="/api/v1", responses=ERRORS)


class Rerun(BaseModel):
    """What a re-run cannot take from the task it re-runs."""

    model_config = ConfigDict(extra="forbid")

    headers: dict[str, str] | None = Field(
        None,
        description="The values of the task's request headers: they were dropped when it ended, so a "
        "re-run of a task with headers must give each of them again (the same names).",
    )


class SeenView(BaseModel):
    """What one run saw of a URL, as far as changes go (changes.Seen)."""

    outcome: Outcome
    status_code: int | None
    final_url: str | None = Field(description="The URL that gave the final answer, after redirects.")
    error_kind: ErrorKind | None


class ChangeItem(BaseModel):
    url: str
    change: Change
    previous: SeenView | None = Field(description="What the previous run saw; null: not in it (new).")
    current: SeenView | None = Field(description="What this run saw; null: not in it (gone).")


class ChangePage(BaseModel):
    since: str = Field(description="The task compared with.")
    running: bool = Field(
        description="The task has not ended: its URLs not checked yet are left out (none is `gone` "
        "until it has ended)."
    )
    items: list[ChangeItem]
    next_cursor: str | None


def options_again(options: ProbeOptions, given: Rerun | None) -> ProbeOptions:
    """The stored options with their secret values given again: 422 naming the headers missing."""
    again: dict[str, Any] = {}
    for name in SECRET_OPTIONS:
        stored = getattr(options, name)
        if not stored:
            continue
        supplied = (given.model_dump().get(name) if given else None) or {}
        missing = sorted(set(stored) - set(supplied))
        extra = sorted(set(supplied) - set(stored))
        if missing or extra:
            wrong = [
                f"{what}: {', '.join(names)}"
                for what, names in (("missing", missing), ("not the task's", extra))
                if names
            ]
            raise HTTPException(
                422,
                f"the values of the task's {name} were dropped when it ended: give each again in `{name}` "
                f"({'; '.join(wrong)})",
            )
        again[name] = supplied
    return dataclasses.replace(options, **again) if again else options


async def spooled_inputs(store: Store, task_id: str) -> IO[bytes]:
    """The task's input URLs in a temporary file, one a line (read by the store as it creates)."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the Submission)
    async for batch in store.input_urls(task_id):
        await asyncio.to_thread(spool.write, "".join(f"{url}\n" for url in batch).encode())
    spool.seek(0)
    return spool


def _lines(spool: IO[bytes]) -> Iterator[str]:
    spool.seek(0)
    for line in spool:
        yield line.decode().rstrip("\n")


@router.post(
    "/tasks/{task_id}/rerun",
    status_code=202,
    response_model=Task,
    responses={409: {"model": Problem}, 413: {"model": Problem}, 429: {"model": Problem}},
)
async def rerun(
    task: FoundTask,
    response: Response,
    who: Caller,
    store: StoreDep,
    settings: SettingsDep,
    quotas: QuotasDep,
    body: Annotated[Rerun | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> Task:
    """Run a task again: a new task with its inputs (URL list, documents' links or crawl spec) and
    options, answered as a submission (202, Location, Idempotency-Key, owner, quotas). The new
    task's `rerun_of` names this one; its `changes` compare the two."""
    options = options_again(task.options, body)
    new = NewTask(task.name, task.description, options, rerun_of=task.id)
    fingerprint = hashlib.sha256(
        orjson.dumps({"rerun_of": task.id, "body": None if body is None else body.model_dump()})
    ).hexdigest()
    if task.crawl is not None:
        new.crawl = CrawlSpec.from_dict(task.crawl.to_dict())
        submission = Submission(new, [], 1, fingerprint)
    else:
        first, _ = await store.results(task.id, ResultFilter(), None, 1)
        new.sources_of = task.id if first and "sources" in first[0] else None  # documents' links
        spool = await spooled_inputs(store, task.id)
        submission = Submission(new, _lines(spool), task.total, fingerprint, files=[spool])
    return Task.of(await accept(store, settings, quotas, submission, idempotency_key, response, who))


async def _told_so_far(items: AsyncGenerator[Compared, None]) -> AsyncGenerator[Compared, None]:
    """The changes of a run still going: a URL it has not checked yet is not `gone`."""
    try:
        async for item in items:
            if item.change is not Change.GONE:
                yield item
    finally:
        await items.aclose()


def item_of(compared: Compared) -> dict[str, Any]:
    assert compared.change is not None
    return {
        "url": compared.url,
        "change": compared.change.value,
        "previous": None if compared.previous is None else compared.previous.to_dict(),
        "current": None if compared.current is None else compared.current.to_dict(),
    }


SEEN_COLUMNS = ("outcome", "status_code", "final_url", "error_kind")
CSV_COLUMNS = ("url", "change", *(f"{run}_{c}" for run in ("previous", "current") for c in SEEN_COLUMNS))


def csv_row(compared: Compared) -> list[Any]:
    item = item_of(compared)
    sides = [item[run] or dict.fromkeys(SEEN_COLUMNS) for run in ("previous", "current")]
    return [item["url"], item["change"], *(side[c] for side in sides for c in SEEN_COLUMNS)]


async def _ndjson(items: AsyncIterator[Compared]) -> AsyncIterator[bytes]:
    async for item in items:
        yield orjson.dumps(item_of(item)) + b"\n"


async def _csv(items: AsyncIterator[Compared]) -> AsyncIterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    async for item in items:
        writer.writerow(csv_row(item))
        if out.tell() > 1 << 16:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


async def baseline(store: Store, task: TaskRecord, since: str | None, who: Principal) -> str:
    """The previous run's task id: `since`, else the task it re-runs; 404 when the caller cannot
    see it, 422 when there is none."""
    previous = since or task.rerun_of
    if previous is None:
        raise HTTPException(422, f"task {task.id} re-runs no task: give ?since=<task id> to compare with")
    record = await store.get_task(previous)
    if record is None or not who.sees(record):
        raise HTTPException(404, f"task {previous} not found (the previous run to compare with)")
    return previous


@router.get(
    "/tasks/{task_id}/changes",
    response_model=ChangePage,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def task_changes(
    task: FoundTask,
    who: Caller,
    store: StoreDep,
    since: Annotated[str | None, Query(max_length=64, description="The task to compare with.")] = None,
    change: Change | None = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Literal["json", "ndjson", "csv"] = "json",
) -> Any:
    """What changed since the previous run (the task this one re-runs, or `?since=`), URL by URL
    in URL order: broke (was ok, now broken), fixed, changed (status code, final URL or error
    kind), new, gone. Unchanged URLs are left out. `format=ndjson|csv` streams them all."""
    previous = await baseline(store, task, since, who)
    running = task.status not in TERMINAL
    items = changed(store, previous, task.id, change, cursor)
    if running:
        items = _told_so_far(items)
    if format == "ndjson":
        return StreamingResponse(_ndjson(items), media_type="application/x-ndjson")
    if format == "csv":
        return StreamingResponse(_csv(items), media_type="text/csv")
    page: list[Compared] = []
    async for item in items:
        page.append(item)
        if len(page) > limit:
            break
    await items.aclose()
    return ChangePage(
        since=previous,
        running=running,
        items=[ChangeItem.model_validate(item_of(item)) for item in page[:limit]],
        next_cursor=page[limit - 1].url if len(page) > limit else None,
    )
