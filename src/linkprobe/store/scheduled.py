"""What the stores keep of a schedule (linkprobe.schedules has the rules: periods, the lease,
`keep`): its task body, period, owner, pause and last claimed due time, and its runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class NewSchedule:
    body: dict[str, Any]  # the task body (TaskCreate as JSON); header values split off by the store
    period: dict[str, str]  # schedules.SchedulePeriod as JSON: {"every": ...} or {"cron": ...}
    keep: int
    owner: str | None = None
    name: str | None = None
    webhook: dict[str, str] | None = None  # webhooks.WebhookSpec as JSON
    webhook_secret: str | None = None  # its signing secret: kept apart, never shown after creation


@dataclass(slots=True)
class ScheduleRecord:
    id: str
    body: dict[str, Any]  # header values redacted
    period: dict[str, str]
    keep: int
    owner: str | None
    name: str | None
    paused: bool
    created_at: datetime  # the anchor of its due times
    last_claimed: datetime | None  # the due time of the last run started (the lease)
    runs: list[tuple[datetime, str]] = field(default_factory=list)  # (due, task id), oldest first
    secrets: str | None = None  # header values as JSON, for the runs; never shown
    webhook: dict[str, str] | None = None
    webhook_secret: str | None = None
