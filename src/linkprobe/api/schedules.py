"""Schedules (/api/v1/schedules): a task body run on a period as its owner, the last `keep` runs kept.

Every API replica runs a Scheduler. Each looks at the schedules at least once a second, and a run
starts only through the store's lease (Store.claim_run: schedules.claim as one compare-and-set),
so exactly one replica starts each run, whatever their number; the run's task is created under
the idempotency key schedules.run_id as well. After downtime, schedules.tick starts only the latest
due time missed: one run, not one per missed period. Each run re-runs the one before it
(`rerun_of`), so its changes are counted against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from linkprobe import schedules, webhooks
from linkprobe.api.compare import ChangeCounter, count, counter
from linkprobe.api.deps import Caller, FoundTask, SettingsDep, StoreDep
from linkprobe.api.intake import Submission, check_count
from linkprobe.api.models import ChangeCounts, Problem, Progress, TaskCreate, progress
from linkprobe.api.quotas import Quotas
from linkprobe.api.security import ADMIN, Principal
from linkprobe.api.tasks import ERRORS, accept
from linkprobe.engine.egress import EgressPolicy
from linkprobe.schedules import Keep, SchedulePeriod
from linkprobe.settings import Settings
from linkprobe.store import TERMINAL, CrawlSpec, NewTask, Store, TaskRecord, TaskStatus
from linkprobe.store.base import with_secrets
from linkprobe.store.scheduled import NewSchedule, ScheduleRecord
from linkprobe.webhooks import (
    Backoff,
    Notifier,
    Summary,
    WebhookSpec,
    new_secret,
    refusal,
    resolved_refusal,
    task_links,
)

log = logging.getLogger("linkprobe.schedules")
LOOK_EVERY_S = 1.0  # the longest a replica waits between looks at the schedules
WEBHOOK_BACKOFF = Backoff()  # webhooks' retries: growing waits within an hour

router = APIRouter(prefix="/api/v1", responses=ERRORS)


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: TaskCreate = Field(description="The task each run submits (as POST /api/v1/tasks takes it).")
    period: SchedulePeriod
    keep: Keep = 10
    name: str | None = Field(None, max_length=200)
    webhook: WebhookSpec | None = Field(
        None, description="Notified when a run ends (or only when it changed)."
    )


class Run(BaseModel):
    task_id: str
    due: datetime = Field(description="The due time this run is for.")
    status: TaskStatus | None = Field(description="Null: the run's task is gone (deleted or expired).")
    progress: Progress | None
    changes: ChangeCounts | None = Field(description="Against the run before it, once counted.")


class Schedule(BaseModel):
    id: str
    name: str | None
    period: SchedulePeriod
    keep: int
    paused: bool
    created_at: datetime
    last_run: datetime | None = Field(description="The due time of the last run started.")
    next_run: datetime | None = Field(description="When the next run is due; null while paused.")
    task: dict[str, Any] = Field(description="The task body of each run; header values are redacted.")
    webhook: WebhookSpec | None
    runs: list[Run] = Field(description="The runs kept, oldest first.")


class ScheduleCreated(Schedule):
    webhook_secret: str | None = Field(
        description="The webhook's signing secret (Standard Webhooks, whsec_...): shown this once."
    )


class Attempt(BaseModel):
    number: int
    at: datetime
    status: int | None = Field(description="The receiver's HTTP status; null when none came.")
    error: dict[str, str] | None = Field(description="Why no answer came: {kind, message} (error kinds).")
    elapsed_ms: float


class Delivery(BaseModel):
    id: str = Field(description="The webhook-id, the same on every attempt.")
    task_id: str = Field(description="The run it tells of.")
    url: str
    delivered: bool
    attempts: list[Attempt]


class DeliveryPage(BaseModel):
    items: list[Delivery]


class SchedulePage(BaseModel):
    items: list[Schedule]


async def view(
    store: Store, record: ScheduleRecord, counter: ChangeCounter | None = None, now: datetime | None = None
) -> Schedule:
    period = SchedulePeriod.model_validate(record.period)
    upcoming = None
    if not record.paused:
        upcoming = schedules.next_run(period.rule, record.created_at, now or datetime.now(UTC))
    runs = []
    for due, task_id in record.runs:
        task = await store.get_task(task_id)
        if task is not None and counter is not None:
            counter.note(store, task)  # a run that has ended: its changes counted once
        counted = None if task is None or task.changes is None else ChangeCounts.model_validate(task.changes)
        runs.append(Run(
            task_id=task_id, due=due, status=None if task is None else task.status,
            progress=None if task is None else progress(task), changes=counted,
        ))  # fmt: skip
    return Schedule(
        id=record.id, name=record.name, period=period, keep=record.keep, paused=record.paused,
        created_at=record.created_at, last_run=record.last_claimed, next_run=upcoming, task=record.body,
        runs=runs, webhook=None if record.webhook is None else WebhookSpec.model_validate(record.webhook),
    )  # fmt: skip


async def found_schedule(schedule_id: str, store: StoreDep, who: Caller) -> ScheduleRecord:
    """The schedule if the caller may see it: another owner's is as unknown as a missing one."""
    record = await store.get_schedule(schedule_id)
    if record is None or not (who.admin or who.owner is None or record.owner == who.owner):
        raise HTTPException(404, f"schedule {schedule_id} not found")
    return record


