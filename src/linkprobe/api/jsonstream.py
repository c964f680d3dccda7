"""JSON task bodies read from their spooled file by a streaming parser (ijson's C backend, yajl2).

A first pass validates the body and counts its URLs without building the list; a second pass,
run by the store, yields the URLs one by one. Memory stays flat whatever the body's size: only
the small fields (name, description, options) are ever built as objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any, TypeVar

import ijson
from fastapi import HTTPException
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
READ_BYTES = 1 << 16
PLACEHOLDER = "u"  # stands for the URLs while the model checks the other fields
# The other fields are built as objects: a few names and options, or a crawl's patterns. Beyond
# this many JSON values in all they are refused before they fill memory.
MAX_FIELD_VALUES = 10_000


def _invalid(loc: list[Any], msg: str, kind: str) -> HTTPException:
    return HTTPException(422, [{"type": kind, "loc": loc, "msg": msg}])


class _Scan:
    """Top-level fields of one JSON object: `urls` counted (strings only), the others built."""

    def __init__(self) -> None:
        self.count = 0
        self.fields: dict[str, Any] = {}
        self.key: str | None = None
        self.builder: Any = None
        self.built = 0

    def feed(self, prefix: str, event: str, value: Any) -> None:
        if prefix == "":
            self._top(event, value)
        elif self.key == "urls":
            self._url(prefix, event)
        else:
            self._build(event, value)

    def _build(self, event: str, value: Any) -> None:
        self.built += 1
        if self.built > MAX_FIELD_VALUES:
            raise _invalid([self.key], f"more than {MAX_FIELD_VALUES} JSON values outside urls", "too_long")
        self.builder.event(event, value)

    def _top(self, event: str, value: Any) -> None:
        self._close_field()
        if event == "map_key":
            if value in self.fields or (value == "urls" and self.count):
                raise _invalid([value], "duplicate field", "duplicate_field")
            self.key = value
            self.builder = None if value == "urls" else ijson.ObjectBuilder()
            if value == "urls":
                self.fields["urls"] = None
        elif event not in ("start_map", "end_map"):
            raise _invalid([], "Input should be a JSON object", "model_type")

    def _close_field(self) -> None:
        if self.key is not None and self.key != "urls":
            self.fields[self.key] = self.builder.value
        self.key = None

    def _url(self, prefix: str, event: str) -> None:
        if prefix == "urls" and event in ("start_array", "end_array"):
            return
        if prefix == "urls.item" and event == "string":
            self.count += 1
            return
        if prefix == "urls":
            raise _invalid(["urls"], "Input should be a valid list", "list_type")
        raise _invalid(["urls", self.count], "Input should be a valid string", "string_type")


def scan(handle: IO[bytes], model: type[M]) -> tuple[M, int]:
    """Validate the spooled body against `model` (URLs stood in for) and count its URLs."""
    handle.seek(0)
    state = _Scan()
    try:
        for prefix, event, value in ijson.parse(handle, buf_size=READ_BYTES, use_float=True):
            state.feed(prefix, event, value)
    except ijson.JSONError as exc:
        raise _invalid([], f"invalid JSON: {exc}", "json_invalid") from None
    fields = dict(state.fields)
    if "urls" in fields:
        fields["urls"] = [PLACEHOLDER] if state.count else []
    try:
        return model.model_validate(fields), state.count
    except ValidationError as exc:
        raise HTTPException(422, json.loads(exc.json(include_url=False, include_input=False))) from None


def urls(handle: IO[bytes]) -> Iterator[str]:
    """The body's URLs, one at a time (the body passed `scan`)."""
    handle.seek(0)
    yield from ijson.items(handle, "urls.item", buf_size=READ_BYTES)
