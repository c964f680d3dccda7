"""The store interface: tasks, their URLs, results, the chunk work queue and progress.

Every implementation passes tests/store/test_contract.py. The API and the worker only ever see
this interface, so SQLite (single node) and Redis (distributed) are interchangeable.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import hashlib
import json
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import islice
from typing import TYPE_CHECKING, Any

import orjson

from linkprobe.changes import Seen
from linkprobe.engine import ErrorKind, ProbeOptions, ProbeResult, failed
from linkprobe.engine.outcome import Outcome, classify
from linkprobe.frontier import ChunkKind, CrawlSpec, Found
from linkprobe.store.byurl import sorted_by_url
from linkprobe.store.scheduled import NewSchedule, ScheduleRecord

if TYPE_CHECKING:  # store.accounts imports the settings (pydantic), which `linkprobe crawl` never loads
    from linkprobe.store.accounts import Window


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    READY = "ready"  # every URL has its result (broken ones included: a task itself never fails)
    CANCELLED = "cancelled"


TERMINAL = frozenset({TaskStatus.READY, TaskStatus.CANCELLED})
LIVE = (TaskStatus.PENDING, TaskStatus.RUNNING)  # a task that still wants work (and keeps its secrets)


@dataclass(slots=True, frozen=True)
class Retention:
    """The one retention rule of both stores: finished tasks only. A pending or running task is
    kept whatever its age; a task that ended (TERMINAL) goes `seconds` after its `finished_at`
    (SQLite: purged by `cutoff`; Redis: every key of the task expires `seconds` after the
    transition that ends it, and none carries a TTL before)."""

    seconds: float

    def cutoff(self, now: datetime) -> datetime:
        """Tasks that finished before this have expired."""
        return now - timedelta(seconds=self.seconds)

    @property
    def ttl(self) -> int:
        """Whole seconds, at least 1 (Redis EXPIRE)."""
        return max(1, int(self.seconds))


@dataclass(slots=True)
class NewTask:
    name: str | None = None
    description: str | None = None
    options: ProbeOptions = field(default_factory=ProbeOptions)
    owner: str | None = None  # the API key id that created the task (None: no authentication)
    crawl: CrawlSpec | None = None  # a crawl task: its URLs grow as pages are fetched
    # Where each input URL was found (documents): input index -> {"total": n, "places":
    # [{"document": d, "line": l}, ...]} (extract.Sources.to_dict()). Results carry it as `sources`.
    # Each (input index, its sources: a dict, or its JSON as an orjson.Fragment), read once, in
    # index order and in batches, when the task is stored.
    sources: Iterable[tuple[int, Any]] | None = None
    rerun_of: str | None = None  # the task this one runs again (its inputs and options)
    schedule: str | None = None  # the schedule this task is a run of
    sources_of: str | None = None  # a re-run of documents: the task whose sources it keeps (same URLs)


@dataclass(slots=True)
class TaskRecord:
    id: str
    name: str | None
    description: str | None
    options: ProbeOptions  # as stored: secret values redacted (split_secrets)
    status: TaskStatus
    total: int
    done: int
    ok: int  # done results by outcome (ProbeResult.outcome): ok, broken, unsupported, cancelled
    broken: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    by_status: dict[str, int] = field(default_factory=dict)
    by_error: dict[str, int] = field(default_factory=dict)
    latency: dict[str, int] = field(default_factory=dict)  # bucket upper bound (ms) or "+Inf" -> count
    owner: str | None = None
    crawl: CrawlSpec | None = None
    pages: int = 0  # crawl tasks: pages fetched so far (each page counted once, by discover)
    unsupported: int = 0
    cancelled: int = 0
    rerun_of: str | None = None
    schedule: str | None = None
    # The change counts against the previous run, once computed (Store.set_changes): {"since":
    # task id, "broke": n, ...}; None until then.
    changes: dict[str, Any] | None = None


@dataclass(slots=True)
class Chunk:
    """A slice of one task's URLs, claimed by one worker. `receipt` identifies the delivery.

    Its URLs are the task's from `start` on, consecutive, unless `indexes` gives their input
    indexes: a host share of a chunk (SQLite, `linkprobe serve` with several worker processes:
    each process probes the URLs of its hosts, see SQLiteStore). Redis chunks are always
    consecutive."""

    task_id: str
    number: int
    start: int
    urls: list[str]
    options: ProbeOptions  # with the task's secret values
    deliveries: int = 1
    receipt: str = ""
    kind: ChunkKind = ChunkKind.LINKS
    depth: int = 0  # crawl: the depth of this chunk's URLs (the start page is 0)
    crawl: CrawlSpec | None = None  # the task's crawl spec, for crawl tasks
    indexes: list[int] | None = None  # each URL's input index, when not consecutive from `start`

    @property
    def positions(self) -> Sequence[int]:
        """The input index of each of `urls`."""
        return range(self.start, self.start + len(self.urls)) if self.indexes is None else self.indexes


def fold(text: str) -> str:
    """How a URL search folds case, on every store: Unicode case folding (`ärger` finds `Ärger`)."""
    return text.casefold()


def url_has(url: str, needle: str) -> bool:
    return fold(needle) in fold(url)


def redirected(data: Mapping[str, Any], wanted: str) -> bool:
    """ResultFilter.redirect on a stored result: "any", or its outcomes.Redirect (first hop)."""
    from linkprobe.outcomes import redirect_of_dict  # not at import: `linkprobe crawl` needs none of it

    found = redirect_of_dict(data)
    return found is not None and wanted in ("any", found)


@dataclass(slots=True, frozen=True)
class ResultFilter:
    """Which results a page or a stream holds: every field given must match. `matches` is the
    meaning, declared once; a store narrows by what it indexes (`indexed`: SQLite columns, Redis
    sorted sets named by the same count keys) and checks the rest with the same functions."""

    outcome: str | None = None  # an Outcome word (ok, broken, unsupported, cancelled)
    error_kind: str | None = None
    status_code: int | None = None  # as count_key: a result with an error is counted by it
    url_contains: str | None = None  # a substring of the input URL, case folded (`fold`)
    # Results that redirected: "any", or by the first hop (outcomes.Redirect): "permanent" (301,
    # 308) or "temporary". Derived from the stored result's `redirects`; no new column or index.
    redirect: str | None = None

    @property
    def indexed(self) -> str:
        """The narrowest count key this filter selects by ("all" when none): the one index a
        store scans. The other fields are checked on each result it reads (`matches`)."""
        if self.error_kind is not None or self.status_code is not None:
            return count_key(self.error_kind, self.status_code)
        return "all" if self.outcome is None else outcome_key(Outcome(self.outcome))

    def matches(self, data: Mapping[str, Any]) -> bool:
        kind = (data.get("error") or {}).get("kind")
        return (
            (self.outcome is None or classify(data["ok"], kind) == self.outcome)
            and (self.error_kind is None or kind == self.error_kind)
            and (
                self.status_code is None
                or count_key(kind, data.get("status_code")) == status_key(self.status_code)
            )
            and (not self.url_contains or url_has(data["url"], self.url_contains))
            and (self.redirect is None or redirected(data, self.redirect))
        )


@dataclass(slots=True, frozen=True)
class DeliveryPolicy:
    """When a claimed chunk counts as orphaned, and how often it may be delivered before it is
    dead-lettered (its URLs then get an `internal` error result, so the task still ends)."""

    reclaim_idle_s: float = 30.0
    max_deliveries: int = 5


def with_sources(row: str, sources: str | None) -> str:
    """A result's JSON text with its sources' JSON added (text, to leave the result unparsed)."""
    return row if sources is None else f'{row[:-1]},"sources":{sources}}}'


def split_secrets(options: ProbeOptions) -> tuple[str, str | None]:
    """The options' stored form (their JSON, header names kept, values redacted) and the secret
    values as JSON (None when there are none). A store keeps the secrets apart from the task's
    options, hands them to workers with its chunks, and drops them in the transition that ends
    the task."""
    secrets = options.secrets()
    return options.redacted().to_json(), (json.dumps(secrets) if secrets else None)


def stored_options(text: str) -> ProbeOptions:
    """A task's options as stored (split_secrets), read back through the declaration's checks."""
    return ProbeOptions.from_json(text)


def split_body_secrets(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A task body (a schedule's, options as JSON) with its options' secret values split off, as
    split_secrets does for a task."""
    if not body.get("options"):
        return body, None
    text, secrets = split_secrets(ProbeOptions.of(body["options"]))
    return {**body, "options": json.loads(text)}, secrets