FoundSchedule = Annotated[ScheduleRecord, Depends(found_schedule)]


@router.post(
    "/schedules", status_code=201, response_model=ScheduleCreated, responses={413: {"model": Problem}}
)
async def create_schedule(
    body: ScheduleCreate, response: Response, who: Caller, store: StoreDep, settings: SettingsDep
) -> ScheduleCreated:
    """Run a task body on a period (`every` an interval, or `cron` in UTC) as the caller, keeping
    the newest `keep` runs. Header values are kept (redacted in every view) until it is deleted.
    A `webhook` is checked against the egress policy now; its secret is answered this once."""
    if body.task.urls is not None:
        check_count(len(body.task.urls), settings)
    made = NewSchedule(
        body.task.model_dump(mode="json", exclude_none=True), body.period.model_dump(exclude_none=True),
        body.keep, who.owner, body.name,
    )  # fmt: skip
    made.body["options"] = body.task.options.model_dump(mode="json", exclude_defaults=True)
    if body.webhook is not None:
        await checked(body.webhook, settings)
        made.webhook, made.webhook_secret = body.webhook.model_dump(mode="json"), new_secret()
    record = await store.create_schedule(made)
    response.headers["Location"] = f"/api/v1/schedules/{record.id}"
    shown = await view(store, record)
    return ScheduleCreated(**shown.model_dump(), webhook_secret=made.webhook_secret)


@router.get("/schedules/{schedule_id}/webhook/deliveries", response_model=DeliveryPage)
async def deliveries(schedule: FoundSchedule, store: StoreDep) -> DeliveryPage:
    """The schedule's webhook deliveries, oldest first, each with every attempt so far."""
    return DeliveryPage(items=[Delivery.model_validate(d) for d in await store.deliveries(schedule.id)])


class WebhookCreated(BaseModel):
    webhook: WebhookSpec
    secret: str = Field(description="The signing secret (Standard Webhooks, whsec_...): shown this once.")


async def checked(spec: WebhookSpec, settings: Settings) -> None:
    """422 for a URL the egress policy refuses now: on its face, or by the addresses its name
    resolves to (each delivery's dial is checked again: a name may resolve otherwise later)."""
    policy = policy_of(settings)
    if (refused := refusal(spec.url, policy) or await resolved_refusal(spec.url, policy)) is not None:
        raise HTTPException(422, f"webhook.url is refused: {refused.message}")


@router.post("/tasks/{task_id}/webhook", status_code=201, response_model=WebhookCreated)
async def task_webhook(
    task: FoundTask, spec: WebhookSpec, store: StoreDep, settings: SettingsDep
) -> WebhookCreated:
    """Tell a URL when this task ends (`on: changes`: only if it changed against the task it
    re-runs), signed with the secret answered here once. Checked against the egress policy."""
    await checked(spec, settings)
    secret = new_secret()
    if not await store.set_task_webhook(task.id, spec.model_dump(mode="json"), secret):
        raise HTTPException(404, f"task {task.id} not found")
    return WebhookCreated(webhook=spec, secret=secret)


@router.get("/tasks/{task_id}/webhook/deliveries", response_model=DeliveryPage)
async def task_deliveries(task: FoundTask, store: StoreDep) -> DeliveryPage:
    """The task's webhook deliveries, each with every attempt so far."""
    return DeliveryPage(items=[Delivery.model_validate(d) for d in await store.deliveries(task.id)])


def policy_of(settings: Settings) -> EgressPolicy:
    """The probes' egress policy: a webhook reaches no address a probe could not."""
    return EgressPolicy(settings.allow_private, settings.allow_cidrs)


