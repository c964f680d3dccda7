"""The embedded store: one SQLite file in WAL mode, driven from one dedicated thread.

All statements run on a single thread with a single connection, so transactions never
interleave; the event loop never blocks on disk.

Rows go in and out in bulk: a chunk's results, a chunk's URLs and a batch of uploaded URLs are
each one JSON array and one statement (json_each / json_group_array). Python's sqlite3 releases
and retakes the GIL for every row it steps; row by row, the store thread and the event loop
fought over the GIL for every URL, which cost `linkprobe serve` about a fifth of its throughput.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import orjson

from linkprobe.engine import ErrorKind, ProbeResult, StoreUnavailable, failed
from linkprobe.store.base import (
    Chunk,
    IdempotencyConflict,
    NewTask,
    ResultFilter,
    Store,
    TaskRecord,
    TaskStatus,
)

T = TypeVar("T")
PAGE = 1000
SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    name TEXT, description TEXT, options TEXT NOT NULL,
    status TEXT NOT NULL, total INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0, ok INTEGER NOT NULL DEFAULT 0, broken INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
    idem_key TEXT UNIQUE, fingerprint TEXT
);
CREATE TABLE IF NOT EXISTS urls (
    task_id TEXT NOT NULL, idx INTEGER NOT NULL, url TEXT NOT NULL, PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
    task_id TEXT NOT NULL, number INTEGER NOT NULL, start INTEGER NOT NULL, stop INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued', deliveries INTEGER NOT NULL DEFAULT 0, worker TEXT,
    PRIMARY KEY (task_id, number)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_queued ON chunks (state);
CREATE TABLE IF NOT EXISTS results (
    task_id TEXT NOT NULL, idx INTEGER NOT NULL, ok INTEGER NOT NULL, status_code INTEGER,
    error_kind TEXT, data TEXT NOT NULL, PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (
    task_id TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (task_id, key)
) WITHOUT ROWID;
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def result_rows(results: list[ProbeResult]) -> tuple[bytes, dict[str, int], int]:
    """A JSON array of [idx, ok, status_code, error_kind, result] rows, the counts to add (one
    "s:<status>" or "e:<kind>" key per result) and how many results are ok."""
    rows = []
    counts: dict[str, int] = {}
    for r in results:
        kind = r.error.kind.value if r.error else None
        rows.append((r.index, int(r.ok), r.status_code, kind, r.to_dict()))
        key = f"e:{kind}" if kind else f"s:{r.status_code}"
        counts[key] = counts.get(key, 0) + 1
    return orjson.dumps(rows), counts, sum(r.ok for r in results)


class SQLiteStore(Store):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="linkprobe-sqlite")
        self._db: sqlite3.Connection | None = None

    # -- plumbing -------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite store failed: {exc}") from exc

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("store is not open")
        return self._db

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        db.executescript(SCHEMA)
        # Chunks that were being probed when the process died go back to the queue.
        db.execute("UPDATE chunks SET state = 'queued', worker = NULL WHERE state = 'running'")
        self._db = db

    async def open(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self.db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            return await self._run(lambda: self.db.execute("SELECT 1").fetchone() == (1,))
        except StoreUnavailable:
            return False

    # -- tasks --------------------------------------------------------------------------------

    def _create(
        self, task: NewTask, urls: Iterable[str], chunk_size: int, idempotency: tuple[str, str] | None
    ) -> tuple[str, bool]:
        db = self.db
        if idempotency is not None:
            row = db.execute(
                "SELECT id, fingerprint FROM tasks WHERE idem_key = ?", (idempotency[0],)
            ).fetchone()
            if row is not None:
                if row[1] != idempotency[1]:
                    raise IdempotencyConflict(idempotency[0])
                return str(row[0]), False
        task_id = uuid.uuid4().hex
        key, fingerprint = idempotency or (None, None)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO tasks (id, name, description, options, status, created_at, idem_key,"
                " fingerprint) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                (task_id, task.name, task.description, json.dumps(task.options), _now(), key, fingerprint),
            )
            total = self._insert_urls(task_id, urls, chunk_size)
            db.execute("UPDATE tasks SET total = ? WHERE id = ?", (total, task_id))
            if total == 0:
                db.execute(
                    "UPDATE tasks SET status = 'ready', finished_at = ? WHERE id = ?", (_now(), task_id)
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return task_id, True

    def _insert_urls(self, task_id: str, urls: Iterable[str], chunk_size: int) -> int:
        total = 0
        for number, batch in enumerate(_batches(urls, chunk_size)):
            self.db.execute(
                "INSERT INTO urls (task_id, idx, url) SELECT ?, ? + key, value FROM json_each(?)",
                (task_id, total, orjson.dumps(batch)),
            )
            self.db.execute(
                "INSERT INTO chunks (task_id, number, start, stop) VALUES (?, ?, ?, ?)",
                (task_id, number, total, total + len(batch)),
            )
            total += len(batch)
        return total

    async def create_task(
        self, task: NewTask, urls: Iterable[str], chunk_size: int, idempotency: tuple[str, str] | None = None
    ) -> tuple[TaskRecord, bool]:
        task_id, created = await self._run(self._create, task, urls, chunk_size, idempotency)
        record = await self.get_task(task_id)
        assert record is not None
        return record, created

    def _record(self, row: sqlite3.Row | tuple[Any, ...]) -> TaskRecord:
        counts = self.db.execute("SELECT key, n FROM counts WHERE task_id = ?", (row[0],)).fetchall()
        return TaskRecord(
            id=row[0], name=row[1], description=row[2], options=json.loads(row[3]), status=TaskStatus(row[4]),
            total=row[5], done=row[6], ok=row[7], broken=row[8], created_at=datetime.fromisoformat(row[9]),
            started_at=_time(row[10]), finished_at=_time(row[11]),
            by_status={k[2:]: n for k, n in counts if k.startswith("s:")},
            by_error={k[2:]: n for k, n in counts if k.startswith("e:")},
        )  # fmt: skip

    _COLUMNS = (
        "id, name, description, options, status, total, done, ok, broken, created_at, started_at, finished_at"
    )

    def _get(self, task_id: str) -> TaskRecord | None:
        row = self.db.execute(f"SELECT {self._COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else self._record(row)

    async def get_task(self, task_id: str) -> TaskRecord | None:
        return await self._run(self._get, task_id)

    def _list(
        self, status: TaskStatus | None, cursor: str | None, limit: int
    ) -> tuple[list[TaskRecord], str | None]:
        clauses: list[str] = ["seq < ?"]
        params: list[Any] = [int(cursor) if cursor else 2**62]
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
        self, status: TaskStatus | None, cursor: str | None, limit: int
    ) -> tuple[list[TaskRecord], str | None]:
        return await self._run(self._list, status, cursor, limit)

    def _delete(self, task_id: str) -> bool:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        found = db.execute("DELETE FROM tasks WHERE id = ?", (task_id,)).rowcount > 0
        for table in ("urls", "chunks", "results", "counts"):
            db.execute(f"DELETE FROM {table} WHERE task_id = ?", (task_id,))
        db.execute("COMMIT")
        return found

    async def delete_task(self, task_id: str) -> bool:
        return await self._run(self._delete, task_id)

    def _cancel(self, task_id: str) -> TaskRecord | None:
        record = self._get(task_id)
        if record is None or record.status in (TaskStatus.READY, TaskStatus.ERROR, TaskStatus.CANCELLED):
            return record
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        missing = db.execute(
            "SELECT u.idx, u.url FROM urls u LEFT JOIN results r ON r.task_id = u.task_id AND r.idx = u.idx"
            " WHERE u.task_id = ? AND r.idx IS NULL",
            (task_id,),
        ).fetchall()
        cancelled = [failed(url, idx, ErrorKind.CANCELLED, "the task was cancelled") for idx, url in missing]
        self._write_results(task_id, *result_rows(cancelled))
        db.execute("UPDATE chunks SET state = 'done' WHERE task_id = ?", (task_id,))
        db.execute("UPDATE tasks SET status = 'cancelled', finished_at = ? WHERE id = ?", (_now(), task_id))
        db.execute("COMMIT")
        return self._get(task_id)

    async def cancel_task(self, task_id: str) -> TaskRecord | None:
        return await self._run(self._cancel, task_id)

    # -- results ------------------------------------------------------------------------------

    @staticmethod
    def _where(task_id: str, flt: ResultFilter, after: int | None) -> tuple[str, list[Any]]:
        clauses, params = ["task_id = ?", "idx > ?"], [task_id, -1 if after is None else after]
        if flt.ok is not None:
            clauses.append("ok = ?")
            params.append(int(flt.ok))
        if flt.error_kind is not None:
            clauses.append("error_kind = ?")
            params.append(flt.error_kind)
        if flt.status_code is not None:
            clauses.append("status_code = ?")
            params.append(flt.status_code)
        if flt.url_contains:
            clauses.append("instr(lower(json_extract(data, '$.url')), ?) > 0")
            params.append(flt.url_contains.lower())
        return " AND ".join(clauses), params

    def _page(self, task_id: str, flt: ResultFilter, after: int | None, limit: int) -> list[tuple[int, str]]:
        where, params = self._where(task_id, flt, after)
        rows = self.db.execute(
            f"SELECT idx, data FROM results WHERE {where} ORDER BY idx LIMIT ?", (*params, limit)
        )
        return [(int(idx), str(data)) for idx, data in rows]

    async def results(
        self, task_id: str, flt: ResultFilter, after: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        rows = await self._run(self._page, task_id, flt, after, limit + 1)
        page = [orjson.loads(data) for _, data in rows[:limit]]
        return page, (rows[limit - 1][0] if len(rows) > limit else None)

    async def stream_results(self, task_id: str, flt: ResultFilter) -> AsyncIterator[str]:
        after: int | None = None
        while rows := await self._run(self._page, task_id, flt, after, PAGE):
            for _, data in rows:
                yield data
            after = rows[-1][0]

    # -- work queue ---------------------------------------------------------------------------

    def _claim(self, worker: str) -> Chunk | None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT c.task_id, c.number, c.start, c.stop, c.deliveries, t.options FROM chunks c"
                " JOIN tasks t ON t.id = c.task_id WHERE c.state = 'queued' ORDER BY t.seq, c.number LIMIT 1"
            ).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            task_id, number, start, stop, deliveries, options = row
            db.execute(
                "UPDATE chunks SET state = 'running', worker = ?, deliveries = deliveries + 1"
                " WHERE task_id = ? AND number = ?",
                (worker, task_id, number),
            )
            db.execute(
                "UPDATE tasks SET status = 'running', started_at = coalesce(started_at, ?)"
                " WHERE id = ? AND status = 'pending'",
                (_now(), task_id),
            )
            (text,) = db.execute(
                "SELECT json_group_array(url) FROM"
                " (SELECT url FROM urls WHERE task_id = ? AND idx >= ? AND idx < ? ORDER BY idx)",
                (task_id, start, stop),
            ).fetchone()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        urls = orjson.loads(text)
        return Chunk(task_id, number, start, urls, json.loads(options), deliveries + 1, f"{task_id}:{number}")

    async def claim_chunk(self, worker: str) -> Chunk | None:
        return await self._run(self._claim, worker)

    def _write_results(self, task_id: str, rows: bytes, counts: dict[str, int], ok: int) -> None:
        """Insert result rows (from result_rows) and add them to the task's progress and counts."""
        db = self.db
        db.execute(
            "INSERT INTO results (task_id, idx, ok, status_code, error_kind, data)"
            " SELECT ?, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value -> 4 FROM json_each(?)",
            (task_id, rows),
        )
        done = sum(counts.values())
        db.execute(
            "UPDATE tasks SET done = done + ?, ok = ok + ?, broken = broken + ? WHERE id = ?",
            (done, ok, done - ok, task_id),
        )
        db.executemany(
            "INSERT INTO counts VALUES (?, ?, ?) ON CONFLICT (task_id, key) DO UPDATE SET n = n + excluded.n",
            [(task_id, key, n) for key, n in counts.items()],
        )

    def _complete(self, chunk: Chunk, rows: bytes, counts: dict[str, int], ok: int) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            claimed = db.execute(
                "UPDATE chunks SET state = 'done' WHERE task_id = ? AND number = ? AND state != 'done'",
                (chunk.task_id, chunk.number),
            ).rowcount
            if claimed:  # a chunk completed twice (redelivery) writes nothing the second time
                self._write_results(chunk.task_id, rows, counts, ok)
                self._finish_if_done(chunk.task_id)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _finish_if_done(self, task_id: str) -> None:
        left = self.db.execute(
            "SELECT 1 FROM chunks WHERE task_id = ? AND state != 'done' LIMIT 1", (task_id,)
        ).fetchone()
        if left is None:
            self.db.execute(
                "UPDATE tasks SET status = 'ready', finished_at = ? WHERE id = ? AND status = 'running'",
                (_now(), task_id),
            )

    async def complete_chunk(self, chunk: Chunk, results: list[ProbeResult]) -> None:
        # Serialised here, on the caller's thread: the store thread then runs one statement.
        await self._run(self._complete, chunk, *result_rows(results))

    def _live(self, task_ids: list[str]) -> set[str]:
        marks = ",".join("?" * len(task_ids))
        rows = self.db.execute(
            f"SELECT id FROM tasks WHERE id IN ({marks}) AND status != 'cancelled'", task_ids
        )
        return {str(task_id) for (task_id,) in rows}

    async def live_tasks(self, task_ids: Iterable[str]) -> set[str]:
        ids = list(task_ids)
        return await self._run(self._live, ids) if ids else set()

    def _stats(self) -> dict[str, Any]:
        tasks = dict(self.db.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall())
        queued = self.db.execute("SELECT count(*) FROM chunks WHERE state = 'queued'").fetchone()[0]
        return {"tasks": tasks, "queued_chunks": queued}

    async def stats(self) -> dict[str, Any]:
        return await self._run(self._stats)
