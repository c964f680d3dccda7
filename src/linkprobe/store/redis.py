"""The distributed store: task data in Redis, work on a Redis Stream with a consumer group.

A worker reads one entry per free slot (no prefetch hoarding), keeps its in-flight entries alive
with a heartbeat (XCLAIM ... JUSTID) and reclaims the entries of dead workers (XAUTOCLAIM) once
they have been idle for `reclaim_idle_s`. A chunk delivered more than `max_deliveries` times goes
to the dead-letter stream and its URLs get an `internal` error result, so the task still ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, ParamSpec, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from linkprobe.changes import Seen
from linkprobe.engine import ProbeResult
from linkprobe.engine.outcome import APART, Outcome
from linkprobe.extract.document import Linked
from linkprobe.frontier import ChunkKind, CrawlSpec, Found, merge_sources, plan_discovery
from linkprobe.store import redis_schema as k
from linkprobe.store.accounts import Window
from linkprobe.store.base import (
    LIVE,
    MAX_DELIVERIES,
    TERMINAL,
    Chunk,
    IdempotencyConflict,
    NewTask,
    Quota,
    QuotaExceeded,
    ResultFilter,
    Retention,
    Store,
    Stored,
    TaskRecord,
    TaskStatus,
    batches_off_loop,
    cache_key,
    cacheable,
    cancelled_results,
    count_key,
    dead_letter_results,
    encode,
    lane_of,
    outcome_key,
    record_counts,
    split_body_secrets,
    split_secrets,
    stored_options,
    tally,
    with_secrets,
    with_sources,
)
from linkprobe.store.byurl import seen_of
from linkprobe.store.errors import StoreUnavailable
from linkprobe.store.packed import (
    ON_THE_WAY,
    SEGMENT,
    Row,
    classes,
    compact,
    first_per_index,
    indexed_keys,
    pack,
    rows_of,
    segments,
    unpack,
)
from linkprobe.store.scheduled import NewSchedule, ScheduleRecord

P = ParamSpec("P")
T = TypeVar("T")
PAGE = 1000
BLOCK_MS = 1000
RECLAIM_EVERY_S = 1.0
SCAN_MIN = 64  # a legacy task's indexes read per step of a results page, at least
READ_CHUNKS = 16  # chunks of batches read per step of a results page, at most (1, 2, 4... up to it)
SOURCED_CACHE = 4096  # task flags remembered (sources, legacy)
# Plans of one page made at most while other pages of its crawl keep changing the state read: each
# refused plan means another page's was applied, so the crawl moves on meanwhile.
DISCOVER_TRIES = 100

# Tasks stored before outcome counts (o:<outcome>) existed counted `ok` and `broken` (every result
# not ok) in the task hash and indexed results in idx:ok and idx:broken. They are read as they are:
# their outcome counts derived (legacy_counts), their outcome filters scanning those indexes.
LEGACY_OK, LEGACY_BROKEN = "ok", "broken"


def legacy_counts(data: Mapping[str, str], counts: dict[str, int]) -> dict[str, int]:
    """A task's counts with o:<outcome> keys: as stored, or for a legacy task derived from its `ok`
    and `broken` fields and its e:<kind> counts (a result apart from broken is counted by its kind)."""
    if LEGACY_OK not in data or any(key.startswith("o:") for key in counts):
        return counts
    derived = {outcome_key(Outcome.OK): int(data[LEGACY_OK])}
    broken = int(data.get(LEGACY_BROKEN) or 0)
    for kind, outcome in APART.items():
        apart = counts.get(count_key(kind.value, None), 0)
        derived[outcome_key(outcome)] = derived.get(outcome_key(outcome), 0) + apart
        broken -= apart
    return {**counts, **derived, outcome_key(Outcome.BROKEN): broken}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def unavailable(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Translate connection failures into StoreUnavailable (the API answers 503)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailable(f"Redis unreachable: {exc}") from exc

    return wrapper


def legacy_args(results: list[ProbeResult]) -> list[str]:
    """LEGACY_COMPLETE_CHUNK's arguments per result (base.encode): index, count keys, JSON. The keys
    go as one argument: redis-py packs each argument in Python."""
    args: list[str] = []
    for stored in encode(results):
        args += [str(stored.index), " ".join(stored.keys), stored.json]
    return args


def batch_args(start: int, stored: list[Stored]) -> list[str | bytes]:
    """COMPLETE_CHUNK's arguments after its header: the chunk's start, the batch packed, its counts
    (base.tally), the count keys it is indexed by and its input indexes."""
    counts = tally(stored)
    indexed = indexed_keys(counts)
    pairs = [part for key, n in counts.items() for part in (key, str(n))]
    packed = pack(rows_of(stored), ON_THE_WAY) if stored else b""
    return [str(start), packed, str(len(counts)), str(len(indexed)), *pairs, *indexed,
            *(str(item.index) for item in stored)]  # fmt: skip


@dataclass(slots=True, frozen=True)
class Batches:
    """One chunk's batches as READ_BATCHES reads them: where the chunk starts, their ids, values."""

    start: int
    ids: list[str]
    values: list[bytes]

    def rows(self, key: str | None = None) -> list[Row]:
        """The chunk's results in input order (its batches hold them in the order they ended), or
        only those counted by `key`."""
        rows = [row for value in self.values for row in unpack(value, key)]
        rows.sort()  # by index (unique in a task): linear on the sorted runs of compacted batches
        return rows


def read_batches(reply: list[Any]) -> list[Batches]:
    """READ_BATCHES' flat reply: per chunk its start, m, m ids, m values."""
    found, at = [], 0
    while at < len(reply):
        m = int(reply[at + 1])
        ids = [i.decode() for i in reply[at + 2 : at + 2 + m]]
        found.append(Batches(int(reply[at]), ids, list(reply[at + 2 + m : at + 2 + 2 * m])))
        at += 2 + 2 * m
    return found