@router.get("/schedules", response_model=SchedulePage)
async def list_schedules(who: Caller, store: StoreDep, request: Request) -> SchedulePage:
    """The caller's schedules, oldest first."""
    found = await store.list_schedules(who.scope)
    return SchedulePage(items=[await view(store, s, counter(request)) for s in found])


@router.get("/schedules/{schedule_id}", response_model=Schedule)
async def get_schedule(schedule: FoundSchedule, store: StoreDep, request: Request) -> Schedule:
    return await view(store, schedule, counter(request))


@router.post("/schedules/{schedule_id}/pause", response_model=Schedule)
async def pause(schedule: FoundSchedule, store: StoreDep) -> Schedule:
    """No run starts while paused (a run due meanwhile starts once when it is resumed)."""
    return await view(store, await _paused(store, schedule.id, True))


@router.post("/schedules/{schedule_id}/resume", response_model=Schedule)
async def resume(schedule: FoundSchedule, store: StoreDep) -> Schedule:
    return await view(store, await _paused(store, schedule.id, False))


async def _paused(store: Store, schedule_id: str, paused: bool) -> ScheduleRecord:
    record = await store.pause_schedule(schedule_id, paused)
    if record is None:
        raise HTTPException(404, f"schedule {schedule_id} not found")
    return record


@router.delete("/schedules/{schedule_id}", status_code=204, response_class=Response)
async def delete_schedule(schedule: FoundSchedule, store: StoreDep) -> Response:
    """Delete the schedule and its header values; its runs stay as tasks."""
    if not await store.delete_schedule(schedule.id):
        raise HTTPException(404, f"schedule {schedule.id} not found")
    return Response(status_code=204)


