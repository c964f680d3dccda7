"""Per-key quotas and rate limits (set by the operator), and the cap on uploads read at once.

Counters live in the store (linkprobe.store.accounts), so every API replica counts against the same
windows; the store checks and charges them in the transaction (SQLite) or script (Redis) that
creates the task, so simultaneous submissions cannot pass a limit together, and a retry answered
with its Idempotency-Key's task is charged nothing. The admin key, and callers when
authentication is off, are not limited.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator

from fastapi import HTTPException

from linkprobe.api.security import Principal
from linkprobe.settings import Settings
from linkprobe.store import Quota, QuotaExceeded
from linkprobe.store.accounts import Window

IN_FLIGHT_RETRY_S = 10


def too_many(detail: str, retry_after: float) -> HTTPException:
    return HTTPException(429, detail, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


class Quotas:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._uploads = asyncio.Semaphore(settings.max_concurrent_uploads)

    @contextlib.asynccontextmanager
    async def upload(self) -> AsyncIterator[None]:
        """A slot to read one request body in (bounded disk and CPU): waits a little, then 503."""
        if self._uploads.locked():
            try:
                await asyncio.wait_for(self._uploads.acquire(), self.settings.upload_wait_s or 1e-9)
            except TimeoutError:
                raise HTTPException(
                    503, "too many uploads at once, retry shortly", headers={"Retry-After": "1"}
                ) from None
        else:
            await self._uploads.acquire()
        try:
            yield
        finally:
            self._uploads.release()

    def quota(self, who: Principal, urls: int) -> Quota | None:
        """The limits a submission of `urls` URLs is admitted under (None: the caller is not
        limited). The store checks and charges them in the step that creates the task."""
        if who.admin or who.owner is None:
            return None
        settings = self.settings
        return Quota(
            who.owner, urls, settings.quota_tasks_in_flight, settings.quota_submissions_per_minute,
            settings.quota_urls_per_day, Window.current("minute", 60), Window.today(),
        )  # fmt: skip

    @staticmethod
    def refused(quota: Quota, exc: QuotaExceeded) -> HTTPException:
        """The 429 for a limit the store found passed, with the seconds until it resets."""
        if exc.limit == "in_flight":
            detail = f"{exc.count} tasks in flight: the limit is {quota.tasks_in_flight} per key"
            return too_many(detail, IN_FLIGHT_RETRY_S)
        if exc.limit == "minute":
            limit, what, amount, window = (
                quota.submissions_per_minute,
                "submissions per minute",
                1,
                quota.minute,
            )
        else:
            limit, what, amount, window = quota.urls_per_day, "URLs per day", quota.urls, quota.day
        detail = f"quota of {limit} {what} reached for this key ({amount} more asked)"
        return too_many(detail, window.ends - time.time())
