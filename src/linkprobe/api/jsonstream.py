"""JSON task bodies read from their spooled file by a streaming parser (ijson's C backend, yajl2).

A first pass validates the body and counts its URLs without building the list; a second pass
writes the URLs one by one to the file the store reads (both in an intake process: `scan_to`).
Memory stays flat whatever the body's size: only the small fields (name, description, options)
are ever built as objects.

The first pass pushes the body through yajl (`basic_parse_coro`) into `_Scan`, which keeps its own
depth and place instead of the dotted path ijson's `parse` builds for every event: that path grows
with the nesting, so `[[[[...` cost quadratic time and memory. Nesting deeper than MAX_DEPTH is
refused as soon as it is seen. Events are pushed, so when yajl meets a string that is not Unicode
(a lone surrogate escape such as `\\udc00`), `_Scan` still knows which field it was reading.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any, TypeVar

import ijson
from fastapi import HTTPException
from pydantic import BaseModel, ValidationError

from linkprobe.api.offload import write_urls

M = TypeVar("M", bound=BaseModel)
READ_BYTES = 1 << 16
PLACEHOLDER = "u"  # stands for the URLs while the model checks the other fields
# The other fields are built as objects: a few names and options, or a crawl's patterns. Beyond
# this many JSON values in all they are refused before they fill memory.
MAX_FIELD_VALUES = 10_000
# Objects and arrays open at once. The schema needs 3 ({"options": {"headers": {...}}}); a little
# room is left so that a wrong but shallow body still gets the model's own 422.
MAX_DEPTH = 8
_OPEN = frozenset({"start_map", "start_array"})
_CLOSE = frozenset({"end_map", "end_array"})

Loc = list[str | int]


def _invalid(loc: Loc, msg: str, kind: str) -> HTTPException:
    return HTTPException(422, [{"type": kind, "loc": loc, "msg": msg}])


class _Scan:
    """The events of one JSON object, pushed by yajl: `urls` counted (strings only), the other
    top-level fields built. `place` is where the parser is inside the field being built: one entry
    per open container, its current key (None: a key comes next) or index, so an error names the
    field."""

    def __init__(self) -> None:
        self.count = 0
        self.fields: dict[str, Any] = {}
        self.depth = 0  # containers open
        self.key: str | None = None  # the top-level field being read (None: a key comes next)
        self.builder: Any = None
        self.built = 0
        self.place: list[str | int | None] = []

    def send(self, item: tuple[str, Any]) -> None:
        event, value = item
        if event in _OPEN:
            level = self.depth
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _invalid(self.loc(), f"JSON nested deeper than {MAX_DEPTH} levels", "too_deep")
        elif event in _CLOSE:
            self.depth -= 1
            level = self.depth
        else:
            level = self.depth
        if level == 0:
            if event not in ("start_map", "end_map"):
                raise _invalid([], "Input should be a JSON object", "model_type")
        elif level == 1 and event == "map_key":
            self._field(value)
        elif self.key == "urls":
            self._url(event, level)
        else:
            self._build(event, value, level)

    def loc(self) -> Loc:
        """Where the value being read goes: ["urls", n], or the field and its place in it."""
        if self.key is None:
            return []
        if self.key == "urls":
            return ["urls", self.count] if self.depth >= 2 else ["urls"]
        return [self.key, *(part for part in self.place if part is not None)]

    def _field(self, key: str) -> None:
        if key in self.fields:
            raise _invalid([key], "duplicate field", "duplicate_field")
        self.key, self.fields[key] = key, None
        self.builder, self.place = (None, []) if key == "urls" else (ijson.ObjectBuilder(), [])

    def _url(self, event: str, level: int) -> None:
        if level == 2 and event == "string":
            self.count += 1
        elif level == 1 and event == "end_array":
            self.key = None  # the list is complete
        elif level == 2:
            raise _invalid(["urls", self.count], "Input should be a valid string", "string_type")
        elif event != "start_array":
            raise _invalid(["urls"], "Input should be a valid list", "list_type")

    def _build(self, event: str, value: Any, level: int) -> None:
        self.built += 1
        if self.built > MAX_FIELD_VALUES:
            detail = f"more than {MAX_FIELD_VALUES} JSON values outside urls"
            raise _invalid([self.key or ""], detail, "too_long")
        self.builder.event(event, value)
        self._move(event, value)
        if level == 1 and event not in _OPEN:  # the field's value is complete
            self.fields[self.key or ""] = self.builder.value
            self.key = None

    def _move(self, event: str, value: Any) -> None:
        """Keep `place` at the key or index the next value of the field will have."""
        if event == "map_key":
            self.place[-1] = value
        elif event == "start_map":
            self.place.append(None)
        elif event == "start_array":
            self.place.append(0)
        else:
            if event in _CLOSE:
                self.place.pop()
            if self.place:  # a value is complete: the next has the next index, or a key comes
                last = self.place[-1]
                self.place[-1] = last + 1 if isinstance(last, int) else None


def _fields(handle: IO[bytes]) -> tuple[dict[str, Any], int]:
    """The body's fields as plain values (one URL stands in for the URLs), and how many URLs."""
    handle.seek(0)
    state = _Scan()
    parser = ijson.basic_parse_coro(state, use_float=True)
    try:
        while block := handle.read(READ_BYTES):
            parser.send(block)
        parser.close()
    except UnicodeDecodeError:  # yajl wrote a lone surrogate escape as bytes that are not UTF-8
        raise _invalid(state.loc(), "invalid Unicode: a lone surrogate escape is not a character",
                       "string_unicode") from None  # fmt: skip
    except ijson.JSONError as exc:
        raise _invalid([], f"invalid JSON: {exc}", "json_invalid") from None
    fields = dict(state.fields)
    if "urls" in fields:
        fields["urls"] = [PLACEHOLDER] if state.count else []
    return fields, state.count


def validated(fields: dict[str, Any], model: type[M]) -> M:
    """The fields as `model`, or the model's 422."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise HTTPException(422, json.loads(exc.json(include_url=False, include_input=False))) from None


def urls(handle: IO[bytes]) -> Iterator[str]:
    """The body's URLs, one at a time (the body passed `_fields`, so it is at most MAX_DEPTH deep)."""
    handle.seek(0)
    yield from ijson.items(handle, "urls.item", buf_size=READ_BYTES)


def scan_to(paths: list[str], model: type[BaseModel]) -> tuple[dict[str, Any], int]:
    """In the intake process: validate the body at the first path against `model` (URLs stood in
    for), count its URLs, then write them to the second. The fields come back as plain values (`validated`
    builds the model again: models do not pickle)."""
    path, out = paths
    with open(path, "rb") as handle:
        fields, count = _fields(handle)
        validated(fields, model)  # refused before its URLs are written
        if count:
            write_urls(urls(handle), out)
    return fields, count
