"""Schedules as pure rules: when a run is due, which replica starts it, which runs are kept.

Nothing here reads a clock, a store or a network: every function takes the times it needs, so the
API replicas, the stores and the tests apply the same rules to the same values.

- A period is an interval (`15m`, `1h`, `1d`, `1h30m`) or a 5-field cron expression (UTC). Its
  due times are fixed by the schedule's *anchor* (when it was created): an interval's are
  anchor + k x interval (k >= 1), a cron expression's are its fire times after the anchor. Every
  replica so computes the same due times, and a due time names a run.
- Catch-up: `tick` starts only the latest due time not yet run, so after any downtime a missed
  run starts once, not once per missed period.
- Exactly one replica starts each run: `claim` moves the schedule's last claimed due time forward
  and succeeds only if it moves (the store applies it as one compare-and-set, or as a
  set-if-absent of `run_id` kept for `lease_ttl`); `run_id` is also the run's idempotency key.
- `keep`: `runs_to_drop` keeps the newest runs, every unfinished run and the baseline of its
  changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Self

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from linkprobe import durations

MIN_INTERVAL = timedelta(seconds=1)
MAX_INTERVAL = timedelta(days=366)
CRON_FIELDS = 5
LEASE_GRACE = timedelta(minutes=1)  # a lease outlives its period by this: clocks and slow replicas
MAX_KEEP = 1000
INTERVAL_HELP = f"an interval: {durations.HELP}"
CRON_HELP = "a 5-field cron expression in UTC such as '0 3 * * *' (minute hour day month weekday)"


class PeriodError(ValueError):
    """A period that is neither a valid interval nor a valid cron expression; says why."""


@dataclass(frozen=True, slots=True)
class Interval:
    """Runs every `every`, counted from the schedule's anchor."""

    every: timedelta

    def next_after(self, anchor: datetime, after: datetime) -> datetime:
        steps = max(0, (after - anchor) // self.every) + 1
        return anchor + steps * self.every

    def latest(self, anchor: datetime, at: datetime) -> datetime | None:
        steps = (at - anchor) // self.every
        return anchor + steps * self.every if steps >= 1 else None


@dataclass(frozen=True, slots=True)
class Cron:
    """Runs at a cron expression's fire times (UTC) after the schedule's anchor."""

    expression: str

    def next_after(self, anchor: datetime, after: datetime) -> datetime:
        fired: datetime = next(CronSim(self.expression, max(anchor, after)))
        return fired

    def latest(self, anchor: datetime, at: datetime) -> datetime | None:
        # cronsim's reverse walk starts strictly before a whole second; a microsecond past `at`
        # makes `at` itself a candidate.
        start = at if at.microsecond else at + timedelta(microseconds=1)
        fired: datetime = next(CronSim(self.expression, start, reverse=True))
        return fired if fired > anchor else None


Period = Interval | Cron


def parse_period(text: str) -> Period:
    """An interval or a 5-field cron expression; PeriodError saying what is wrong otherwise."""
    text = text.strip()
    if len(text.split()) == CRON_FIELDS:
        return parse_cron(text)
    if len(text.split()) > 1:
        raise PeriodError(f"{text!r} is not a period: expected {INTERVAL_HELP}, or {CRON_HELP}")
    return parse_interval(text)


def parse_interval(text: str) -> Interval:
    if (seconds := durations.seconds(text)) is None:
        raise PeriodError(f"{text!r} is not an interval: expected {INTERVAL_HELP}")
    every = timedelta(seconds=seconds)
    if not MIN_INTERVAL <= every <= MAX_INTERVAL:
        raise PeriodError(
            f"interval {text!r} is out of range: from {MIN_INTERVAL.seconds}s to {MAX_INTERVAL.days}d"
        )
    return Interval(every)


def parse_cron(text: str) -> Cron:
    fields = text.split()
    if len(fields) != CRON_FIELDS:
        raise PeriodError(f"{text!r} is not a cron expression: expected {CRON_HELP}")
    expression = " ".join(fields)
    try:  # cronsim checks each field as it builds; an impossible date (30 Feb) fails here too
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise PeriodError(f"{text!r} is not a cron expression: {exc}") from None
    return Cron(expression)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("schedule times must be timezone-aware")
    return moment.astimezone(UTC)


def next_run(period: Period, anchor: datetime, after: datetime) -> datetime:
    """The first due time strictly after `after`."""
    return period.next_after(_utc(anchor), _utc(after))


def last_due(period: Period, anchor: datetime, at: datetime) -> datetime | None:
    """The latest due time at or before `at`, None before the first."""
    return period.latest(_utc(anchor), _utc(at))


@dataclass(frozen=True, slots=True)
class Tick:
    """What a replica does for a schedule now: start the run of `due` (None: nothing is due),
    then look again at `next_at`."""

    due: datetime | None
    next_at: datetime


def tick(period: Period, anchor: datetime, last_run: datetime | None, now: datetime) -> Tick:
    """The catch-up rule: only the latest due time not yet run is started, however many passed."""
    latest = last_due(period, anchor, now)
    fresh = latest is not None and (last_run is None or latest > _utc(last_run))
    return Tick(latest if fresh else None, next_run(period, anchor, now))


def run_id(schedule_id: str, due: datetime) -> str:
    """A run's identity: the same on every replica (the lease's key, the task's idempotency key)."""
    return f"{schedule_id}@{_utc(due).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"


def claim(last_claimed: datetime | None, due: datetime) -> bool:
    """Whether the run of `due` may start: only a move of the schedule's last claimed due time
    forward. Applied atomically by the store with the move itself, exactly one replica wins it,
    and a slower replica can never start an older run after a newer one."""
    return last_claimed is None or _utc(due) > _utc(last_claimed)


def lease_ttl(period: Period, anchor: datetime, due: datetime) -> timedelta:
    """How long a set-if-absent lease on `run_id` must live: past the next due time (by then
    every replica has read the newer last run), plus a grace for clocks and slow replicas."""
    return next_run(period, anchor, due) - _utc(due) + LEASE_GRACE


@dataclass(frozen=True, slots=True)
class Run:
    """One of a schedule's runs as `keep` sees it."""

    task_id: str
    due: datetime
    ended: bool


def runs_to_drop(runs: Iterable[Run], keep: int) -> list[str]:
    """Task ids to delete so that the newest `keep` runs remain. Never dropped: a run that has
    not ended, and the newest ended run before it (the baseline its changes are compared with)."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    newest_first = sorted(runs, key=lambda run: _utc(run.due), reverse=True)
    kept = {run.task_id for run in newest_first[:keep]}
    waiting = False  # an unfinished run newer than this one still needs its baseline
    for run in newest_first:
        if not run.ended:
            kept.add(run.task_id)
            waiting = True
        elif waiting:
            kept.add(run.task_id)
            waiting = False
    return [run.task_id for run in newest_first if run.task_id not in kept]


# -- the API's bodies --

Keep = Annotated[int, Field(ge=1, le=MAX_KEEP, description="How many of the newest runs are kept.")]


class SchedulePeriod(BaseModel):
    """When a schedule runs: exactly one of `every` (an interval) or `cron` (5 fields, UTC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every: str | None = Field(default=None, description=f"Run at {INTERVAL_HELP}.", examples=["15m"])
    cron: str | None = Field(default=None, description=f"Run at {CRON_HELP}.", examples=["0 3 * * *"])

    @field_validator("every")
    @classmethod
    def _interval(cls, text: str | None) -> str | None:
        if text is None:
            return None
        parse_interval(text.strip())  # its PeriodError is a ValueError: pydantic reports it on the field
        return text.strip()

    @field_validator("cron")
    @classmethod
    def _cron(cls, text: str | None) -> str | None:
        return None if text is None else parse_cron(text).expression

    @model_validator(mode="after")
    def _one_rule(self) -> Self:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of 'every' (an interval such as 1h) or 'cron'")
        return self

    @property
    def rule(self) -> Period:
        return parse_interval(self.every) if self.every is not None else parse_cron(self.cron or "")
