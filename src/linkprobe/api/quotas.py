"""Per-key quotas and rate limits (set by the operator), and the cap on uploads read at once.

Counters live in the store (linkprobe.store.keys), so every API replica counts against the same
windows. The admin key, and callers when authentication is off, are not limited.
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
from linkprobe.store import Store
from linkprobe.store.keys import KeyStore, Window

IN_FLIGHT_RETRY_S = 10


def too_many(detail: str, retry_after: float) -> HTTPException:
    return HTTPException(429, detail, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


class Quotas:
    def __init__(self, settings: Settings, store: Store, keys: KeyStore) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
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

    async def admit(self, who: Principal, urls: int) -> int | None:
        """429 when a submission of `urls` URLs would pass one of the caller's limits; else the
        URLs the caller may still submit today (None: not limited)."""
        if who.admin or who.owner is None:
            return None
        await self._in_flight(who.owner)
        per_minute, per_day = self.settings.quota_submissions_per_minute, self.settings.quota_urls_per_day
        await self._take(who.owner, Window.current("minute", 60), 1, per_minute, "submissions per minute")
        return per_day - await self._take(who.owner, Window.today(), urls, per_day, "URLs per day")

    async def _in_flight(self, owner: str) -> None:
        limit = self.settings.quota_tasks_in_flight
        count = await self.store.tasks_in_flight(owner)  # an owner index, not a scan of every task
        if count >= limit:
            raise too_many(f"{count} tasks in flight: the limit is {limit} per key", IN_FLIGHT_RETRY_S)

    async def _take(self, owner: str, window: Window, amount: int, limit: int, what: str) -> int:
        """Count `amount` in the window: the new count, or 429 when it would pass the limit."""
        count = await self.keys.take(owner, window, amount, limit)
        if count is None:
            detail = f"quota of {limit} {what} reached for this key ({amount} more asked)"
            raise too_many(detail, window.ends - time.time())
        return count