class Scheduler:
    """Starts the runs that are due, on every replica; the store's lease lets one start each.
    Tells a schedule's webhook of each run that ended (the store's notice lease: once)."""

    def __init__(self, store: Store, settings: Settings, quotas: Quotas, notifier: Notifier) -> None:
        self.store, self.settings, self.quotas, self.notifier = store, settings, quotas, notifier
        self._working: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Cancel the notices still being prepared or recorded."""
        for work in list(self._working):
            work.cancel()
        await asyncio.gather(*self._working, return_exceptions=True)

    async def run(self) -> None:
        while True:
            try:
                wait = await self.look(datetime.now(UTC))
            except Exception:  # a store down, a bad record: look again later, never stop
                log.exception("schedules: a look failed")
                wait = LOOK_EVERY_S
            await asyncio.sleep(wait)

    async def look(self, now: datetime) -> float:
        """Start what is due now; the seconds until the next look."""
        wait = LOOK_EVERY_S
        for record in await self.store.list_schedules(None):
            if record.paused:
                continue
            try:  # one schedule that fails holds up no other
                next_at = await self.due(record, now)
            except Exception:
                log.exception("schedule %s: its look failed", record.id)
                continue
            wait = min(wait, max(0.05, (next_at - datetime.now(UTC)).total_seconds()))
        await self.notify_tasks()
        return wait

    async def due(self, record: ScheduleRecord, now: datetime) -> datetime:
        """Start the schedule's run that is due now if this replica wins it, tell its webhook of
        the runs that ended; when to look again."""
        period = SchedulePeriod.model_validate(record.period).rule
        tick = schedules.tick(period, record.created_at, record.last_claimed, now)
        if tick.due is not None and await self.store.claim_run(record.id, tick.due):
            await self.start(record, tick.due)
        if record.webhook is not None:
            await self.notify(record)
        return tick.next_at

    async def start(self, record: ScheduleRecord, due: datetime) -> None:
        """Submit the run of `due` as the schedule's owner, then drop runs past `keep`."""
        created = TaskCreate.model_validate(record.body)  # header values redacted: put back below
        options = with_secrets(json.dumps(record.body.get("options") or {}), record.secrets)
        previous = record.runs[-1][1] if record.runs else None
        task = NewTask(created.name or record.name, created.description, options, schedule=record.id)
        task.rerun_of = previous if previous and await self.store.get_task(previous) else None
        if created.crawl is not None:
            task.crawl = CrawlSpec(**created.crawl.model_dump())
            submission = Submission(task, [task.crawl.start], 1, record.id)
        else:
            urls = created.urls or []
            submission = Submission(task, urls, len(urls), record.id)
        run = schedules.run_id(record.id, due)
        try:
            made = await accept(self.store, self.settings, self.quotas, submission, run, Response(),
                                Principal(record.owner, admin=record.owner == ADMIN))  # fmt: skip
        except HTTPException as exc:  # a quota, a cap lowered since: this run is skipped
            log.warning("schedule %s: run %s not started: %s", record.id, run, exc.detail)
            return
        await self.store.add_run(record.id, due, made.id)
        await self.keep(record.id)

    async def notify(self, record: ScheduleRecord) -> None:
        """Tell the schedule's webhook of each run that ended (once, whichever replica wins)."""
        assert record.webhook is not None and record.webhook_secret is not None
        for _, task_id in record.runs:
            task = await self.store.get_task(task_id)
            if task is not None and task.status in TERMINAL and await self.store.claim_notice(task_id):
                self._background(self.tell(record.id, task, record.webhook, record.webhook_secret))

    async def notify_tasks(self) -> None:
        """Tell each task's webhook once it has ended (taken from the store by one replica)."""
        for task_id in await self.store.task_webhooks():
            task = await self.store.get_task(task_id)
            if task is not None and task.status not in TERMINAL:
                continue
            taken = await self.store.take_task_webhook(task_id)
            if task is not None and taken is not None:
                self._background(self.tell(task.id, task, *taken))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Off the loop's look (a run's changes may take long to count); kept until it ends."""
        running = asyncio.get_running_loop().create_task(work)
        self._working.add(running)
        running.add_done_callback(self._done)

    def _done(self, work: asyncio.Task[None]) -> None:
        self._working.discard(work)
        if not work.cancelled() and (error := work.exception()) is not None:
            log.error("schedules: a notice or its record failed: %r", error)

    async def tell(self, subject: str, task: TaskRecord, webhook: dict[str, str], secret: str) -> None:
        """Send the summary of an ended run (its counts, its changes against the run it re-runs)
        if the webhook wants it; each attempt is kept under `subject` (schedule or task)."""
        spec = WebhookSpec.model_validate(webhook)
        changed = None
        if task.rerun_of and await self.store.get_task(task.rerun_of) is not None:
            changed = await count(self.store, task.rerun_of, task.id)
            await self.store.set_changes(task.id, {"since": task.rerun_of, **changed})
        counts = {k: v for k, v in progress(task).model_dump().items() if v is not None}
        summary = Summary(
            task.id,
            task.status.value,
            counts,
            task_links(self.settings.public_url or "", task.id),
            changed,
            task.schedule,
        )
        if summary.wanted(spec.on):
            body, recorder = summary.body(datetime.now(UTC)), self._recorder(subject, task.id)
            self.notifier.submit(spec.url, secret, body, recorder)

    def _recorder(self, subject: str, task_id: str) -> Callable[[webhooks.Delivery], None]:
        """Keeps each delivery in the store after every attempt (readable while it retries)."""

        def record(delivery: webhooks.Delivery) -> None:
            shown = {
                "id": delivery.id, "task_id": task_id, "url": delivery.url, "delivered": delivery.delivered,
                "attempts": [attempt_of(a) for a in delivery.attempts],
            }  # fmt: skip
            self._background(self.store.record_delivery(subject, shown))

        return record

    async def keep(self, schedule_id: str) -> None:
        record = await self.store.get_schedule(schedule_id)
        if record is None:
            return
        runs = []
        for due, task_id in record.runs:
            task = await self.store.get_task(task_id)
            runs.append(schedules.Run(task_id, due, task is None or task.status in TERMINAL))
        if dropped := schedules.runs_to_drop(runs, record.keep):
            for task_id in dropped:
                await self.store.delete_task(task_id)
            await self.store.drop_runs(schedule_id, dropped)


def attempt_of(attempt: webhooks.Attempt) -> dict[str, Any]:
    error = (
        None
        if attempt.error is None
        else {"kind": attempt.error.kind.value, "message": attempt.error.message}
    )
    return {"number": attempt.number, "at": attempt.at.isoformat(), "status": attempt.status,
            "elapsed_ms": attempt.elapsed_ms, "error": error}  # fmt: skip


@contextlib.asynccontextmanager
async def scheduling(store: Store, settings: Settings, quotas: Quotas) -> AsyncIterator[None]:
    """The replica's Scheduler while the app runs."""
    async with Notifier(policy_of(settings), WEBHOOK_BACKOFF) as notifier:
        scheduler = Scheduler(store, settings, quotas, notifier)
        running = asyncio.create_task(scheduler.run())
        try:
            yield
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await scheduler.close()