MAX_DELIVERIES = 100  # webhook deliveries kept per schedule or task, the newest


def cache_key(options: ProbeOptions) -> str:
    """The effective options a reused result must have been probed with: a task's options (header
    values redacted: the names count) without max_age, as a digest."""
    effective = dataclasses.replace(options.redacted(), max_age=0.0).to_json()
    return hashlib.sha256(effective.encode()).hexdigest()[:32]


@dataclass(slots=True)
class Reused(ProbeResult):
    """A result of another task's, reused under options.max_age as it was (its checked_at too): its
    stored form says whose (`cached_from`), as `check --cache` says which file."""

    cached_from: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**ProbeResult.to_dict(self), "cached_from": self.cached_from}


def cacheable(results: Iterable[ProbeResult]) -> list[ProbeResult]:
    """The results another task may reuse: ok ones, as `check --cache` keeps (a broken link is
    probed again, so a fix shows on the next run), and not reused ones (kept as first probed)."""
    return [r for r in results if r.outcome is Outcome.OK and not isinstance(r, Reused)]


def with_secrets(text: str, secrets: str | None) -> ProbeOptions:
    """A chunk's options: the stored ones with the task's secret values put back."""
    options = ProbeOptions.from_json(text)
    return dataclasses.replace(options, **json.loads(secrets)) if secrets else options