class RedisStore(Store):
    def __init__(
        self,
        url: str,
        reclaim_idle_s: float = 30.0,
        max_deliveries: int = 5,
        retention_s: int = 7 * 86400,
        block_ms: int = BLOCK_MS,
    ) -> None:
        self.url = url
        self.block_ms = block_ms
        self.reclaim_idle_ms = int(reclaim_idle_s * 1000)
        self.max_deliveries = max_deliveries
        self.retention = Retention(retention_s)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        # Any: redis-py types replies as bytes | str whatever decode_responses says; ours are str.
        self._redis: Any = None
        self._raw: Any = None  # the same Redis, replies as bytes: packed batches are binary
        self._last_reclaim = 0.0
        self._complete: Any = None
        self._legacy_complete: Any = None
        self._read_batches: Any = None
        self._compact_chunk: Any = None
        self._start: Any = None
        self._drop: Any = None
        self._feed: Any = None
        self._discover: Any = None
        self._update: Any = None
        self._create: Any = None
        self._enqueue_script: Any = None
        self._flags: dict[tuple[str, str], bool] = {}  # (task id, field) -> present (see _has)
        self._claim_run: Any = None
        self._add_run: Any = None

    @property
    def r(self) -> Any:
        if self._redis is None:
            raise StoreUnavailable("store is not open")
        return self._redis

    async def open(self) -> None:
        self._redis, self._raw = self._client(decode=True), self._client(decode=False)
        self._complete = self._redis.register_script(k.COMPLETE_CHUNK)
        self._legacy_complete = self._redis.register_script(k.LEGACY_COMPLETE_CHUNK)
        self._read_batches = self._raw.register_script(k.READ_BATCHES)
        self._compact_chunk = self._redis.register_script(k.COMPACT_CHUNK)
        self._start = self._redis.register_script(k.START_CHUNK)
        self._drop = self._redis.register_script(k.DROP_CHUNK)
        self._feed = self._redis.register_script(k.FEED_CHUNK)
        self._discover = self._redis.register_script(k.DISCOVER)
        self._update = self._redis.register_script(k.UPDATE_TASK)
        self._create = self._redis.register_script(k.CREATE_TASK)
        self._enqueue_script = self._redis.register_script(k.ENQUEUE)
        self._claim_run = self._redis.register_script(k.CLAIM_RUN)
        self._add_run = self._redis.register_script(k.ADD_RUN)
        with contextlib.suppress(StoreUnavailable):  # start anyway: 503s until Redis is back
            await self._ensure_group()

    def _client(self, decode: bool) -> Any:
        timeout = self.block_ms / 1000 + 4
        return aioredis.Redis.from_url(
            self.url, decode_responses=decode, socket_timeout=timeout, socket_connect_timeout=2
        )

    @unavailable
    async def _ensure_group(self) -> None:
        try:
            await self.r.xgroup_create(k.QUEUE, k.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            await self._raw.aclose()
            self._redis = self._raw = None

    async def ping(self) -> bool:
        try:
            return bool(await self.r.ping())
        except (RedisError, OSError, StoreUnavailable):
            return False

    # -- tasks --------------------------------------------------------------------------------

    @unavailable
    async def create_task(
        self, task: NewTask, urls: Iterable[str], chunk_size: int, idempotency: tuple[str, str] | None = None,
        quota: Quota | None = None,
    ) -> tuple[TaskRecord, bool]:  # fmt: skip
        if idempotency is not None and (known := await self._idempotent(*idempotency)) is not None:
            return known, False
        task_id = uuid.uuid4().hex
        try:
            total, chunks = await self._write_chunks(
                task_id, [task.crawl.start] if task.crawl else urls, chunk_size
            )
            await self._write_extras(task_id, task)
            outcome, value = await self._create(
                keys=self._create_keys(task_id, task.owner, idempotency, quota),
                args=self._create_args(task_id, task, total, chunks, chunk_size, idempotency, quota),
            )
        except BaseException:
            await asyncio.shield(self._discard(task_id))
            raise
        if outcome != "created":
            await self._discard(task_id)
            if outcome == "known" and idempotency is not None:  # created meanwhile by a retry
                return await self._replay(idempotency[0], value, idempotency[1]), False
            raise QuotaExceeded(outcome, int(value))
        await self._enqueue(task_id, chunks, lane_of(task, task_id), int(value))
        record = await self.get_task(task_id)
        assert record is not None
        return record, True

    @staticmethod
    def _create_keys(
        task_id: str, owner: str | None, idempotency: tuple[str, str] | None, quota: Quota | None
    ) -> list[str]:
        idem = k.idempotency(idempotency[0] if idempotency else "")
        minute, day = (quota.minute.name, quota.day.name) if quota else ("", "")
        return [k.task(task_id), k.SEQ, k.TASKS, idem, k.owner_tasks(owner or ""), k.owner_live(owner or ""),
                k.usage(owner or "", minute), k.usage(owner or "", day)]  # fmt: skip

    def _create_args(
        self, task_id: str, task: NewTask, total: int, chunks: int, chunk_size: int,
        idempotency: tuple[str, str] | None, quota: Quota | None,
    ) -> list[Any]:  # fmt: skip
        """CREATE_TASK's arguments: what Python decided (the limits, the windows, the task's
        fields), for the script to apply in one step."""
        limits = (
            [1, quota.tasks_in_flight, quota.submissions_per_minute, quota.minute.ttl(), quota.urls_per_day,
             quota.day.ttl(), quota.urls]
            if quota else [0, 0, 0, 1, 0, 1, 0]
        )  # fmt: skip
        fingerprint = idempotency[1] if idempotency else ""
        args = [self.retention.ttl, int(idempotency is not None), fingerprint, task_id, task.owner or "",
                int(chunks > 0), *limits, k.PREFIX]  # fmt: skip
        for field, value in self._fields(task_id, task, total, chunks, chunk_size).items():
            args += [field, value]
        return args

    def _fields(
        self, task_id: str, task: NewTask, total: int, chunks: int, chunk_size: int
    ) -> dict[str, Any]:
        options, secrets = split_secrets(task.options)
        fields: dict[str, Any] = {
            "id": task_id, "name": task.name or "", "description": task.description or "",
            "has_name": int(task.name is not None), "has_description": int(task.description is not None),
            "options": options, "total": total,
            "status": (TaskStatus.PENDING if chunks else TaskStatus.READY).value, "done": 0,
            "chunks_left": chunks, "created_at": _now(),
            "finished_at": "" if chunks else _now(), "owner": task.owner or "",
            "lane": lane_of(task, task_id), "chunks": chunks, "chunk_size": chunk_size,
            k.BATCHES_FIELD: 0,
        }  # fmt: skip
        if secrets and chunks:  # a task with nothing to probe never needs them
            fields["secrets"] = secrets
        if task.crawl is not None:
            fields |= {"crawl": json.dumps(task.crawl.to_dict()), "pages": 0, "scheduled": 1, "sourced": 1}
        if task.sources is not None or task.sources_of:
            fields["sourced"] = 1
        if task.rerun_of is not None:
            fields["rerun_of"] = task.rerun_of
        if task.schedule is not None:
            fields["schedule"] = task.schedule
        return fields

    async def _write_extras(self, task_id: str, task: NewTask) -> None:
        """The task's other keys before it exists: its key set, a crawl's seen-set, sources."""
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.sadd(k.keys(task_id), k.task(task_id))
            pipe.expire(k.keys(task_id), self.retention.ttl)
            if task.crawl is not None:
                self._start_crawl(pipe, task_id, task.crawl)
            if task.sources_of is not None:  # a re-run: the same input indexes, so the same sources
                pipe.copy(k.sources(task.sources_of), k.sources(task_id))
                pipe.expire(k.sources(task_id), self.retention.ttl)
                pipe.sadd(k.keys(task_id), k.sources(task_id))
            await pipe.execute()
        if task.sources is not None:
            await self._add_sources(task_id, task.sources)

    async def _discard(self, task_id: str) -> None:
        """Every key written for a task that was not created (refused, replayed, failed)."""
        if await self.r.exists(k.task(task_id)):
            return  # created after all (the script ran as its caller was cancelled): keep it
        members = await self.r.smembers(k.keys(task_id))
        await self.r.delete(k.keys(task_id), *members)

    def _start_crawl(self, pipe: Any, task_id: str, crawl: CrawlSpec) -> None:
        """The start URL is seen, scheduled as the crawl's first page, in a `pages` chunk."""
        pipe.hset(k.seen(task_id), crawl.start, 0)
        pipe.hset(k.kinds(task_id), "0", f"{ChunkKind.PAGES.value} 0")
        for key in (k.seen(task_id), k.kinds(task_id)):
            pipe.expire(key, self.retention.ttl)
        pipe.sadd(k.keys(task_id), k.seen(task_id), k.kinds(task_id), k.expanded(task_id), k.sources(task_id))

    async def _add_sources(self, task_id: str, sources: Iterable[tuple[int, Any]]) -> None:
        """Where each input URL was found (documents), written before the task exists: a batch a
        round trip, so a million links never block the event loop in one go."""
        await self.r.sadd(k.keys(task_id), k.sources(task_id))
        items = iter(sources)
        while batch := list(islice(items, 1000)):
            await self.r.hset(k.sources(task_id), mapping={str(i): orjson.dumps(d) for i, d in batch})
        await self.r.expire(k.sources(task_id), self.retention.ttl)

    async def _idempotent(self, key: str, fingerprint: str) -> TaskRecord | None:
        known = await self.r.get(k.idempotency(key))
        return None if known is None else await self._replay(key, known, fingerprint)

    async def _replay(self, key: str, known: str, fingerprint: str) -> TaskRecord:
        """The task an idempotency key made ("<task id> <fingerprint>"), or IdempotencyConflict."""
        task_id, _, stored = known.partition(" ")
        if stored != fingerprint:
            raise IdempotencyConflict(key)
        record = await self.get_task(task_id)
        if record is None:  # expired with the retention an instant ago
            raise IdempotencyConflict(key)
        return record

    async def _write_chunks(self, task_id: str, urls: Iterable[str], chunk_size: int) -> tuple[int, int]:
        """The chunks, 100 per round trip, before the task exists (CREATE_TASK makes it), each in
        the task's key set so that a task refused is discarded whole."""
        total, number = 0, 0
        async for batch in batches_off_loop(urls, 100 * chunk_size):
            async with self.r.pipeline(transaction=False) as pipe:
                names = []
                for first in range(0, len(batch), chunk_size):
                    part = batch[first : first + chunk_size]
                    names.append(k.chunk(task_id, number))
                    pipe.set(names[-1], "\n".join(part), ex=self.retention.ttl)
                    pipe.hset(k.starts(task_id), str(number), str(total))
                    total += len(part)
                    number += 1
                pipe.sadd(k.keys(task_id), k.starts(task_id), *names)
                pipe.expire(k.keys(task_id), self.retention.ttl)
                pipe.expire(k.starts(task_id), self.retention.ttl)
                await pipe.execute()
        return total, number

    async def _enqueue(self, task_id: str, chunks: int, lane: str, seq: int) -> None:
        """The first chunk on the queue at once (a waiting worker wakes up), the others in the
        task's `todo` list, fed a lane at a time (fair turns); nothing once a cancel ended the task.
        A new lane goes before every lane already served (scores >= 1), in creation order."""
        keys = [k.task(task_id), k.todo(task_id), k.keys(task_id), k.lane(lane), k.LANES, k.QUEUE]
        await self._enqueue_script(keys=keys, args=[task_id, chunks, lane, repr(seq / 1e12)])

    def _record(self, data: dict[str, str], counts: dict[str, str]) -> TaskRecord:
        return TaskRecord(
            id=data["id"], name=data["name"] if data.get("has_name") == "1" else None,
            description=data["description"] if data.get("has_description") == "1" else None,
            options=stored_options(data["options"]), status=TaskStatus(data["status"]),
            total=int(data["total"]), done=int(data["done"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            started_at=_time(data.get("started_at")), finished_at=_time(data.get("finished_at")),
            **record_counts(legacy_counts(data, {key: int(n) for key, n in counts.items()})),
            owner=data.get("owner") or None,
            crawl=CrawlSpec.from_dict(json.loads(data["crawl"])) if data.get("crawl") else None,
            pages=int(data.get("pages") or 0), rerun_of=data.get("rerun_of") or None,
            schedule=data.get("schedule") or None,
            changes=json.loads(data["changes"]) if data.get("changes") else None,
        )  # fmt: skip

    @unavailable
    async def get_task(self, task_id: str) -> TaskRecord | None:
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.task(task_id))
            pipe.hgetall(k.counts(task_id))
            data, counts = await pipe.execute()
        return self._record(data, counts) if data else None

    @unavailable
    async def list_tasks(
        self, status: TaskStatus | None, cursor: str | None, limit: int, owner: str | None = None
    ) -> tuple[list[TaskRecord], str | None]:
        page: list[TaskRecord] = []
        index = k.TASKS if owner is None else k.owner_tasks(owner)
        top = f"({cursor}" if cursor else "+inf"
        while len(page) <= limit:
            rows = await self.r.zrevrangebyscore(index, top, "-inf", start=0, num=PAGE, withscores=True)
            if not rows:
                break
            for task_id, seq in rows:
                top = f"({int(seq)}"
                record = await self.get_task(task_id)
                if record is None:
                    await self.r.zrem(index, task_id)  # expired by retention
                elif (status is None or record.status == status) and owner in (None, record.owner):
                    page.append(record)
                    if len(page) > limit:
                        break
        if len(page) <= limit:
            return page, None
        last = await self.r.zscore(index, page[limit - 1].id)
        return page[:limit], str(int(last or 0))

    @unavailable
    async def tasks_in_flight(self, owner: str) -> int:
        live = k.owner_live(owner)
        ids = list(await self.r.smembers(live))
        async with self.r.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hget(k.task(task_id), "status")
            statuses = await pipe.execute()
        stale = [t for t, s in zip(ids, statuses, strict=True) if s not in LIVE]
        if stale:  # expired by retention while in flight
            await self.r.srem(live, *stale)
        return len(ids) - len(stale)

    @unavailable
    async def delete_task(self, task_id: str) -> bool:
        # The task hash first: every script then ignores the task, so no key of it appears after
        # its key set is read.
        owner = await self.r.hget(k.task(task_id), "owner")
        existed = await self.r.delete(k.task(task_id))
        members = await self.r.smembers(k.keys(task_id))
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(k.keys(task_id), k.todo(task_id), *members)
            pipe.zrem(k.TASKS, task_id)
            pipe.hdel(k.WEBHOOKS, task_id)
            if owner:
                pipe.zrem(k.owner_tasks(owner), task_id)
                pipe.srem(k.owner_live(owner), task_id)
            await pipe.execute()
        return bool(existed)

    @unavailable
    async def cancel_task(self, task_id: str) -> TaskRecord | None:
        record = await self.get_task(task_id)
        if record is None or record.status in TERMINAL:
            return record
        # A crawl discovers nothing more from here (DISCOVER checks the mark), a worker gives the
        # chunks it loads cancelled results (_load), and the script that completes the task's last
        # chunk ends it `cancelled` (never `ready`), in one step. The chunks still to feed stay in
        # `todo` until then: a cancel cut short (Redis lost halfway) leaves them to the workers,
        # and a cancel repeated completes what is left; both end the task.
        await self._update(keys=[k.task(task_id)], args=["cancelling", 1])
        starts = await self.r.hgetall(k.starts(task_id))
        finished = await self.r.smembers(k.done(task_id))
        for number, start in starts.items():
            if number not in finished:
                await self._cancel_chunk(task_id, int(number), int(start), "")
        # The last chunk completed (here or by a worker meanwhile) ended the task as cancelled:
        # COMPLETE_CHUNK's end_task also dropped its secrets, took it out of its owner's
        # in-flight set, emptied its `todo` and started its retention, atomically.
        return await self.get_task(task_id)

    async def _cancel_chunk(self, task_id: str, number: int, start: int, receipt: str) -> None:
        """A chunk completed with cancelled results: per index, results already stored are kept,
        only the rest become `cancelled`."""
        urls = (await self.r.get(k.chunk(task_id, number)) or "").split("\n")
        await self._run_complete(task_id, number, start, receipt, cancelled_results(enumerate(urls, start)))

    # -- results ------------------------------------------------------------------------------

    @unavailable
    async def page_rows(
        self, task_id: str, flt: ResultFilter, after: int | None, limit: int
    ) -> list[tuple[int, str]]:
        """Reads the chunks the filter's narrowest index (`indexed`) names, checking each result
        (`matches`)."""
        if await self._has(task_id, k.BATCHES_FIELD):
            found = await self._page_batches(task_id, flt, after, limit)
        else:
            found = await self._page_legacy(task_id, flt, after, limit)
        return await self._with_sources(task_id, found) if found and await self._sourced(task_id) else found

    async def _page_batches(
        self, task_id: str, flt: ResultFilter, after: int | None, limit: int
    ) -> list[tuple[int, str]]:
        """Chunk by chunk from the one holding `after`: 1, 2, 4... chunks a step (a page of 50 reads
        one chunk, a stream fewer steps), only the chunks with a result of the filter's index."""
        indexed = flt.indexed
        scanned = k.order(task_id) if indexed == "all" else k.batches_in(task_id, indexed)
        every = flt == ResultFilter()
        found: list[tuple[int, str]] = []
        low, since, chunks = "-inf", after, 1  # the first step starts at the chunk holding `after`
        while chunks:
            read = await self._read(task_id, scanned, low, since, chunks)
            for batches in read:
                for index, _, row in batches.rows(None if indexed == "all" else indexed):
                    if (after is None or index > after) and (every or flt.matches(orjson.loads(row))):
                        found.append((index, row))
                        if len(found) == limit:
                            return found
            if len(read) < chunks:
                break
            low, since, chunks = f"({read[-1].start}", None, min(chunks * 2, READ_CHUNKS)
        return found

    async def _page_legacy(
        self, task_id: str, flt: ResultFilter, after: int | None, limit: int
    ) -> list[tuple[int, str]]:
        """A legacy task's page: scans the filter's index of input indexes."""
        found: list[tuple[int, str]] = []
        low = f"({after}" if after is not None else "-inf"
        scanned = await self._scanned(task_id, flt)
        while len(found) < limit:
            want = min(PAGE, max(limit - len(found), SCAN_MIN))  # a page of 50 reads ~50 results
            indexes = await self.r.zrangebyscore(scanned, low, "+inf", start=0, num=want)
            if not indexes:
                break
            rows = await self.r.hmget(k.results(task_id), indexes)
            for idx, row in zip(indexes, rows, strict=True):
                if row is not None and flt.matches(orjson.loads(row)):
                    found.append((int(idx), row))
            low = f"({indexes[-1]}"
        return found[:limit]

    async def _sourced(self, task_id: str) -> bool:
        """Whether the task's results have sources (plain tasks' pages then cost what they did
        before sources existed)."""
        return await self._has(task_id, "sourced")

    async def _has(self, task_id: str, field: str) -> bool:
        """Whether the task hash has a field set at creation and never removed (`sourced`, the
        legacy `ok`, `batches`): asked once per process."""
        known = self._flags.get((task_id, field))
        if known is None:
            known = bool(await self.r.hexists(k.task(task_id), field))
            if len(self._flags) >= SOURCED_CACHE:
                del self._flags[next(iter(self._flags))]
            self._flags[task_id, field] = known
        return known

    async def _scanned(self, task_id: str, flt: ResultFilter) -> str:
        """The index a page scans: the filter's, or on a legacy task (legacy_counts) idx:ok or
        idx:broken for an outcome (`matches` then tells broken, unsupported and cancelled apart)."""
        indexed = flt.indexed
        by_outcome = flt.outcome is not None and indexed == outcome_key(Outcome(flt.outcome))
        if by_outcome and await self._has(task_id, LEGACY_OK):
            indexed = LEGACY_OK if flt.outcome == Outcome.OK else LEGACY_BROKEN
        return k.index(task_id, indexed)

    async def _with_sources(self, task_id: str, rows: list[tuple[int, str]]) -> list[tuple[int, str]]:
        sources = await self.r.hmget(k.sources(task_id), [idx for idx, _ in rows])
        return [(idx, with_sources(row, found)) for (idx, row), found in zip(rows, sources, strict=True)]

    async def seen_by_url(self, task_id: str, after: str | None = None) -> AsyncIterator[Seen]:
        """An ended task's: read from its index in URL order (built once, from the external sort);
        a task still running: sorted externally each time (its results still change)."""
        status = await unavailable(self.r.hget)(k.task(task_id), "status")
        if status is None or TaskStatus(status) not in TERMINAL:
            async for seen in super().seen_by_url(task_id, after):
                yield seen
            return
        key = k.by_url(task_id)
        if not await unavailable(self.r.exists)(key):
            await self._index_by_url(task_id)
        low = "-" if after is None else f"({after}\x01"  # past every member of `after` ("<url>\0...")
        while members := await unavailable(self.r.zrangebylex)(key, low, "+", start=0, num=PAGE):
            for member in members:
                url, _, seen = member.partition("\0")
                yield seen_of([url, 0, *json.loads(seen)])
            low = f"({members[-1]}"

    async def _index_by_url(self, task_id: str) -> None:
        """The task's results in URL order as a sorted set: written aside, then renamed in place, so
        a reader never sees half of it."""
        building = k.by_url_building(task_id, uuid.uuid4().hex)
        members: dict[str, int] = {}
        try:
            async for seen in super().seen_by_url(task_id):
                kind = None if seen.error_kind is None else seen.error_kind.value
                what = json.dumps([seen.outcome.value, seen.status_code, seen.final_url, kind])
                members[f"{seen.url}\0{what}"] = 0
                if len(members) >= PAGE:
                    await unavailable(self.r.zadd)(building, members)
                    members = {}
            if members:
                await unavailable(self.r.zadd)(building, members)
            if members or await self.r.exists(building):
                async with self.r.pipeline(transaction=True) as pipe:  # all at once, the task's key too
                    pipe.rename(building, k.by_url(task_id))
                    pipe.expire(k.by_url(task_id), k.BYURL_TTL_S)
                    pipe.sadd(k.keys(task_id), k.by_url(task_id))
                    await pipe.execute()
        finally:
            await self.r.delete(building)

    async def input_urls(self, task_id: str) -> AsyncIterator[list[str]]:
        starts = await unavailable(self.r.hgetall)(k.starts(task_id))
        for number in sorted(map(int, starts)):
            text = await unavailable(self.r.get)(k.chunk(task_id, number))
            if text:
                yield text.split("\n")

    async def _cache_of(self, task_id: str) -> str | None:
        owner, options = await self.r.hmget(k.task(task_id), ["owner", "options"])
        return None if options is None else k.cache(owner or "", cache_key(stored_options(options)))

    @unavailable
    async def cached(self, task_id: str, urls: list[str], max_age: float) -> dict[str, tuple[str, str]]:
        if not urls or (key := await self._cache_of(task_id)) is None:
            return {}
        cutoff = time.time() - max_age
        found: dict[str, tuple[str, str]] = {}
        for url, entry in zip(urls, await self.r.hmget(key, urls), strict=True):
            if entry is not None:
                owner_task, checked, data = entry.split(" ", 2)
                if owner_task != task_id and float(checked) >= cutoff:
                    found[url] = (owner_task, data)
        return await self._of_live_tasks(key, found)

    async def _of_live_tasks(self, key: str, found: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        """`found` without the results of deleted tasks, which are dropped from the cache here (a
        cache hash is shared by an owner's tasks: not scanned when one of them is deleted)."""
        tasks = sorted({task for task, _ in found.values()})
        gone = {t for t, live in zip(tasks, await self._exist(tasks), strict=True) if not live}
        if gone:
            dead = [url for url, (task, _) in found.items() if task in gone]
            await self.r.hdel(key, *dead)
            found = {url: hit for url, hit in found.items() if hit[0] not in gone}
        return found

    async def _exist(self, task_ids: list[str]) -> list[bool]:
        async with self.r.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.exists(k.task(task_id))
            return [bool(n) for n in await pipe.execute()]

    @unavailable
    async def remember(self, task_id: str, results: list[ProbeResult]) -> None:
        entries = {r.url: f"{task_id} {r.checked_at.timestamp()} {r.to_json()}" for r in cacheable(results)}
        if entries and (key := await self._cache_of(task_id)) is not None:
            async with self.r.pipeline(transaction=False) as pipe:
                pipe.hset(key, mapping=entries)
                pipe.expire(key, self.retention.ttl)
                await pipe.execute()

    # -- schedules ----------------------------------------------------------------------------

    async def _schedule(self, schedule_id: str) -> ScheduleRecord | None:
        data = await self.r.hgetall(k.schedule(schedule_id))
        if not data:
            return None
        runs = await self.r.zrange(k.schedule_runs(schedule_id), 0, -1, withscores=True)
        claimed = data.get("last_claimed")
        return ScheduleRecord(
            id=data["id"], body=json.loads(data["body"]), period=json.loads(data["period"]),
            keep=int(data["keep"]), owner=data["owner"] or None,
            name=data["name"] if data.get("has_name") else None,
            paused=data["paused"] == "1", created_at=datetime.fromisoformat(data["created_at"]),
            last_claimed=datetime.fromtimestamp(float(claimed), UTC) if claimed else None,
            runs=[(datetime.fromtimestamp(due, UTC), task) for task, due in runs],
            secrets=data.get("secrets") or None,
            webhook=json.loads(data["webhook"]) if data.get("webhook") else None,
            webhook_secret=data.get("webhook_secret") or None,
        )  # fmt: skip

    @unavailable
    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        return await self._schedule(schedule_id)

    @unavailable
    async def create_schedule(self, schedule: NewSchedule) -> ScheduleRecord:
        schedule_id = uuid.uuid4().hex
        body, secrets = split_body_secrets(schedule.body)
        fields = {
            "id": schedule_id, "body": json.dumps(body), "period": json.dumps(schedule.period),
            "keep": schedule.keep, "owner": schedule.owner or "", "name": schedule.name or "",
            "has_name": "1" if schedule.name is not None else "", "paused": "0", "created_at": _now(),
        }  # fmt: skip
        if secrets:
            fields["secrets"] = secrets
        if schedule.webhook is not None and schedule.webhook_secret is not None:
            fields |= {"webhook": json.dumps(schedule.webhook), "webhook_secret": schedule.webhook_secret}
        seq = await self.r.incr(k.SEQ)
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(k.schedule(schedule_id), mapping=fields)
            pipe.zadd(k.SCHEDULES, {schedule_id: seq})
            await pipe.execute()
        record = await self._schedule(schedule_id)
        assert record is not None
        return record

    @unavailable
    async def list_schedules(self, owner: str | None) -> list[ScheduleRecord]:
        found = [await self._schedule(schedule_id) for schedule_id in await self.r.zrange(k.SCHEDULES, 0, -1)]
        return [s for s in found if s is not None and owner in (None, s.owner)]

    @unavailable
    async def pause_schedule(self, schedule_id: str, paused: bool) -> ScheduleRecord | None:
        await self._update(keys=[k.schedule(schedule_id)], args=["paused", "1" if paused else "0"])
        return await self._schedule(schedule_id)

    @unavailable
    async def delete_schedule(self, schedule_id: str) -> bool:
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(k.schedule(schedule_id))
            pipe.delete(k.schedule_runs(schedule_id), k.deliveries(schedule_id))
            pipe.zrem(k.SCHEDULES, schedule_id)
            existed, _, _ = await pipe.execute()
        return bool(existed)

    @unavailable
    async def claim_run(self, schedule_id: str, due: datetime) -> bool:
        return bool(await self._claim_run(keys=[k.schedule(schedule_id)], args=[repr(due.timestamp())]))

    @unavailable
    async def add_run(self, schedule_id: str, due: datetime, task_id: str) -> None:
        keys = [k.schedule(schedule_id), k.schedule_runs(schedule_id)]
        await self._add_run(keys=keys, args=[repr(due.timestamp()), task_id])

    @unavailable
    async def drop_runs(self, schedule_id: str, task_ids: list[str]) -> None:
        if task_ids:
            await self.r.zrem(k.schedule_runs(schedule_id), *task_ids)

    @unavailable
    async def claim_notice(self, task_id: str) -> bool:
        return bool(await self.r.set(k.notice(task_id), "1", nx=True, ex=self.retention.ttl))

    @unavailable
    async def record_delivery(self, subject: str, delivery: dict[str, Any]) -> None:
        key = k.deliveries(subject)
        known = await self.r.hget(key, delivery["id"])
        seq = json.loads(known)["seq"] if known else int(await self.r.hget(key, "seq") or 0) + 1
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={delivery["id"]: json.dumps({**delivery, "seq": seq}), "seq": seq})
            pipe.expire(key, self.retention.ttl)
            await pipe.execute()
        if not known and seq > MAX_DELIVERIES:  # the oldest goes (sequence numbers have no gaps)
            kept = await self.r.hgetall(key)
            old = [
                i
                for i, data in kept.items()
                if i != "seq" and json.loads(data)["seq"] <= seq - MAX_DELIVERIES
            ]
            if old:
                await self.r.hdel(key, *old)

    @unavailable
    async def deliveries(self, subject: str) -> list[dict[str, Any]]:
        kept = await self.r.hgetall(k.deliveries(subject))
        found = [json.loads(data) for delivery_id, data in kept.items() if delivery_id != "seq"]
        return [{k_: v for k_, v in d.items() if k_ != "seq"} for d in sorted(found, key=lambda d: d["seq"])]

    @unavailable
    async def set_task_webhook(self, task_id: str, spec: dict[str, str], secret: str) -> bool:
        if not await self.r.exists(k.task(task_id)):
            return False
        await self.r.hset(k.WEBHOOKS, task_id, json.dumps({"spec": spec, "secret": secret}))
        return True

    @unavailable
    async def task_webhooks(self) -> list[str]:
        return list(await self.r.hkeys(k.WEBHOOKS))

    @unavailable
    async def take_task_webhook(self, task_id: str) -> tuple[dict[str, str], str] | None:
        async with self.r.pipeline(transaction=True) as pipe:  # read and removed in one step
            pipe.hget(k.WEBHOOKS, task_id)
            pipe.hdel(k.WEBHOOKS, task_id)
            found, removed = await pipe.execute()
        if not removed or found is None:
            return None
        taken = json.loads(found)
        return taken["spec"], taken["secret"]

    @unavailable
    async def set_changes(self, task_id: str, changes: dict[str, Any]) -> None:
        await self._update(keys=[k.task(task_id)], args=["changes", json.dumps(changes)])

    # -- work queue ---------------------------------------------------------------------------

    @unavailable
    async def claim_chunk(self, worker: str) -> Chunk | None:
        while True:
            entry = await self._reclaim() or await self._read_new(0) or await self._fed_entry()
            if entry is None:
                return None
            chunk = await self._load(*entry)
            if chunk is not None:
                return chunk

    async def _fed_entry(self) -> tuple[str, dict[str, str], int] | None:
        """Feed the next lane's chunk and read it (or any entry); with nothing to feed, wait for a
        new task's first chunk for up to block_ms."""
        fed = await self._feed(keys=[k.LANES, k.QUEUE], args=[k.PREFIX])
        return await self._read_new(0 if fed else self.block_ms)

    async def _read_new(self, block_ms: int) -> tuple[str, dict[str, str], int] | None:
        try:
            reply = await self.r.xreadgroup(
                k.GROUP, self.consumer, {k.QUEUE: ">"}, count=1, block=block_ms or None
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._ensure_group()  # Redis came back empty, or started after us
            return None
        if not reply:
            return None
        entry_id, fields = reply[0][1][0]
        return entry_id, fields, 1

    async def _reclaim(self) -> tuple[str, dict[str, str], int] | None:
        if time.monotonic() - self._last_reclaim < RECLAIM_EVERY_S:
            return None
        self._last_reclaim = time.monotonic()
        try:
            reply = await self.r.xautoclaim(
                k.QUEUE, k.GROUP, self.consumer, self.reclaim_idle_ms, "0-0", count=1
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            return None
        claimed = reply[1]
        if not claimed:
            return None
        self._last_reclaim = 0.0  # there may be more orphans: look again at the next claim
        entry_id, fields = claimed[0]
        pending = await self.r.xpending_range(k.QUEUE, k.GROUP, min=entry_id, max=entry_id, count=1)
        return entry_id, fields, int(pending[0]["times_delivered"]) if pending else 2

    async def _load(self, entry_id: str, fields: dict[str, str], deliveries: int) -> Chunk | None:
        task_id, number = fields["task"], int(fields["chunk"])
        state = await self._start(keys=[k.task(task_id), k.kinds(task_id)], args=[_now(), number])
        if state is None or state[0] == TaskStatus.CANCELLED:
            await self._ack(entry_id)  # the task was deleted or cancelled meanwhile
            return None
        start = int(await self.r.hget(k.starts(task_id), str(number)) or 0)
        if state[5]:  # being cancelled: its URLs get cancelled results, none is probed
            await self._cancel_chunk(task_id, number, start, entry_id)
            return None
        urls = (await self.r.get(k.chunk(task_id, number)) or "").split("\n")
        options = with_secrets(state[1], state[4] or None)
        chunk = Chunk(task_id, number, start, urls, options, deliveries, entry_id)
        if state[2]:  # a crawl task's chunk: its kind, depth and the crawl's spec
            kind, _, depth = (state[3] or ChunkKind.LINKS.value + " 0").partition(" ")
            chunk.kind, chunk.depth = ChunkKind(kind), int(depth)
            chunk.crawl = CrawlSpec.from_dict(json.loads(state[2]))
        if deliveries > self.max_deliveries:
            await self._dead_letter(chunk)
            return None
        return chunk

    async def _dead_letter(self, chunk: Chunk) -> None:
        await self.r.xadd(k.DEAD, {"task": chunk.task_id, "chunk": str(chunk.number),
                                   "deliveries": str(chunk.deliveries), "at": _now()})  # fmt: skip
        await self._run_complete(
            chunk.task_id, chunk.number, chunk.start, chunk.receipt, dead_letter_results(chunk)
        )

    async def _ack(self, entry_id: str) -> None:
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.xack(k.QUEUE, k.GROUP, entry_id)
            pipe.xdel(k.QUEUE, entry_id)
            await pipe.execute()

    async def _run_complete(
        self, task_id: str, number: int, start: int, receipt: str, results: list[ProbeResult],
        final: bool = True,
    ) -> int:  # fmt: skip
        """Results of chunk `number` (starting at input index `start`) in one batch, the ones whose
        index has none yet: COMPLETE_CHUNK refuses a batch naming an index that has, with those
        indexes, and the batch goes again without them (each refusal takes one index at least
        out, so it ends). The chunk's last results (`final`) then compact its batches."""
        keys = [k.task(task_id), k.QUEUE]
        ttl, last = str(self.retention.ttl), "1" if final else "0"
        args: list[str | bytes] = [k.task_prefix(task_id), k.GROUP, receipt, str(number), ttl, _now(), last]
        if not await self._has(task_id, k.BATCHES_FIELD):
            return int(await self._legacy_complete(keys=keys, args=args + legacy_args(results)))
        stored = first_per_index(encode(results))
        for _ in range(len(stored) + 1):
            reply = await self._complete(keys=keys, args=args + batch_args(start, stored))
            if not isinstance(reply, list):
                if final:
                    await self._compact(task_id, start)
                return int(reply)
            done = {int(index) for index in reply}
            stored = [item for item in stored if item.index not in done]
        raise AssertionError("a batch refused with none of its indexes taken out")

    async def _compact(self, task_id: str, start: int) -> None:
        """A complete chunk's batches replaced by one per class (packed.classes) and segment
        (packed.segments): compressed as a whole, a chunk's results written a few at a time cost
        what they cost written at once; a filter of a rare class reads its few results, not the
        chunk; a page of a large chunk reads a segment of it. Left as they are when already so,
        or when another write moved them meanwhile (COMPACT_CHUNK checks)."""
        found = await self._read(task_id, k.order(task_id), str(start), None, 1)
        if not found or found[0].start != start:
            return
        chunk = found[0]
        batches = [unpack(value) for value in chunk.values]
        rows = sorted(row for each in batches for row in each)
        if (
            all(map(compact, chunk.values))
            and rows
            and rows[-1][0] - start < SEGMENT
            and len(classes(rows)) == len(batches) == sum(len(classes(each)) for each in batches)
        ):
            return  # compact already (one segment, one class a batch, each batch another class)
        args: list[str | bytes] = [k.task_prefix(task_id), str(start), str(len(chunk.ids)), *chunk.ids]
        for first, part in segments(rows, start):
            for keys, of_class in classes(part).items():
                args += [str(first), pack(of_class), str(len(keys)), *keys]
        await self._compact_chunk(keys=[k.task(task_id)], args=args)

    async def _read(
        self, task_id: str, index: str, low: str, after: int | None, chunks: int
    ) -> list[Batches]:
        keys = [index, k.order(task_id), k.batches(task_id)]
        reply = await self._read_batches(keys=keys, args=[low, "" if after is None else str(after), chunks])
        return read_batches(reply)

    @unavailable
    async def store_results(self, chunk: Chunk, results: list[ProbeResult]) -> None:
        await self._run_complete(
            chunk.task_id, chunk.number, chunk.start, chunk.receipt, results, final=False
        )

    @unavailable
    async def complete_chunk(self, chunk: Chunk, results: list[ProbeResult]) -> None:
        await self._run_complete(chunk.task_id, chunk.number, chunk.start, chunk.receipt, results)

    @unavailable
    async def discover(self, chunk: Chunk, index: int, page_url: str, found: list[Found]) -> None:
        """Planned here (frontier.plan_discovery) from a read of the crawl's state, applied by
        DISCOVER, which writes only while that state is unchanged: else read and plan again."""
        owner = await self._charged(chunk)
        day = Window.today()
        usage = k.usage(owner, day.name) if owner else None
        keys = [k.task(chunk.task_id), k.QUEUE, k.LANES, *([usage] if usage else [])]
        for _ in range(DISCOVER_TRIES):
            args = await self._discovery(chunk, index, page_url, found, usage, day.ttl())
            if args is None or await self._discover(keys=keys, args=args) != -2:
                return
        raise StoreUnavailable(
            f"the crawl's frontier kept moving: {DISCOVER_TRIES} plans of {page_url} refused"
        )

    async def _discovery(
        self, chunk: Chunk, index: int, page_url: str, found: list[Found], usage: str | None, ttl: int
    ) -> list[str] | None:
        """DISCOVER's arguments: the plan of one page's links, from the crawl's state as read now
        (`usage`: the owner's usage counter when limited, kept `ttl` seconds); None when the task
        no longer takes any (over, or a page expanded before): the lease is then renewed alone."""
        task_id = chunk.task_id
        urls = list({link.url: None for link in found})
        async with self.r.pipeline(transaction=False) as pipe:  # `pages` first: any later write moves it
            pipe.hmget(k.task(task_id), "pages", "total", "scheduled", "chunk_size", "crawl", "status")
            pipe.sismember(k.expanded(task_id), str(index))
            pipe.hmget(k.seen(task_id), urls or [""])
            if usage:
                pipe.get(usage)
            (pages, total, scheduled, size, crawl, status), expanded, seen, *counter = await pipe.execute()
        if crawl is None or expanded or status not in LIVE:
            await self.heartbeat([chunk])
            return None
        known = {url: int(idx) for url, idx in zip(urls, seen, strict=False) if idx is not None}
        spec = CrawlSpec.from_dict(json.loads(crawl))
        used = (counter[0] or "0") if usage else ""
        left = max(0, (spec.urls_per_day or 0) - int(used)) if usage else None
        plan = plan_discovery(found, known, int(total), int(scheduled), spec, int(size), left)
        indexes = list(plan.places)
        old = await self.r.hmget(k.sources(task_id), indexes) if indexes else []
        sources = [
            part
            for (idx, linked), text in zip(plan.places.items(), old, strict=True)
            for part in (str(idx), merged_sources(text, page_url, linked))
        ]
        chunks = [str(part) for kind, start, stop in plan.chunks for part in (kind.value, start, stop)]
        return [
            k.task_prefix(task_id), str(index), str(chunk.depth + 1), k.PREFIX, task_id, k.GROUP,
            chunk.receipt, self.consumer, pages, used, str(ttl), str(plan.scheduled),
            str(len(plan.new)), str(len(plan.chunks)), str(len(indexes)), *plan.new, *chunks, *sources,
        ]  # fmt: skip

    async def _charged(self, chunk: Chunk) -> str | None:
        """The owner whose daily quota a crawl's discoveries are charged to (None: not limited)."""
        if chunk.crawl is not None and chunk.crawl.urls_per_day is None:
            return None  # the spec came with the chunk: no round trip
        owner: str | None = await self.r.hget(k.task(chunk.task_id), "owner")
        return owner or None

    @unavailable
    async def drop_chunk(self, chunk: Chunk) -> str | None:
        reason = await self._drop(keys=[k.task(chunk.task_id), k.QUEUE], args=[k.GROUP, chunk.receipt])
        return str(reason) if reason else None

    @unavailable
    async def heartbeat(self, chunks: Iterable[Chunk]) -> None:
        receipts = [c.receipt for c in chunks]
        if receipts:  # resets their idle time without counting a delivery
            await self.r.xclaim(k.QUEUE, k.GROUP, self.consumer, 0, receipts, justid=True)

    @unavailable
    async def live_tasks(self, task_ids: Iterable[str]) -> set[str]:
        ids = list(task_ids)
        async with self.r.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hget(k.task(task_id), "status")
            statuses = await pipe.execute()
        return {t for t, s in zip(ids, statuses, strict=True) if s is not None and s != TaskStatus.CANCELLED}

    @unavailable
    async def stats(self) -> dict[str, Any]:
        ids = await self.r.zrange(k.TASKS, 0, -1)
        async with self.r.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hget(k.task(task_id), "status")
            for task_id in ids:
                pipe.llen(k.todo(task_id))
            pipe.xlen(k.QUEUE)
            pipe.xpending(k.QUEUE, k.GROUP)  # NOGROUP (a Redis that came back empty): none held
            *replies, entries, held = await pipe.execute(raise_on_error=False)
        statuses, todo = replies[: len(ids)], replies[len(ids) :]
        tasks: dict[str, int] = {}
        for status in statuses:
            if status is not None:
                tasks[status] = tasks.get(status, 0) + 1
        # Waiting for a worker: on the stream and not yet delivered (an acknowledged entry is
        # deleted, so the held ones are the pending ones), or still in a task's `todo` list.
        pending = 0 if isinstance(held, ResponseError) else int(held["pending"])
        return {"tasks": tasks, "queued_chunks": int(entries) - pending + sum(todo)}


def merged_sources(stored: str | None, page_url: str, added: list[Linked]) -> str:
    """A URL's stored sources JSON with its links on one more page (frontier.merge_sources)."""
    return orjson.dumps(
        merge_sources(None if stored is None else orjson.loads(stored), page_url, added)
    ).decode()
