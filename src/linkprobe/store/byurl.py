"""A task's results in URL order, for comparing two runs (linkprobe.changes.merge) in bounded memory.

A store with an index in URL order reads it (SQLite: `urls_by_url`). One without (Redis keeps
results by input index) sorts externally: the results are read in input order, cut into runs of
SORT_RUN, each sorted and spilled to a temporary file, then the runs are merged, so memory holds
one run while sorting and one row per run while merging, whatever the task's size. Each URL comes
once: the first input index of a URL given twice.
"""

from __future__ import annotations

import asyncio
import heapq
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from itertools import islice
from typing import IO, Any

import orjson

from linkprobe.changes import Seen
from linkprobe.engine.outcome import ErrorKind, Outcome

SORT_RUN = 20_000  # rows sorted in memory at a time (a few MB), then spilled
BATCH = 1000  # rows handed from a thread to the event loop at a time

# (url, input order, outcome, status code, final URL, error kind): what a run holds of a result.
Row = tuple[str, int, str, int | None, str | None, str | None]


def row_of(data: Mapping[str, Any], order: int) -> Row:
    seen = Seen.of_dict(data)
    kind = None if seen.error_kind is None else seen.error_kind.value
    return (seen.url, order, seen.outcome.value, seen.status_code, seen.final_url, kind)


def seen_of(row: Row | list[Any]) -> Seen:
    kind = row[5]
    return Seen(row[0], Outcome(row[2]), row[3], row[4], None if kind is None else ErrorKind(kind))


def seen_from_columns(url: str, ok: object, status: int | None, final: str | None, kind: str | None) -> Seen:
    """A Seen from a store's columns (the stored result's url, ok, status_code, final_url and
    error kind), judged by the one classifier."""
    error = None if kind is None else {"kind": kind}
    data = {"url": url, "ok": bool(ok), "status_code": status, "final_url": final, "error": error}
    return Seen.of_dict(data)


def _spill(rows: list[Row]) -> IO[bytes]:
    rows.sort()
    spilled = tempfile.TemporaryFile()  # noqa: SIM115 (closed by sorted_by_url)
    spilled.writelines(orjson.dumps(row) + b"\n" for row in rows)
    spilled.seek(0)
    return spilled


def _read(spilled: IO[bytes]) -> Iterator[list[Any]]:
    for line in spilled:
        yield orjson.loads(line)


def _unique(rows: Iterator[list[Any]]) -> Iterator[Seen]:
    last: str | None = None
    for row in rows:
        if row[0] != last:  # runs merge by (url, order): the first input index comes first
            last = row[0]
            yield seen_of(row)


async def sorted_by_url(results: AsyncIterator[str], after: str | None = None) -> AsyncIterator[Seen]:
    """What each URL of `results` (result JSON texts in input order) saw, in ascending URL order,
    each URL once, only URLs after `after`: an external merge sort over temporary files."""
    runs: list[IO[bytes]] = []
    try:
        batch: list[Row] = []
        order = 0
        async for text in results:
            row = row_of(orjson.loads(text), order)
            order += 1
            if after is None or row[0] > after:
                batch.append(row)
            if len(batch) >= SORT_RUN:
                runs.append(await asyncio.to_thread(_spill, batch))
                batch = []
        if batch:
            runs.append(await asyncio.to_thread(_spill, batch))
        merged = _unique(heapq.merge(*(_read(run) for run in runs)))
        while items := await asyncio.to_thread(lambda: list(islice(merged, BATCH))):
            for item in items:
                yield item
    finally:
        for run in runs:
            run.close()