def lane_of(task: NewTask, task_id: str) -> str:
    """The round-robin key: the task's owner once tasks have owners, the task itself until then."""
    owner = getattr(task, "owner", None)
    return f"owner:{owner}" if owner else f"task:{task_id}"


def status_key(status_code: int | None) -> str:
    return f"s:{status_code}"


def count_key(error_kind: str | None, status_code: int | None) -> str:
    """The one class of a result, for counts and filters: `e:<kind>` when it has an error (even with
    a status, as a redirect loop has), else `s:<status>`. `?status_code=` and `by_status` agree."""
    return f"e:{error_kind}" if error_kind else status_key(status_code)


def outcome_key(outcome: Outcome) -> str:
    return f"o:{outcome.value}"


def count_keys(result: ProbeResult) -> tuple[str, ...]:
    """Every counter a stored result adds one to (and, on Redis, every index it joins besides
    `all`): its outcome `o:<word>`, its class (count_key) and, when it was timed, its latency
    bucket `l:<bound>`. The one place that decides how a result is counted, for both stores."""
    kind = None if result.error is None else result.error.kind.value
    keys = (outcome_key(result.outcome), count_key(kind, result.status_code))
    bucket = latency_key(result.elapsed_ms, result.attempts)
    return keys if bucket is None else (*keys, bucket)


@dataclass(slots=True, frozen=True)
class Stored:
    """A result as both stores write it, encoded once on the caller's thread: its input index,
    the counters it adds to (count_keys) and its JSON (ProbeResult.to_json, RESULT_FIELDS)."""

    index: int
    keys: tuple[str, ...]
    json: str


def encode(results: Iterable[ProbeResult]) -> list[Stored]:
    return [Stored(r.index, count_keys(r), r.to_json()) for r in results]


def tally(stored: Iterable[Stored]) -> dict[str, int]:
    """The counts `stored` adds, per count key."""
    counts: dict[str, int] = {}
    for item in stored:
        for key in item.keys:
            counts[key] = counts.get(key, 0) + 1
    return counts


def outcome_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """A task's results by outcome word, from its counts (zero for an outcome it has none of)."""
    return {o.value: int(counts.get(outcome_key(o), 0)) for o in Outcome}


def record_counts(counts: Mapping[str, int]) -> dict[str, Any]:
    """The TaskRecord fields its counts make: outcomes, by_status, by_error, latency."""
    return {
        **outcome_counts(counts),
        "by_status": {key[2:]: int(n) for key, n in counts.items() if key.startswith("s:")},
        "by_error": {key[2:]: int(n) for key, n in counts.items() if key.startswith("e:")},
        "latency": latency_of(counts),
    }


