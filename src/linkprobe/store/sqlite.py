"""The embedded store: one SQLite file in WAL mode, driven from one dedicated thread.

All statements run on a single thread with a single connection, so transactions never
interleave; the event loop never blocks on disk.

Rows go in and out in bulk: a chunk's results, a chunk's URLs and a batch of uploaded URLs are
each one JSON array and one statement (json_each / json_group_array). Python's sqlite3 releases
and retakes the GIL for every row it steps; row by row, the store thread and the event loop
fought over the GIL for every URL, which cost `linkprobe serve` about a fifth of its throughput.

With `linkprobe serve`'s worker processes, each range of a new task's URLs becomes one chunk per
process (`shares`): the URLs of the range whose host hashes to that share (engine.shards.share_of,
as `check` splits its input between processes). Each process claims its own share first (any
other when none is left), so a host's URLs meet one process, and its connections are reused
there; a share is a chunk like any other (lease, redelivery, dead letter). Chunks stay ranges of
input indexes in the table; a share's Chunk carries the indexes of its URLs (`Chunk.indexes`).

Claimed chunks hold a lease (`lease_until`), renewed by heartbeats and result writes; a chunk whose
lease ran out is delivered again, and one delivered more than `max_deliveries` times is
dead-lettered, as on Redis. The file is locked (`<db>.lock`) by the one process that serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson

from linkprobe.changes import Seen
from linkprobe.engine import ProbeResult
from linkprobe.engine.outcome import Outcome, classify
from linkprobe.engine.shards import share_of
from linkprobe.extract.document import Linked
from linkprobe.frontier import ChunkKind, CrawlSpec, Found, merge_sources, plan_discovery
from linkprobe.store.accounts import USAGE_SCHEMA, Window
from linkprobe.store.base import (
    LIVE,
    MAX_DELIVERIES,
    STREAM_PAGE,
    TERMINAL,
    Chunk,
    DeliveryPolicy,
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
    fold,
    lane_of,
    outcome_key,
    record_counts,
    redirected,
    split_body_secrets,
    split_secrets,
    stored_options,
    tally,
    with_secrets,
    with_sources,
)
from linkprobe.store.byurl import seen_from_columns
from linkprobe.store.errors import StoreLocked, StoreUnavailable
from linkprobe.store.scheduled import NewSchedule, ScheduleRecord

T = TypeVar("T")
P = ParamSpec("P")
# A new task's URLs are written this many per transaction before the task row exists (`staged`):
# the store's one thread serves other requests between them instead of after the whole upload.
STAGE_URLS = 5000
MIN_FREE_BYTES = 1 << 20  # below this the disk counts as full for /readyz
FULL_REPORTED_S = 30.0  # /readyz reports a write that failed for lack of space for this long
SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    name TEXT, description TEXT, options TEXT NOT NULL,
    status TEXT NOT NULL, total INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
    idem_key TEXT UNIQUE, fingerprint TEXT, owner TEXT, crawl TEXT, pages INTEGER NOT NULL DEFAULT 0,
    scheduled INTEGER NOT NULL DEFAULT 0, chunk_size INTEGER
);
CREATE TABLE IF NOT EXISTS urls (
    task_id TEXT NOT NULL, idx INTEGER NOT NULL, url TEXT NOT NULL, PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
    task_id TEXT NOT NULL, number INTEGER NOT NULL, start INTEGER NOT NULL, stop INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued', deliveries INTEGER NOT NULL DEFAULT 0, worker TEXT,
    lease_until REAL, kind TEXT NOT NULL DEFAULT 'links', depth INTEGER NOT NULL DEFAULT 0,
    share INTEGER, shares INTEGER, PRIMARY KEY (task_id, number)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_queued ON chunks (state);
CREATE TABLE IF NOT EXISTS lanes (lane TEXT PRIMARY KEY, turn INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead (
    task_id TEXT NOT NULL, number INTEGER NOT NULL, deliveries INTEGER NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
    task_id TEXT NOT NULL, idx INTEGER NOT NULL, outcome TEXT NOT NULL, class TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (
    task_id TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (task_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sources (
    task_id TEXT NOT NULL, idx INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (
    task_id TEXT NOT NULL, url TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (task_id, url)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS expanded (
    task_id TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS staged (task_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS schedules (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, owner TEXT, name TEXT,
    body TEXT NOT NULL, secrets TEXT, period TEXT NOT NULL, keep INTEGER NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, last_claimed REAL,
    webhook TEXT, webhook_secret TEXT
);
CREATE TABLE IF NOT EXISTS schedule_runs (
    schedule_id TEXT NOT NULL, due REAL NOT NULL, task_id TEXT NOT NULL, PRIMARY KEY (schedule_id, due)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notices (task_id TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
    subject TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (subject, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS task_webhooks (
    task_id TEXT PRIMARY KEY, spec TEXT NOT NULL, secret TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache (
    owner TEXT NOT NULL, optkey TEXT NOT NULL, url TEXT NOT NULL, task_id TEXT NOT NULL,
    checked_at REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (owner, optkey, url)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cache_task ON cache (task_id);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class ChunkState(StrEnum):
    """Where a chunk of the SQLite queue is (Redis keeps it on a stream instead)."""

    QUEUED = "queued"  # waiting for a worker (the schema's default)
    HELD = "running"  # delivered, under a lease
    DONE = "done"  # completed, dead-lettered or cancelled


QUEUED, HELD, DONE = (f"'{state.value}'" for state in ChunkState)  # as SQL literals

# Task statuses as SQL lists (TaskStatus is the declaration).
LIVE_SQL = ", ".join(f"'{status.value}'" for status in LIVE)
TERMINAL_SQL = ", ".join(f"'{status.value}'" for status in sorted(TERMINAL))
# A result's row: [idx, outcome key, class key, JSON] (base.Stored; the columns are its count keys).
RESULT_COLUMNS = "idx, outcome, class, data"


def result_rows(stored: list[Stored]) -> bytes:
    """Encoded results as one JSON array for one bulk statement (built on the caller's thread)."""
    return orjson.dumps([[s.index, s.keys[0], s.keys[1], s.json] for s in stored])


# Columns added after the first release: (table, column, declaration).
MIGRATIONS = (
    ("chunks", "lease_until", "REAL"), ("tasks", "lane", "TEXT"), ("tasks", "owner", "TEXT"),
    ("tasks", "crawl", "TEXT"), ("tasks", "pages", "INTEGER NOT NULL DEFAULT 0"),
    ("tasks", "scheduled", "INTEGER NOT NULL DEFAULT 0"), ("tasks", "chunk_size", "INTEGER"),
    ("chunks", "kind", "TEXT NOT NULL DEFAULT 'links'"), ("chunks", "depth", "INTEGER NOT NULL DEFAULT 0"),
    ("tasks", "secrets", "TEXT"), ("tasks", "rerun_of", "TEXT"), ("tasks", "changes", "TEXT"),
    ("tasks", "schedule", "TEXT"), ("chunks", "share", "INTEGER"), ("chunks", "shares", "INTEGER"),
)  # fmt: skip
# A crawl task's own tables: `seen` (URL -> input index), `expanded` (pages whose links were added);
# `sources` (input index -> where the URL was found) serves documents too.
# A task's cached results (`cache`) go with it: a deleted task's results are not reused.
TASK_TABLES = (
    "urls", "chunks", "results", "counts", "dead", "sources", "seen", "expanded", "task_webhooks", "cache",
)  # fmt: skip


def on_store_thread(
    method: Callable[Concatenate[SQLiteStore, P], T],
) -> Callable[Concatenate[SQLiteStore, P], Coroutine[Any, Any, T]]:
    """The async operation of a method written for the store's one thread: the same arguments,
    run there (SQLite errors become StoreUnavailable). Each operation is written once, as the
    method; `get_task = on_reader_thread(_get)` makes its public form."""

    async def run(store: SQLiteStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await store._run(functools.partial(method, store, *args, **kwargs))

    return run


def on_reader_thread(
    method: Callable[Concatenate[SQLiteStore, P], T],
) -> Callable[Concatenate[SQLiteStore, P], Coroutine[Any, Any, T]]:
    """As on_store_thread, for a read: run on the reader thread, with a connection of its own, in
    one read transaction (a snapshot). Under WAL a read never waits for the writer, so a task's
    view answers while a large upload is written or a purge runs."""

    async def run(store: SQLiteStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await store._read(functools.partial(method, store, *args, **kwargs))

    return run


def _sql_functions(db: sqlite3.Connection) -> None:
    """The shared filter rules (store/base.py) as SQL functions, so both stores run the same code:
    the URL search's case folding and the redirect kinds; and the count keys of older rows."""
    db.create_function("lp_has", 2, lambda url, needle: fold(needle) in fold(url), deterministic=True)
    db.create_function("lp_redirected", 2, lambda data, wanted: redirected(orjson.loads(data), wanted))
    db.create_function(
        "lp_outcome", 2, lambda ok, kind: outcome_key(classify(bool(ok), kind)), deterministic=True
    )
    db.create_function("lp_class", 2, count_key, deterministic=True)


# Results stored before they were counted by outcome: (ok, status_code, error_kind) columns.
RESULTS_BY_KEYS = """
CREATE TABLE results_keyed (
    task_id TEXT NOT NULL, idx INTEGER NOT NULL, outcome TEXT NOT NULL, class TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
INSERT INTO results_keyed
    SELECT task_id, idx, lp_outcome(ok, error_kind), lp_class(error_kind, status_code), data FROM results;
DROP TABLE results;
ALTER TABLE results_keyed RENAME TO results;
INSERT INTO counts SELECT task_id, outcome, count(*) FROM results GROUP BY task_id, outcome;
"""


class SQLiteStore(Store):
    def __init__(
        self,
        path: Path | str,
        policy: DeliveryPolicy | None = None,
        retention_s: float = 7 * 86400,
        follower: bool = False,
        share: int | None = None,
        shares: int = 1,
    ) -> None:
        self.path = Path(path)
        # A follower is a worker process of `linkprobe serve`: the serving process holds the lock
        # and did the start-up work (schema, requeue, unstage); a follower only claims and writes.
        self.follower = follower
        self.share = share  # a worker process's own host share: claimed first
        self.shares = shares  # host shares of each range of a new task's URLs (serve: its processes)
        self.policy = policy or DeliveryPolicy()
        self.retention = Retention(retention_s)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="linkprobe-sqlite")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="linkprobe-sqlite-read")
        self._db: sqlite3.Connection | None = None
        self._reading = threading.local()  # the reader thread's connection, `db` on that thread
        self._lock: int | None = None
        self._identity: tuple[int, int] | None = None
        self._next_purge = 0.0
        self._full_at = -FULL_REPORTED_S  # when a write last failed for lack of space
        self._scrub = False  # a transaction dropped secrets: checkpoint the WAL after its commit

    # -- plumbing -------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise StoreUnavailable(self._explain(exc)) from exc

    async def _read(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, self._snapshot, fn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(self._explain(exc)) from exc

    def _snapshot(self, fn: Callable[[], T]) -> T:
        """`fn` in one read transaction on the reader's connection (opened on first use)."""
        if self._db is None:
            raise StoreUnavailable("store is not open")
        if getattr(self._reading, "db", None) is None:
            self._reading.db = self._connect()
        self._reading.db.execute("BEGIN")
        try:
            return fn()
        finally:
            self._reading.db.execute("COMMIT")

    def _close_reader(self) -> None:
        if (db := getattr(self._reading, "db", None)) is not None:
            db.close()
            self._reading.db = None

    def _explain(self, exc: sqlite3.Error) -> str:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            self._full_at = time.monotonic()
            return f"disk full: cannot write {self.path} ({exc})"
        if not self.path.exists():
            return f"database file {self.path} is missing: it was removed while in use ({exc})"
        return f"SQLite store failed: {exc}"

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. SQLite rolls back on its own after some errors (a full disk):
        roll back only a transaction that is still open, so the real error is the one reported."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            self._scrub = False
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if self._scrub:
            self._scrub = False
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it, so the dropped secrets' old pages leave
        the WAL file too (secure_delete zeroes them in the database). Best effort: a reader in the
        way leaves them to a later checkpoint."""
        self.db.execute("PRAGMA busy_timeout = 1000")
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.execute("PRAGMA busy_timeout = 30000")

    def lock(self) -> None:
        """Take the file's lock, or raise StoreLocked: one serving process per database."""
        if self._lock is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(
                f"{self.path} is in use by another linkprobe process (lock {self.path}.lock is held)"
            ) from None
        self._lock = fd

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    @property
    def db(self) -> sqlite3.Connection:
        reader: sqlite3.Connection | None = getattr(self._reading, "db", None)
        if reader is not None:  # on the reader thread
            return reader
        if self._db is None:
            raise StoreUnavailable("store is not open")
        return self._db

    def _open(self) -> None:
        if self.follower:
            self._db = self._connect()
            stat = os.stat(self.path)
            self._identity = (stat.st_dev, stat.st_ino)
            return
        self.lock()  # before anything is touched: a second process must change nothing
        db = self._connect()
        db.executescript(SCHEMA + USAGE_SCHEMA)
        if "ok" in {row[1] for row in db.execute("PRAGMA table_info(results)")}:
            db.executescript(f"BEGIN; {RESULTS_BY_KEYS} COMMIT;")
        added = set()
        for table, column, declaration in MIGRATIONS:
            if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                added.add(column)
        if "secrets" in added:
            self._split_stored_secrets(db)
        db.execute("UPDATE tasks SET lane = 'task:' || id WHERE lane IS NULL")  # older databases
        db.execute("CREATE INDEX IF NOT EXISTS tasks_owner ON tasks (owner, status)")
        # A task's URLs in URL order: two runs are compared by merging their results in that order.
        db.execute("CREATE INDEX IF NOT EXISTS urls_by_url ON urls (task_id, url, idx)")
        db.execute("INSERT OR IGNORE INTO lanes (lane) SELECT DISTINCT lane FROM tasks")
        # We hold the lock: chunks still `running` belonged to a process that died. Requeued at
        # once rather than after their lease, keeping their delivery count (poison chunks still
        # end dead-lettered).
        db.execute(f"UPDATE chunks SET state = {QUEUED}, worker = NULL WHERE state = {HELD}")
        for (task_id,) in db.execute("SELECT task_id FROM staged").fetchall():  # a create cut short
            self._unstage(task_id, db)
        stat = os.stat(self.path)
        self._identity = (stat.st_dev, stat.st_ino)
        self._db = db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        db.execute("PRAGMA secure_delete=ON")  # dropped secrets are zeroed, not left in free space
        _sql_functions(db)
        return db

    def _split_stored_secrets(self, db: sqlite3.Connection) -> None:
        """Tasks stored before secrets were kept apart: their header values leave the options,
        kept apart while the task runs, gone if it has ended (then checkpointed out of the WAL)."""
        rows = db.execute(
            "SELECT id, options, status FROM tasks WHERE json_type(options, '$.headers') = 'object'"
        ).fetchall()
        for task_id, options, status in rows:
            shown, secrets = split_secrets(stored_options(options))
            live = status in LIVE
            db.execute(
                "UPDATE tasks SET options = ?, secrets = ? WHERE id = ?",
                (shown, secrets if live else None, task_id),
            )
        if rows:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def open(self) -> None:
        try:
            await self._run(self._open)
        except BaseException:
            self._unlock()
            raise

    async def close(self) -> None:
        if self._db is not None:
            await asyncio.get_running_loop().run_in_executor(self._reader, self._close_reader)
            await self._run(self.db.close)
            self._db = None
        self._reader.shutdown(wait=True)
        self._executor.shutdown(wait=True)
        self._unlock()

    def _problem(self) -> str | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return f"database file {self.path} is missing: it was removed while in use"
        if (stat.st_dev, stat.st_ino) != self._identity:
            return f"database file {self.path} was replaced while in use"
        free = shutil.disk_usage(self.path.parent).free
        if free < MIN_FREE_BYTES:
            return f"disk full: {free} bytes free for {self.path}"
        if (ago := time.monotonic() - self._full_at) < FULL_REPORTED_S:
            return f"disk full: a write to {self.path} failed for lack of space {ago:.0f}s ago"
        with self._tx() as db:  # a real write: a store that cannot write is not ready
            db.execute("INSERT OR REPLACE INTO meta VALUES ('ready_probe', ?)", (_now(),))
        return None

    async def problem(self) -> str | None:
        if self._db is None:
            return "store is not open"
        try:
            return await self._run(self._problem)
        except StoreUnavailable as exc:
            return str(exc)

    async def ping(self) -> bool:
        try:
            return await self._run(lambda: self.db.execute("SELECT 1").fetchone() == (1,))
        except StoreUnavailable:
            return False

    # -- tasks --------------------------------------------------------------------------------

    def _known(self, idempotency: tuple[str, str] | None) -> str | None:
        """The task an idempotency key already created (None: none), or IdempotencyConflict."""
        if idempotency is None:
            return None
        row = self.db.execute(
            "SELECT id, fingerprint FROM tasks WHERE idem_key = ?", (idempotency[0],)
        ).fetchone()
        if row is not None and row[1] != idempotency[1]:
            raise IdempotencyConflict(idempotency[0])
        return None if row is None else str(row[0])

    def _refusal(self, quota: Quota) -> QuotaExceeded | None:
        """The limit a new task of the owner would pass, if any (read inside the creating
        transaction; also before the URLs are written, to spare a refused upload that work)."""
        in_flight = self._in_flight(quota.owner)
        if in_flight >= quota.tasks_in_flight:
            return QuotaExceeded("in_flight", in_flight)
        minute = self._used(quota.owner, quota.minute)
        if minute + 1 > quota.submissions_per_minute:
            return QuotaExceeded("minute", minute)
        day = self._used(quota.owner, quota.day)
        if day + quota.urls > quota.urls_per_day:
            return QuotaExceeded("day", day)
        return None

    def _precheck(self, idempotency: tuple[str, str] | None, quota: Quota | None) -> str | None:
        """Before the URLs are written: a replayed key's task, or the refusal that would come."""
        if (known := self._known(idempotency)) is not None:
            return known
        if quota is not None and (refusal := self._refusal(quota)) is not None:
            raise refusal
        return None

    def _stage_start(self, task_id: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO staged VALUES (?)", (task_id,))

    def _stage(self, task_id: str, urls: list[str], start: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO urls (task_id, idx, url) SELECT ?, ? + key, value FROM json_each(?)",
                (task_id, start, orjson.dumps(urls)),
            )

    def _unstage(self, task_id: str, db: sqlite3.Connection | None = None) -> None:
        """Drop the URLs written for a task that was not created (refused, replayed, cut short)."""
        if db is None:
            with self._tx() as tx:
                self._unstage(task_id, tx)
            return
        if db.execute("SELECT 1 FROM staged WHERE task_id = ?", (task_id,)).fetchone() is None:
            return  # created after all (the create committed as its caller was cancelled): keep it
        for table in TASK_TABLES:
            db.execute(f"DELETE FROM {table} WHERE task_id = ?", (task_id,))
        db.execute("DELETE FROM staged WHERE task_id = ?", (task_id,))

    def _create(
        self, task_id: str, task: NewTask, total: int, chunk_size: int,
        idempotency: tuple[str, str] | None, quota: Quota | None,
    ) -> tuple[str, bool]:  # fmt: skip
        """The task over its staged URLs, in one transaction with its admission: the idempotency
        key looked up, the quota checked and charged."""
        key, fingerprint = idempotency or (None, None)
        lane = lane_of(task, task_id)
        crawl = None if task.crawl is None else json.dumps(task.crawl.to_dict())
        options, secrets = split_secrets(task.options)
        with self._tx() as db:
            if (known := self._known(idempotency)) is not None:
                return known, False
            if quota is not None:
                if (refusal := self._refusal(quota)) is not None:
                    raise refusal
                self._charge(quota.owner, quota.minute, 1)
                self._charge(quota.owner, quota.day, quota.urls)
            db.execute(
                "INSERT INTO tasks (id, name, description, options, status, created_at, idem_key,"
                " fingerprint, lane, owner, crawl, chunk_size, secrets, total, rerun_of, schedule)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (task_id, task.name, task.description, options, TaskStatus.PENDING.value, _now(),
                 key, fingerprint, lane, task.owner, crawl, chunk_size, secrets, total, task.rerun_of,
                 task.schedule),
            )  # fmt: skip
            db.execute("DELETE FROM staged WHERE task_id = ?", (task_id,))
            db.execute("INSERT OR IGNORE INTO lanes (lane) VALUES (?)", (lane,))
            db.executemany(
                "INSERT INTO chunks (task_id, number, start, stop, share, shares) VALUES (?, ?, ?, ?, ?, ?)",
                self._chunk_rows(task_id, total, chunk_size, 1 if task.crawl else self.shares),
            )
            if task.crawl is not None:
                self._start_crawl(task_id, task.crawl.start)
            if task.sources_of is not None:  # a re-run: the same input indexes, so the same sources
                db.execute(
                    "INSERT INTO sources SELECT ?, idx, data FROM sources WHERE task_id = ?",
                    (task_id, task.sources_of),
                )
            items = iter(task.sources or ())
            while batch := list(islice(items, 1000)):  # built a batch at a time (documents: 1M URLs)
                db.execute(
                    "INSERT INTO sources SELECT ?, value ->> 0, value -> 1 FROM json_each(?)",
                    (task_id, orjson.dumps(batch)),
                )
            if total == 0:
                self._end(task_id, TaskStatus.READY)
        return task_id, True

    @staticmethod
    def _chunk_rows(
        task_id: str, total: int, chunk_size: int, shares: int
    ) -> Iterator[tuple[str, int, int, int, int | None, int | None]]:
        """A new task's chunks: a range of `chunk_size` input indexes each, cut into `shares`
        chunks by host when there are several (a share may hold no URL: it completes at once)."""
        for n, first in enumerate(range(0, total, chunk_size)):
            stop = min(first + chunk_size, total)
            if shares == 1:
                yield task_id, n, first, stop, None, None
                continue
            for share in range(shares):
                yield task_id, n * shares + share, first, stop, share, shares

    def _start_crawl(self, task_id: str, start: str) -> None:
        """The start URL is seen, scheduled as the crawl's first page, in a `pages` chunk."""
        self.db.execute("INSERT INTO seen VALUES (?, ?, 0)", (task_id, start))
        self.db.execute("UPDATE tasks SET scheduled = 1 WHERE id = ?", (task_id,))
        self.db.execute("UPDATE chunks SET kind = 'pages' WHERE task_id = ?", (task_id,))

    async def _write_urls(self, task_id: str, urls: Iterable[str]) -> int:
        """The URLs under a task id that does not exist yet, STAGE_URLS per transaction."""
        await self._run(self._stage_start, task_id)
        total = 0
        async for batch in batches_off_loop(urls, STAGE_URLS):
            await self._run(self._stage, task_id, batch, total)
            total += len(batch)
        return total

    async def create_task(
        self, task: NewTask, urls: Iterable[str], chunk_size: int, idempotency: tuple[str, str] | None = None,
        quota: Quota | None = None,
    ) -> tuple[TaskRecord, bool]:  # fmt: skip
        task_id: str | None = await self._run(self._precheck, idempotency, quota)
        created = False
        if task_id is None:
            staged = uuid.uuid4().hex
            try:
                total = await self._write_urls(staged, [task.crawl.start] if task.crawl else urls)
                task_id, created = await self._run(
                    self._create, staged, task, total, chunk_size, idempotency, quota
                )
            finally:
                if not created:  # refused, replayed meanwhile, failed or cancelled
                    await asyncio.shield(self._run(self._unstage, staged))
        assert task_id is not None
        record = await self.get_task(task_id)
        assert record is not None
        return record, created

    def _record(self, row: sqlite3.Row | tuple[Any, ...]) -> TaskRecord:
        counts = dict(self.db.execute("SELECT key, n FROM counts WHERE task_id = ?", (row[0],)).fetchall())
        return TaskRecord(
            id=row[0], name=row[1], description=row[2], options=stored_options(row[3]),
            status=TaskStatus(row[4]), total=row[5], done=row[6], created_at=datetime.fromisoformat(row[7]),
            started_at=_time(row[8]), finished_at=_time(row[9]), owner=row[10],
            crawl=None if row[11] is None else CrawlSpec.from_dict(json.loads(row[11])), pages=row[12],
            rerun_of=row[13], changes=None if row[14] is None else json.loads(row[14]), schedule=row[15],
            **record_counts(counts),
        )  # fmt: skip

    _COLUMNS = (
        "id, name, description, options, status, total, done, created_at, started_at,"
        " finished_at, owner, crawl, pages, rerun_of, changes, schedule"
    )

    def _get(self, task_id: str) -> TaskRecord | None:
        row = self.db.execute(f"SELECT {self._COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else self._record(row)

    get_task = on_reader_thread(_get)

    def _in_flight(self, owner: str) -> int:
        (count,) = self.db.execute(
            f"SELECT count(*) FROM tasks WHERE owner = ? AND status IN ({LIVE_SQL})", (owner,)
        ).fetchone()
        return int(count)

    tasks_in_flight = on_store_thread(_in_flight)

    def _end(self, task_id: str, status: TaskStatus, only_from: TaskStatus | None = None) -> None:
        """The transition that ends a live task (ready or cancelled): its status and finished_at,
        and its secrets dropped, in the caller's transaction."""
        self.db.execute(
            f"UPDATE tasks SET status = ?, finished_at = ? WHERE id = ? AND status IN ({LIVE_SQL})"
            + ("" if only_from is None else " AND status = ?"),
            (status.value, _now(), task_id, *(() if only_from is None else (only_from.value,))),
        )
        self._forget_secrets(task_id)

    def _forget_secrets(self, task_id: str) -> None:
        """Drop an ended task's secret option values (a no-op while it runs, or without any)."""
        dropped = self.db.execute(
            "UPDATE tasks SET secrets = NULL WHERE id = ? AND secrets IS NOT NULL"
            f" AND status NOT IN ({LIVE_SQL}) RETURNING 1",
            (task_id,),
        ).fetchone()
        self._scrub = self._scrub or dropped is not None

    def _list(
        self, status: TaskStatus | None, cursor: str | None, limit: int, owner: str | None
    ) -> tuple[list[TaskRecord], str | None]:
        clauses: list[str] = ["seq < ?"]
        params: list[Any] = [int(cursor) if cursor else 2**62]
        if owner is not None:
            clauses.append("owner = ?")
            params.append(owner)
        if status is not None:
            clauses.append("status = ?")
            params.append(status.value)
        rows = self.db.execute(
            f"SELECT {self._COLUMNS}, seq FROM tasks WHERE {' AND '.join(clauses)} ORDER BY seq DESC LIMIT ?",
            (*params, limit + 1),
        ).fetchall()
        page = [self._record(row) for row in rows[:limit]]
        return page, (str(rows[limit - 1][-1]) if len(rows) > limit else None)

    async def list_tasks(
        self, status: TaskStatus | None, cursor: str | None, limit: int, owner: str | None = None
    ) -> tuple[list[TaskRecord], str | None]:
        return await self._listed(status, cursor, limit, owner)

    _listed = on_reader_thread(_list)

    def _delete(self, task_id: str) -> bool:
        with self._tx() as db:
            return self._remove(db, task_id)

    def _remove(self, db: sqlite3.Connection, task_id: str) -> bool:
        row = db.execute(
            "DELETE FROM tasks WHERE id = ? RETURNING lane, secrets IS NOT NULL", (task_id,)
        ).fetchone()
        self._scrub = self._scrub or (row is not None and bool(row[1]))  # a running task's secrets
        for table in TASK_TABLES:
            db.execute(f"DELETE FROM {table} WHERE task_id = ?", (task_id,))
        if row is not None:  # a lane with no task left goes (a lane is a task until there are owners)
            db.execute(
                "DELETE FROM lanes WHERE lane = ? AND NOT EXISTS (SELECT 1 FROM tasks WHERE lane = ?)",
                (row[0], row[0]),
            )
        return row is not None

    def _purge(self) -> int:
        """Remove the tasks the retention rule (base.Retention: finished tasks only) lets go, as
        Redis expires them, and the quota counters of ended windows (Redis expires those too)."""
        cutoff = self.retention.cutoff(datetime.now(UTC)).isoformat()
        expired = [
            str(task_id)
            for (task_id,) in self.db.execute(
                f"SELECT id FROM tasks WHERE status IN ({TERMINAL_SQL}) AND finished_at < ?", (cutoff,)
            ).fetchall()
        ]
        for task_id in expired:
            with self._tx() as db:
                self._remove(db, task_id)
        with self._tx() as db:  # the quota counters of windows that have ended, old cached results
            db.execute("DELETE FROM usage WHERE expires < ?", (time.time(),))
            db.execute("DELETE FROM cache WHERE checked_at < ?", (time.time() - self.retention.seconds,))
            db.execute("DELETE FROM notices WHERE at < ?", (time.time() - self.retention.seconds,))
        return len(expired)

    purge_expired = on_store_thread(_purge)
    delete_task = on_store_thread(_delete)

    def _cancel(self, task_id: str) -> TaskRecord | None:
        record = self._get(task_id)
        if record is None or record.status in TERMINAL:
            return record
        with self._tx() as db:  # results already stored are kept; only the rest become `cancelled`
            missing = db.execute(
                "SELECT u.idx, u.url FROM urls u LEFT JOIN results r ON r.task_id = u.task_id"
                " AND r.idx = u.idx WHERE u.task_id = ? AND r.idx IS NULL",
                (task_id,),
            ).fetchall()
            self._write_results(task_id, encode(cancelled_results(missing)))
            db.execute(f"UPDATE chunks SET state = {DONE} WHERE task_id = ?", (task_id,))
            self._end(task_id, TaskStatus.CANCELLED)
        return self._get(task_id)

    cancel_task = on_store_thread(_cancel)

    # -- results ------------------------------------------------------------------------------

    @staticmethod
    def _where(task_id: str, flt: ResultFilter, after: int | None) -> tuple[str, list[Any]]:
        """ResultFilter in SQL: its count keys on their columns, the rest by the shared rules
        (base.url_has, base.redirected) registered as SQL functions."""
        clauses, params = ["task_id = ?", "idx > ?"], [task_id, -1 if after is None else after]
        if flt.outcome is not None:
            clauses.append("outcome = ?")
            params.append(outcome_key(Outcome(flt.outcome)))
        if flt.error_kind is not None or flt.status_code is not None:
            clauses.append("class = ?")
            params.append(flt.indexed)
            if flt.error_kind is not None and flt.status_code is not None:
                clauses.append("0")  # a result is counted by its error or by its status, not both
        if flt.url_contains:
            clauses.append("lp_has(json_extract(data, '$.url'), ?)")
            params.append(flt.url_contains)
        if flt.redirect is not None:
            clauses.append("json_extract(data, '$.redirects[0]') IS NOT NULL AND lp_redirected(data, ?)")
            params.append(flt.redirect)
        return " AND ".join(clauses), params

    def _page(self, task_id: str, flt: ResultFilter, after: int | None, limit: int) -> list[tuple[int, str]]:
        where, params = self._where(task_id, flt, after)
        rows = self.db.execute(
            f"SELECT idx, data FROM results WHERE {where} ORDER BY idx LIMIT ?", (*params, limit)
        ).fetchall()
        if not rows:
            return []
        if (
            self.db.execute(  # one index probe: a task without sources pays no more for its pages
                "SELECT 1 FROM sources WHERE task_id = ? AND idx BETWEEN ? AND ? LIMIT 1",
                (task_id, rows[0][0], rows[-1][0]),
            ).fetchone()
            is None
        ):
            return [(int(idx), str(data)) for idx, data in rows]
        sources = dict(self.db.execute(
            "SELECT idx, data FROM sources WHERE task_id = ? AND idx IN (SELECT value FROM json_each(?))",
            (task_id, orjson.dumps([idx for idx, _ in rows])),
        ).fetchall())  # fmt: skip
        return [(int(idx), with_sources(str(data), sources.get(idx))) for idx, data in rows]

    page_rows = on_reader_thread(_page)

    def _input_batch(self, task_id: str, start: int) -> list[str]:
        (text,) = self.db.execute(
            "SELECT json_group_array(url) FROM"
            " (SELECT url FROM urls WHERE task_id = ? AND idx >= ? AND idx < ? ORDER BY idx)",
            (task_id, start, start + STAGE_URLS),
        ).fetchone()
        urls: list[str] = orjson.loads(text)
        return urls

    _input_batched = on_reader_thread(_input_batch)

    async def input_urls(self, task_id: str) -> AsyncIterator[list[str]]:
        start = 0
        while batch := await self._input_batched(task_id, start):
            yield batch
            start += len(batch)

    def _seen_page(self, task_id: str, after: str | None, limit: int) -> list[Seen]:
        """Up to `limit` URLs after `after` with their results, read in URL order on urls_by_url;
        a URL given twice counts once, by its first input index."""
        rows = self.db.execute(
            "SELECT u.url, r.data ->> '$.ok', r.data ->> '$.status_code', r.data ->> '$.final_url',"
            " r.data ->> '$.error.kind' FROM urls u JOIN results r ON r.task_id = u.task_id AND r.idx = u.idx"
            f" WHERE u.task_id = ?{'' if after is None else ' AND u.url > ?'} ORDER BY u.url, u.idx LIMIT ?",
            (task_id, limit) if after is None else (task_id, after, limit),
        ).fetchall()
        page: list[Seen] = []
        for url, ok, status, final, kind in rows:
            if not page or page[-1].url != url:
                page.append(seen_from_columns(url, ok, status, final, kind))
        return page

    _seen_paged = on_reader_thread(_seen_page)

    async def seen_by_url(self, task_id: str, after: str | None = None) -> AsyncIterator[Seen]:
        while page := await self._seen_paged(task_id, after, STREAM_PAGE):
            for seen in page:
                yield seen
            after = page[-1].url

    def _cache_of(self, task_id: str) -> tuple[str, str] | None:
        """The task's (owner, cache_key): where its results are kept and looked up."""
        row = self.db.execute("SELECT owner, options FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else (row[0] or "", cache_key(stored_options(row[1])))

    def _cached(self, task_id: str, urls: list[str], max_age: float) -> dict[str, tuple[str, str]]:
        if (of := self._cache_of(task_id)) is None:
            return {}
        rows = self.db.execute(
            "SELECT url, task_id, data FROM cache WHERE owner = ? AND optkey = ? AND checked_at >= ?"
            " AND task_id != ? AND url IN (SELECT value FROM json_each(?))",
            (*of, time.time() - max_age, task_id, orjson.dumps(urls)),
        ).fetchall()
        return {str(url): (str(found), str(data)) for url, found, data in rows}

    cached = on_reader_thread(_cached)

    def _remember(self, task_id: str, rows: list[tuple[str, float, str]]) -> None:
        with self._tx() as db:
            if (of := self._cache_of(task_id)) is not None:
                db.execute(
                    "INSERT OR REPLACE INTO cache SELECT ?, ?, value ->> 0, ?, value ->> 1, value ->> 2"
                    " FROM json_each(?)",
                    (*of, task_id, orjson.dumps(rows)),
                )

    _remembered = on_store_thread(_remember)

    async def remember(self, task_id: str, results: list[ProbeResult]) -> None:
        rows = [(r.url, r.checked_at.timestamp(), r.to_json()) for r in cacheable(results)]
        if rows:
            await self._remembered(task_id, rows)

    # -- schedules ----------------------------------------------------------------------------

    _SCHEDULE = (
        "id, body, period, keep, owner, name, paused, created_at, last_claimed, secrets, webhook,"
        " webhook_secret"
    )

    def _schedule(self, row: tuple[Any, ...]) -> ScheduleRecord:
        runs = self.db.execute(
            "SELECT due, task_id FROM schedule_runs WHERE schedule_id = ? ORDER BY due", (row[0],)
        ).fetchall()
        return ScheduleRecord(
            id=row[0], body=json.loads(row[1]), period=json.loads(row[2]), keep=row[3], owner=row[4],
            name=row[5], paused=bool(row[6]), created_at=datetime.fromisoformat(row[7]),
            last_claimed=None if row[8] is None else datetime.fromtimestamp(row[8], UTC),
            runs=[(datetime.fromtimestamp(due, UTC), str(task)) for due, task in runs], secrets=row[9],
            webhook=None if row[10] is None else json.loads(row[10]), webhook_secret=row[11],
        )  # fmt: skip

    def _get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        row = self.db.execute(
            f"SELECT {self._SCHEDULE} FROM schedules WHERE id = ?", (schedule_id,)
        ).fetchone()
        return None if row is None else self._schedule(row)

    get_schedule = on_reader_thread(_get_schedule)

    def _create_schedule(self, schedule: NewSchedule) -> ScheduleRecord:
        schedule_id = uuid.uuid4().hex
        body, secrets = split_body_secrets(schedule.body)
        with self._tx() as db:
            db.execute(
                "INSERT INTO schedules (id, owner, name, body, secrets, period, keep, created_at, webhook,"
                " webhook_secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (schedule_id, schedule.owner, schedule.name, json.dumps(body), secrets,
                 json.dumps(schedule.period), schedule.keep, _now(),
                 None if schedule.webhook is None else json.dumps(schedule.webhook), schedule.webhook_secret),
            )  # fmt: skip
        record = self._get_schedule(schedule_id)
        assert record is not None
        return record

    create_schedule = on_store_thread(_create_schedule)

    def _list_schedules(self, owner: str | None) -> list[ScheduleRecord]:
        where, params = ("", ()) if owner is None else (" WHERE owner = ?", (owner,))
        rows = self.db.execute(f"SELECT {self._SCHEDULE} FROM schedules{where} ORDER BY seq", params)
        return [self._schedule(row) for row in rows.fetchall()]

    list_schedules = on_reader_thread(_list_schedules)

    def _pause_schedule(self, schedule_id: str, paused: bool) -> ScheduleRecord | None:
        with self._tx() as db:
            db.execute("UPDATE schedules SET paused = ? WHERE id = ?", (int(paused), schedule_id))
        return self._get_schedule(schedule_id)

    pause_schedule = on_store_thread(_pause_schedule)

    def _delete_schedule(self, schedule_id: str) -> bool:
        with self._tx() as db:
            gone = db.execute(
                "DELETE FROM schedules WHERE id = ? RETURNING secrets", (schedule_id,)
            ).fetchone()
            db.execute("DELETE FROM schedule_runs WHERE schedule_id = ?", (schedule_id,))
            db.execute("DELETE FROM deliveries WHERE subject = ?", (schedule_id,))
            self._scrub = self._scrub or (gone is not None and gone[0] is not None)
        return gone is not None

    delete_schedule = on_store_thread(_delete_schedule)

    def _claim_run(self, schedule_id: str, due: datetime) -> bool:
        with self._tx() as db:  # one compare-and-set: exactly one caller moves it forward
            moved = db.execute(
                "UPDATE schedules SET last_claimed = ?1 WHERE id = ?2 AND paused = 0"
                " AND (last_claimed IS NULL OR last_claimed < ?1)",
                (due.timestamp(), schedule_id),
            ).rowcount
        return bool(moved)

    claim_run = on_store_thread(_claim_run)

    def _add_run(self, schedule_id: str, due: datetime, task_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO schedule_runs SELECT id, ?, ? FROM schedules WHERE id = ?",
                (due.timestamp(), task_id, schedule_id),
            )

    add_run = on_store_thread(_add_run)

    def _drop_runs(self, schedule_id: str, task_ids: list[str]) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM schedule_runs WHERE schedule_id = ?"
                " AND task_id IN (SELECT value FROM json_each(?))",
                (schedule_id, json.dumps(task_ids)),
            )

    drop_runs = on_store_thread(_drop_runs)

    def _claim_notice(self, task_id: str) -> bool:
        with self._tx() as db:
            return bool(
                db.execute("INSERT OR IGNORE INTO notices VALUES (?, ?)", (task_id, time.time())).rowcount
            )

    claim_notice = on_store_thread(_claim_notice)

    def _record_delivery(self, subject: str, delivery: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO deliveries SELECT ?1, ?2, coalesce(max(seq), 0) + 1, ?3 FROM deliveries"
                " WHERE subject = ?1 ON CONFLICT (subject, id) DO UPDATE SET data = excluded.data",
                (subject, delivery["id"], json.dumps(delivery)),
            )
            db.execute(
                "DELETE FROM deliveries WHERE subject = ?1"
                " AND seq <= (SELECT max(seq) FROM deliveries WHERE subject = ?1) - ?2",
                (subject, MAX_DELIVERIES),
            )

    record_delivery = on_store_thread(_record_delivery)

    def _deliveries(self, subject: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT data FROM deliveries WHERE subject = ? ORDER BY seq", (subject,))
        return [json.loads(data) for (data,) in rows.fetchall()]

    deliveries = on_reader_thread(_deliveries)

    def _set_task_webhook(self, task_id: str, spec: dict[str, str], secret: str) -> bool:
        with self._tx() as db:
            added = db.execute(
                "INSERT OR REPLACE INTO task_webhooks SELECT id, ?, ? FROM tasks WHERE id = ?",
                (json.dumps(spec), secret, task_id),
            )
            return bool(added.rowcount)

    set_task_webhook = on_store_thread(_set_task_webhook)

    def _task_webhooks(self) -> list[str]:
        return [str(task_id) for (task_id,) in self.db.execute("SELECT task_id FROM task_webhooks")]

    task_webhooks = on_reader_thread(_task_webhooks)

    def _take_task_webhook(self, task_id: str) -> tuple[dict[str, str], str] | None:
        with self._tx() as db:
            query = "DELETE FROM task_webhooks WHERE task_id = ? RETURNING spec, secret"
            row = db.execute(query, (task_id,)).fetchone()
        return None if row is None else (json.loads(row[0]), str(row[1]))

    take_task_webhook = on_store_thread(_take_task_webhook)

    def _set_changes(self, task_id: str, changes: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("UPDATE tasks SET changes = ? WHERE id = ?", (json.dumps(changes), task_id))

    set_changes = on_store_thread(_set_changes)

    # -- work queue ---------------------------------------------------------------------------

    def _next(self, db: sqlite3.Connection) -> tuple[str, int] | None:
        """An orphan (lease run out) first, else the queued chunk of the lane whose turn it is:
        round-robin across lanes, oldest task and lowest chunk first within one."""
        row = db.execute(
            f"SELECT task_id, number FROM chunks WHERE state = {HELD} AND lease_until < ? LIMIT 1",
            (time.time(),),
        ).fetchone()
        # Within the lane whose turn it is, this process's own host share first (see the top).
        row = (
            row
            or db.execute(
                "SELECT c.task_id, c.number FROM chunks c JOIN tasks t ON t.id = c.task_id"
                f" JOIN lanes l ON l.lane = t.lane WHERE c.state = {QUEUED}"
                " ORDER BY l.turn, t.seq, coalesce(c.share = ?, 1) DESC, c.number LIMIT 1",
                (self.share,),
            ).fetchone()
        )
        return None if row is None else (str(row[0]), int(row[1]))

    def _claim(self, worker: str) -> Chunk | None:
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + min(60.0, self.retention.seconds / 4)
            self._purge()
        with self._tx() as db:
            while (found := self._next(db)) is not None:
                chunk = self._deliver(db, worker, *found)
                if chunk is not None:
                    return chunk
        return None

    def _deliver(self, db: sqlite3.Connection, worker: str, task_id: str, number: int) -> Chunk | None:
        """Hand the chunk out with a fresh lease, or dead-letter it (None) past max_deliveries."""
        start, stop, deliveries, options, secrets, lane, kind, depth, crawl, share, shares = db.execute(
            "SELECT c.start, c.stop, c.deliveries + 1, t.options, t.secrets, t.lane, c.kind, c.depth,"
            " t.crawl, c.share, c.shares FROM chunks c JOIN tasks t ON t.id = c.task_id"
            " WHERE c.task_id = ? AND c.number = ?",
            (task_id, number),
        ).fetchone()
        (text,) = db.execute(
            "SELECT json_group_array(url) FROM"
            " (SELECT url FROM urls WHERE task_id = ? AND idx >= ? AND idx < ? ORDER BY idx)",
            (task_id, start, stop),
        ).fetchone()
        urls: list[str] = orjson.loads(text)
        indexes = None
        if shares is not None:  # this share's hosts only
            mine = [(i, url) for i, url in enumerate(urls, start) if share_of(url, shares) == share]
            indexes, urls = [i for i, _ in mine], [url for _, url in mine]
        options = with_secrets(options, secrets)
        chunk = Chunk(task_id, number, start, urls, options, deliveries,
                      f"{task_id}:{number}:{deliveries}", ChunkKind(kind), depth,
                      None if crawl is None else CrawlSpec.from_dict(json.loads(crawl)), indexes)  # fmt: skip
        db.execute(
            f"UPDATE chunks SET state = {HELD}, worker = ?, deliveries = ?, lease_until = ?"
            " WHERE task_id = ? AND number = ?",
            (worker, deliveries, time.time() + self.policy.reclaim_idle_s, task_id, number),
        )
        db.execute(
            "UPDATE tasks SET status = ?, started_at = coalesce(started_at, ?) WHERE id = ? AND status = ?",
            (TaskStatus.RUNNING.value, _now(), task_id, TaskStatus.PENDING.value),
        )
        db.execute("UPDATE lanes SET turn = (SELECT max(turn) + 1 FROM lanes) WHERE lane = ?", (lane,))
        if deliveries > self.policy.max_deliveries:
            self._dead_letter(db, chunk)
            return None
        return chunk

    def _dead_letter(self, db: sqlite3.Connection, chunk: Chunk) -> None:
        db.execute(
            "INSERT INTO dead VALUES (?, ?, ?, ?)", (chunk.task_id, chunk.number, chunk.deliveries, _now())
        )
        self._write_results(chunk.task_id, encode(dead_letter_results(chunk)))
        self._finish_chunk(chunk)

    claim_chunk = on_store_thread(_claim)

    def _write_results(self, task_id: str, stored: list[Stored]) -> None:
        """Insert results (base.encode) for indexes that have none yet, and add them to the task's
        progress and counts (base.tally). Nothing for a task that is deleted or over."""
        if not stored:
            return
        db = self.db
        status = db.execute("SELECT status FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if status is None or status[0] not in LIVE:
            return
        known = {
            idx for (idx,) in db.execute(
                "SELECT idx FROM results WHERE task_id = ? AND idx BETWEEN ? AND ?",
                (task_id, min(s.index for s in stored), max(s.index for s in stored)),
            )
        }  # fmt: skip
        if known:  # a redelivered chunk, a cancel after a partial write: keep the first result
            stored = [s for s in stored if s.index not in known]
        db.execute(
            f"INSERT INTO results (task_id, {RESULT_COLUMNS})"
            " SELECT ?, value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?)",
            (task_id, result_rows(stored)),
        )
        db.execute("UPDATE tasks SET done = done + ? WHERE id = ?", (len(stored), task_id))
        db.executemany(
            "INSERT INTO counts VALUES (?, ?, ?) ON CONFLICT (task_id, key) DO UPDATE SET n = n + excluded.n",
            [(task_id, key, n) for key, n in tally(stored).items()],
        )

    def _store(self, chunk: Chunk, stored: list[Stored]) -> None:
        with self._tx() as db:
            self._write_results(chunk.task_id, stored)
            self._renew(db, chunk)

    def _complete(self, chunk: Chunk, stored: list[Stored]) -> None:
        with self._tx():
            self._write_results(chunk.task_id, stored)
            self._finish_chunk(chunk)

    _stored = on_store_thread(_store)
    _completed = on_store_thread(_complete)

    async def store_results(self, chunk: Chunk, results: list[ProbeResult]) -> None:
        # Encoded here, on the caller's thread: the store thread then runs one statement.
        await self._stored(chunk, encode(results))

    async def complete_chunk(self, chunk: Chunk, results: list[ProbeResult]) -> None:
        await self._completed(chunk, encode(results))

    def _finish_chunk(self, chunk: Chunk) -> None:
        self.db.execute(
            f"UPDATE chunks SET state = {DONE}, lease_until = NULL WHERE task_id = ? AND number = ?",
            (chunk.task_id, chunk.number),
        )
        left = self.db.execute(
            f"SELECT 1 FROM chunks WHERE task_id = ? AND state != {DONE} LIMIT 1",
            (chunk.task_id,),
        ).fetchone()
        if left is None:
            self._end(chunk.task_id, TaskStatus.READY, only_from=TaskStatus.RUNNING)

    def _drop(self, chunk: Chunk) -> str | None:
        with self._tx() as db:  # one transaction: the task's state cannot change under the answer
            row = db.execute("SELECT status FROM tasks WHERE id = ?", (chunk.task_id,)).fetchone()
            if row is None:
                return "deleted"
            if row[0] == TaskStatus.CANCELLED.value:
                self._finish_chunk(chunk)
                return TaskStatus.CANCELLED.value
            return None

    def _discover(self, chunk: Chunk, index: int, page_url: str, found: list[Found]) -> None:
        task_id = chunk.task_id
        with self._tx() as db:
            row = db.execute(
                "SELECT total, scheduled, chunk_size, crawl, owner FROM tasks WHERE id = ?"
                f" AND status IN ({LIVE_SQL}) AND crawl IS NOT NULL",
                (task_id,),
            ).fetchone()
            self._renew(db, chunk)
            if (
                row is None
                or not db.execute(  # over, deleted, or this page was expanded before
                    "INSERT OR IGNORE INTO expanded VALUES (?, ?)", (task_id, index)
                ).rowcount
            ):
                return
            total, scheduled, chunk_size, crawl, owner = row
            urls = orjson.dumps(list({link.url: None for link in found}))
            known = dict(db.execute(
                "SELECT url, idx FROM seen WHERE task_id = ? AND url IN (SELECT value FROM json_each(?))",
                (task_id, urls),
            ).fetchall())  # fmt: skip
            spec = CrawlSpec.from_dict(json.loads(crawl))
            day = Window.today()
            charged = owner if spec.urls_per_day is not None else None  # admin, no-auth: not limited
            left = None if charged is None else self._quota_left(charged, day, spec.urls_per_day or 0)
            plan = plan_discovery(found, known, total, scheduled, spec, chunk_size, left)
            if charged is not None and plan.new:
                self._charge(charged, day, len(plan.new))
            self._add_found(task_id, total, plan.new)
            self._add_chunks(task_id, plan.chunks, chunk.depth + 1)
            self._add_sources(task_id, page_url, plan.places)
            db.execute(
                "UPDATE tasks SET total = total + ?, scheduled = ?, pages = pages + 1 WHERE id = ?",
                (len(plan.new), plan.scheduled, task_id),
            )

    def _quota_left(self, owner: str, day: Window, per_day: int) -> int:
        """The URLs the owner's daily quota still allows (KeyStore.take's counter, same file)."""
        return max(0, per_day - self._used(owner, day))

    def _used(self, owner: str, window: Window) -> int:
        row = self.db.execute(
            "SELECT n FROM usage WHERE key_id = ? AND window = ?", (owner, window.name)
        ).fetchone()
        return int(row[0]) if row else 0

    def _charge(self, owner: str, window: Window, amount: int) -> None:
        self.db.execute(
            "INSERT INTO usage (key_id, window, n, expires) VALUES (?1, ?2, ?3, ?4)"
            " ON CONFLICT (key_id, window) DO UPDATE SET n = n + ?3",
            (owner, window.name, amount, window.ends),
        )

    def _add_found(self, task_id: str, total: int, urls: list[str]) -> None:
        """New URLs at the next input indexes, in the input and in the crawl's seen-set."""
        text = orjson.dumps(urls)
        for table in ("urls (task_id, idx, url)", "seen (task_id, idx, url)"):
            self.db.execute(
                f"INSERT INTO {table} SELECT ?, ? + key, value FROM json_each(?)", (task_id, total, text)
            )

    def _add_chunks(self, task_id: str, chunks: list[tuple[ChunkKind, int, int]], depth: int) -> None:
        (number,) = self.db.execute(
            "SELECT coalesce(max(number), -1) + 1 FROM chunks WHERE task_id = ?", (task_id,)
        ).fetchone()
        self.db.executemany(
            "INSERT INTO chunks (task_id, number, start, stop, kind, depth) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (task_id, number + i, start, stop, kind.value, depth)
                for i, (kind, start, stop) in enumerate(chunks)
            ],
        )

    def _add_sources(self, task_id: str, page_url: str, places: dict[int, list[Linked]]) -> None:
        indexes = orjson.dumps(list(places))
        old = dict(self.db.execute(
            "SELECT idx, data FROM sources WHERE task_id = ? AND idx IN (SELECT value FROM json_each(?))",
            (task_id, indexes),
        ).fetchall())  # fmt: skip
        merged = [
            (idx, merge_sources(orjson.loads(old[idx]) if idx in old else None, page_url, added))
            for idx, added in places.items()
        ]
        self.db.execute(
            "INSERT OR REPLACE INTO sources SELECT ?, value ->> 0, value -> 1 FROM json_each(?)",
            (task_id, orjson.dumps(merged)),
        )

    discover = on_store_thread(_discover)
    drop_chunk = on_store_thread(_drop)

    def _renew(self, db: sqlite3.Connection, chunk: Chunk) -> None:
        """Extend the lease of this delivery (not of a later one, after a reclaim)."""
        db.execute(
            "UPDATE chunks SET lease_until = ? WHERE task_id = ? AND number = ? AND deliveries = ?"
            f" AND state = {HELD}",
            (time.time() + self.policy.reclaim_idle_s, chunk.task_id, chunk.number, chunk.deliveries),
        )

    def _heartbeat(self, chunks: list[Chunk]) -> None:
        with self._tx() as db:
            for chunk in chunks:
                self._renew(db, chunk)

    async def heartbeat(self, chunks: Iterable[Chunk]) -> None:
        if held := list(chunks):
            await self._run(self._heartbeat, held)

    def _live(self, task_ids: list[str]) -> set[str]:
        marks = ",".join("?" * len(task_ids))
        rows = self.db.execute(
            f"SELECT id FROM tasks WHERE id IN ({marks}) AND status != ?",
            (*task_ids, TaskStatus.CANCELLED.value),
        )
        return {str(task_id) for (task_id,) in rows}

    async def live_tasks(self, task_ids: Iterable[str]) -> set[str]:
        ids = list(task_ids)
        return await self._run(self._live, ids) if ids else set()

    def _stats(self) -> dict[str, Any]:
        tasks = dict(self.db.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall())
        # Waiting for a worker: a held chunk (running, even past its lease) is not waiting.
        queued = self.db.execute(f"SELECT count(*) FROM chunks WHERE state = {QUEUED}").fetchone()[0]
        return {"tasks": tasks, "queued_chunks": queued}

    stats = on_reader_thread(_stats)
