"""Results packed by the batch, as the Redis store keeps them: one compressed value per batch.

A batch is its results' lines, `<index>\t<count keys>\t<result JSON>` (base.Stored: the JSON text
exactly as the API serves it, so nothing is re-encoded on the way out), compressed with zlib, after
one byte saying how: ON_THE_WAY (a worker's batch: zlib level 1, cheap for the worker, kept until
its chunk is complete) or COMPACT (a complete chunk's, level 6). The results of one task share most
of their text (hosts, paths, field names, statuses), which is what makes ~40 bytes of a ~400-byte
result. JSON never holds a raw tab or newline, so the lines need no escaping; the format names no
field, so a field added to the result schema changes nothing here.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from linkprobe.store.base import LATENCY_KEYS, Stored

ON_THE_WAY, COMPACT = b"b", b"c"
# zlib levels: 1 packs 100 results in a fifth of the time level 6 takes, 20% larger; level 6 is
# zlib's default (level 9 saves ~2% more for twice the time).
LEVELS = {ON_THE_WAY: 1, COMPACT: 6}
# Input indexes of a chunk read together once it is compacted: a page of a large chunk (chunk_size
# goes up to 100,000) unpacks this many results at most, not the whole chunk.
SEGMENT = 1000

# One unpacked result: its input index, its count keys (base.count_keys) separated by spaces, its
# JSON text. A plain tuple: a chunk's hundreds are made for each page read.
Row = tuple[int, str, str]


def rows_of(stored: Iterable[Stored]) -> list[Row]:
    return [(item.index, " ".join(item.keys), item.json) for item in stored]


def pack(rows: Iterable[Row], how: bytes = COMPACT) -> bytes:
    lines = "\n".join(f"{index}\t{keys}\t{json}" for index, keys, json in rows)
    return how + zlib.compress(lines.encode(), LEVELS[how])


def compact(blob: bytes) -> bool:
    return blob[:1] == COMPACT


def unpack(blob: bytes, key: str | None = None) -> list[Row]:
    """A batch's rows, or only those counted by `key`: the text is searched for it (in C), and only
    the lines where it appears are split, the cost of reading a rare filter's chunks."""
    text = zlib.decompress(blob[1:]).decode()
    if key is None:
        return [_row(line) for line in text.split("\n")]
    rows: list[Row] = []
    at = text.find(key)
    while at >= 0:
        start, end = text.rfind("\n", 0, at) + 1, text.find("\n", at)
        end = len(text) if end < 0 else end
        row = _row(text[start:end])
        if key in row[1].split(" "):  # not a JSON text that happens to hold it
            rows.append(row)
        at = text.find(key, end)
    return rows


def _row(line: str) -> Row:
    index, keys, json = line.split("\t", 2)
    return int(index), keys, json


def first_per_index(stored: Iterable[Stored]) -> list[Stored]:
    """One result per input index, the first given (a batch may name an index twice)."""
    first: dict[int, Stored] = {}
    for item in stored:
        first.setdefault(item.index, item)
    return list(first.values())


def indexed_keys(keys: Iterable[str]) -> list[str]:
    """The count keys with an index of the batches holding them (latency buckets are counted only),
    each once, in the order first met."""
    return [key for key in dict.fromkeys(keys) if key not in LATENCY_KEYS]


def classes(rows: Iterable[Row]) -> dict[tuple[str, ...], list[Row]]:
    """Rows by class: the count keys they are indexed by (their outcome and status or error kind),
    in the order met."""
    found: dict[tuple[str, ...], list[Row]] = {}
    named: dict[str, tuple[str, ...]] = {}  # a chunk's results have few distinct keys
    for row in rows:
        if (name := named.get(row[1])) is None:
            name = named[row[1]] = tuple(indexed_keys(row[1].split(" ")))
        found.setdefault(name, []).append(row)
    return found


def segments(rows: list[Row], start: int) -> list[tuple[int, list[Row]]]:
    """Sorted rows of a chunk starting at input index `start` cut into its SEGMENTs: (the
    segment's first input index, its rows)."""
    found: dict[int, list[Row]] = {}
    for row in rows:
        found.setdefault(start + (row[0] - start) // SEGMENT * SEGMENT, []).append(row)
    return list(found.items())