# Upper bounds (ms) of the latency buckets a task counts its probed results in, "+Inf" beyond.
LATENCY_BOUNDS_MS = (10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
LATENCY_KEYS = (*(f"l:{bound}" for bound in LATENCY_BOUNDS_MS), "l:+Inf")


def latency_key(elapsed_ms: float, attempts: int) -> str | None:
    """The latency bucket of a result's elapsed_ms (kept beside the count_key classes as
    `l:<bound>`), or None for a URL never attempted (invalid, cancelled, dead-lettered): no timing."""
    return LATENCY_KEYS[bisect_left(LATENCY_BOUNDS_MS, elapsed_ms)] if attempts else None


def latency_of(counts: Mapping[str, int]) -> dict[str, int]:
    """A task's latency histogram from its counts: every bucket by upper bound, "+Inf" last."""
    return {key[2:]: int(counts.get(key, 0)) for key in LATENCY_KEYS}


def cancelled_results(missing: Iterable[tuple[int, str]]) -> list[ProbeResult]:
    """The results of the (index, URL) pairs a cancel leaves without one."""
    return [failed(url, idx, ErrorKind.CANCELLED, "the task was cancelled") for idx, url in missing]


def dead_letter_results(chunk: Chunk) -> list[ProbeResult]:
    message = f"chunk dead-lettered after {chunk.deliveries} deliveries (its worker kept dying)"
    return [
        failed(url, i, ErrorKind.INTERNAL, message)
        for i, url in zip(chunk.positions, chunk.urls, strict=True)
    ]


STREAM_PAGE = 1000  # results read per step of a stream


def page_of(rows: list[tuple[int, str]], limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """A results page from up to limit + 1 (index, JSON) rows: the items and the next cursor."""
    return [orjson.loads(row) for _, row in rows[:limit]], (rows[limit - 1][0] if len(rows) > limit else None)


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""


@dataclass(slots=True, frozen=True)
class Quota:
    """What admits a new task of a limited owner: the API decides the limits and windows, the store
    checks them and counts the task in the same transaction (SQLite) or script (Redis) that
    creates it, so concurrent submissions can never pass a limit together. A submission answered
    with an existing task (its Idempotency-Key) is not counted at all."""

    owner: str
    urls: int  # charged to the day's counter
    tasks_in_flight: int
    submissions_per_minute: int
    urls_per_day: int
    minute: Window
    day: Window


class QuotaExceeded(Exception):
    """create_task refused a task: `limit` is "in_flight", "minute" or "day", `count` what the
    owner had (tasks in flight, submissions this minute, URLs today)."""

    def __init__(self, limit: str, count: int) -> None:
        super().__init__(f"{limit} quota: {count}")
        self.limit = limit
        self.count = count


async def batches_off_loop(urls: Iterable[str], size: int) -> AsyncIterator[list[str]]:
    """`urls` in lists of up to `size`, each pulled on a worker thread: a lazy iterable parses a
    spooled body as it goes (CPU work that must hold neither the event loop nor a store thread)."""
    iterator = iter(urls)
    while batch := await asyncio.to_thread(lambda: list(islice(iterator, size))):
        yield batch


class Store(abc.ABC):
    """Async store. Methods raise linkprobe.store.errors.StoreUnavailable when the backend is down."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create the schema, requeue work orphaned by a crash."""

    def lock(self) -> None:  # noqa: B027 (optional hook: only a file store has one owner)
        """Claim the store for this process, or raise StoreLocked. open() calls it too."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    @abc.abstractmethod
    async def create_task(
        self, task: NewTask, urls: Iterable[str], chunk_size: int, idempotency: tuple[str, str] | None = None,
        quota: Quota | None = None,
    ) -> tuple[TaskRecord, bool]:  # fmt: skip
        """Store a task and its URLs durably, split into chunks of `chunk_size`.

        With a `quota`, the task is admitted or refused (QuotaExceeded, nothing stored, nothing
        counted) atomically with its creation; a replay of an idempotency key is never charged.
        The URLs are written in batches before the task becomes visible, so reads of other tasks
        are served between them.

        Secret option values (split_secrets) are kept apart while the task runs: its options read
        back redacted, chunks carry the real values, and the values are gone from the store once
        the task ends (ready, cancelled, error, dead-lettered), in the transition that ends it.

        `urls` may be a lazy iterable (a spooled upload): it is consumed once. `idempotency` is
        (key, body fingerprint). Returns (task, created); a replay returns the original task with
        created False; a known key with another fingerprint raises IdempotencyConflict.

        A crawl task (`task.crawl`) ignores `urls`: its one URL is `task.crawl.start`, as given
        (normalise it before), which is also the first entry of its seen-set.
        """

    @abc.abstractmethod
    async def get_task(self, task_id: str) -> TaskRecord | None: ...

    @abc.abstractmethod
    async def list_tasks(
        self, status: TaskStatus | None, cursor: str | None, limit: int, owner: str | None = None
    ) -> tuple[list[TaskRecord], str | None]:
        """Newest first (only `owner`'s tasks when given); the page and the next page's cursor."""

    @abc.abstractmethod
    async def tasks_in_flight(self, owner: str) -> int:
        """How many of `owner`'s tasks are pending or running (read from an owner index)."""

    @abc.abstractmethod
    async def delete_task(self, task_id: str) -> bool:
        """Remove the task, its URLs, results and queued chunks. False if unknown."""

    @abc.abstractmethod
    async def cancel_task(self, task_id: str) -> TaskRecord | None:
        """Stop a task but keep it: URLs without a result get a `cancelled` result."""

    @abc.abstractmethod
    async def page_rows(
        self, task_id: str, flt: ResultFilter, after: int | None, limit: int
    ) -> list[tuple[int, str]]:
        """Up to `limit` matching results after input index `after`, in input order, as (index,
        JSON text); a result of a task with sources (documents, crawls) has them under "sources".
        What a store reads; the paging over it (`results`, `stream_results`) is shared."""

    async def results(
        self, task_id: str, flt: ResultFilter, after: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Results in input order after index `after`; returns the page and the next cursor."""
        return page_of(await self.page_rows(task_id, flt, after, limit + 1), limit)

    async def stream_results(self, task_id: str, flt: ResultFilter) -> AsyncIterator[str]:
        """Every matching result as its JSON text, in input order, STREAM_PAGE at a time."""
        after: int | None = None
        while rows := await self.page_rows(task_id, flt, after, STREAM_PAGE):
            for _, row in rows:
                yield row
            after = rows[-1][0]

    @abc.abstractmethod
    def input_urls(self, task_id: str) -> AsyncIterator[list[str]]:
        """The task's input URLs in input order, a batch at a time (a re-run's input)."""

    def seen_by_url(self, task_id: str, after: str | None = None) -> AsyncIterator[Seen]:
        """What each URL of the task's results saw (changes.Seen), in ascending URL order, each
        URL once (its first input index), only URLs after `after`; memory does not grow with the
        task. This default sorts the results externally (store.byurl); a store with an index in
        URL order reads that instead."""
        return sorted_by_url(self.stream_results(task_id, ResultFilter()), after)

    @abc.abstractmethod
    async def set_changes(self, task_id: str, changes: dict[str, Any]) -> None:
        """Keep a task's change counts against its previous run (TaskRecord.changes)."""

    @abc.abstractmethod
    async def cached(self, task_id: str, urls: list[str], max_age: float) -> dict[str, tuple[str, str]]:
        """Results of `urls` that a task of this task's owner, with the same effective options
        (cache_key), probed at most `max_age` seconds ago: URL -> (that task's id, result JSON)."""

    @abc.abstractmethod
    async def remember(self, task_id: str, results: list[ProbeResult]) -> None:
        """Keep the task's freshly probed results (cacheable ones) for `cached`: the newest per
        owner, effective options and URL, until the retention has passed."""

    # -- schedules (linkprobe.schedules has the rules) --

    @abc.abstractmethod
    async def create_schedule(self, schedule: NewSchedule) -> ScheduleRecord:
        """Store a schedule; its body's header values are kept apart (ScheduleRecord.secrets)
        until it is deleted, and shown redacted."""

    @abc.abstractmethod
    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None: ...

    @abc.abstractmethod
    async def list_schedules(self, owner: str | None) -> list[ScheduleRecord]:
        """Oldest first; only `owner`'s when given."""

    @abc.abstractmethod
    async def pause_schedule(self, schedule_id: str, paused: bool) -> ScheduleRecord | None: ...

    @abc.abstractmethod
    async def delete_schedule(self, schedule_id: str) -> bool:
        """Remove the schedule and its secrets (its runs stay, as tasks). False if unknown."""

    @abc.abstractmethod
    async def claim_run(self, schedule_id: str, due: datetime) -> bool:
        """The run lease (schedules.claim), atomically: True, and the last claimed due time moved to
        `due`, only for the one caller that moves it forward on a schedule that is not paused."""

    @abc.abstractmethod
    async def add_run(self, schedule_id: str, due: datetime, task_id: str) -> None: ...

    @abc.abstractmethod
    async def drop_runs(self, schedule_id: str, task_ids: list[str]) -> None:
        """Forget runs (their tasks are deleted by the caller: `keep`)."""

    @abc.abstractmethod
    async def claim_notice(self, task_id: str) -> bool:
        """The lease of a run's webhook notice, set if absent: True for exactly one caller."""

    @abc.abstractmethod
    async def record_delivery(self, subject: str, delivery: dict[str, Any]) -> None:
        """Keep a webhook delivery of a schedule's or a task's (`subject`: its id) as it is so far
        (by its "id"; each attempt replaces it); the newest MAX_DELIVERIES are kept."""

    @abc.abstractmethod
    async def deliveries(self, subject: str) -> list[dict[str, Any]]:
        """A schedule's or a task's webhook deliveries, oldest first."""

    @abc.abstractmethod
    async def set_task_webhook(self, task_id: str, spec: dict[str, str], secret: str) -> bool:
        """Name the webhook (webhooks.WebhookSpec as JSON, its secret) told when the task ends.
        False for an unknown task. Deleted with the task."""

    @abc.abstractmethod
    async def task_webhooks(self) -> list[str]:
        """The tasks whose webhook has not been told yet."""

    @abc.abstractmethod
    async def take_task_webhook(self, task_id: str) -> tuple[dict[str, str], str] | None:
        """A task's webhook and secret, removed in the same step: one caller gets it."""

    @abc.abstractmethod
    async def claim_chunk(self, worker: str) -> Chunk | None:
        """Take the next chunk to process, or None when the queue is empty."""

    @abc.abstractmethod
    async def store_results(self, chunk: Chunk, results: list[ProbeResult]) -> None:
        """Store some of a claimed chunk's results and move the task's progress, atomically.

        Idempotent per URL index: a result for an index that already has one is ignored, so a
        redelivered chunk never counts a URL twice. Results for a cancelled or deleted task are
        ignored. Also renews the chunk's lease.
        """

    @abc.abstractmethod
    async def complete_chunk(self, chunk: Chunk, results: list[ProbeResult]) -> None:
        """Store a chunk's last results (as store_results) and acknowledge it, atomically."""

    @abc.abstractmethod
    async def discover(self, chunk: Chunk, index: int, page_url: str, found: list[Found]) -> None:
        """Add the links found on a crawl task's fetched page (input `index` of `chunk`), atomically.

        Idempotent per page: a page already expanded (a redelivered chunk) changes nothing. Else
        the task's `pages` count goes up by one, and for each link: an URL already seen gets the
        place (page_url, line) added to its sources (capped places, counted total); a new one gets
        the next input index, its sources, and goes into a new chunk of its kind at depth
        `chunk.depth + 1` (new indexes are grouped by kind so each chunk's are consecutive; a
        PAGES link beyond `max_pages` pages becomes LINKS; beyond `max_urls` URLs, or beyond what
        the owner's `urls_per_day` quota has left today, a link is dropped, counted in the task's
        sources only if already seen). The new URLs are charged to the owner's usage counter of
        the day (the one KeyStore.take counts submissions in) in the same atomic step. `total`
        grows before the page's own result is stored, so the task cannot look finished early.
        Ignored for a cancelled or deleted task. Also renews the chunk's lease.
        """

    @abc.abstractmethod
    async def drop_chunk(self, chunk: Chunk) -> str | None:
        """Give up a claimed chunk if, at this moment, its task is cancelled or deleted.

        Decided by the store atomically: returns the reason ("cancelled" or "deleted") when the
        chunk was acknowledged unprocessed, None when the task still wants it (keep working).
        """

    @abc.abstractmethod
    async def heartbeat(self, chunks: Iterable[Chunk]) -> None:
        """Tell the store these claimed chunks are still being worked on (keeps them from reclaim)."""

    async def problem(self) -> str | None:
        """Why the store cannot serve right now (for /readyz), or None when it is ready."""
        return None if await self.ping() else "store unreachable"

    @abc.abstractmethod
    async def live_tasks(self, task_ids: Iterable[str]) -> set[str]:
        """Which of these tasks still want work (exist and are not cancelled)."""

    @abc.abstractmethod
    async def stats(self) -> dict[str, Any]:
        """{"tasks": {status: count}, "queued_chunks": n} for metrics."""
