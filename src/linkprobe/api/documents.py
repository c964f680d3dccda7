"""Document uploads: links extracted from the HTML, Markdown, sitemap and text files of a multipart
upload, each unique URL once per task with where it was found (its `sources`).

Extraction (lxml on a large page) runs on one thread, off the event loop. A document is read
whole; HTML above 4 MiB is parsed in blocks with its finished elements dropped (a 26 MB page costs
+50-80 MB, bench/extract.py), but the links found are kept, so the documents of an upload are
limited together (LINKPROBE_MAX_DOCUMENT_BYTES) and one upload is extracted at a time.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any
from urllib.parse import quote, urljoin, urlsplit

from fastapi import HTTPException
from starlette.datastructures import ImmutableMultiDict

from linkprobe.engine import ConfigError
from linkprobe.engine.urls import numbered_url_lines, other_scheme
from linkprobe.extract import (
    Kind,
    LinkFilter,
    Sources,
    extract,
    kind_for_content_type,
    kind_for_name,
    probe_target,
)
from linkprobe.extract.document import MAX_PLACES
from linkprobe.frontier import MAX_PATTERN_LENGTH

URL_LIST = "urls"
INPUT_FORMATS = (URL_LIST, *(kind.value for kind in Kind))
FIELDS = ("input_format", "base_url", "include", "exclude")
MAX_PATTERNS = 50  # include or exclude fields in one upload
LINE_MASK = (1 << 32) - 1  # a place's line, packed under its document's number
_EXTRACTION = ThreadPoolExecutor(max_workers=1, thread_name_prefix="linkprobe-extract")


@dataclass(slots=True)
class Upload:
    """One file part: its name (the `document` of each place), its kind (None: a URL list), its bytes."""

    name: str
    kind: Kind | None
    handle: IO[bytes]
    digest: str = ""  # sha256 of the part, for the upload's fingerprint


@dataclass(slots=True)
class DocumentFields:
    """The multipart fields that say how the files are read."""

    input_format: str | None = None
    base_url: str | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    keep: LinkFilter = field(default_factory=LinkFilter)

    def kind_of(self, name: str, content_type: str | None) -> Kind | None:
        """A file's kind: forced by input_format, else by its extension, else by its content type;
        None (a URL list, as before documents) for text/plain and anything unknown."""
        if self.input_format is not None:
            return None if self.input_format == URL_LIST else Kind(self.input_format)
        kind = kind_for_name(name) or kind_for_content_type(content_type)
        return None if kind is Kind.TEXT else kind


def _single(form: ImmutableMultiDict[str, Any], name: str) -> str | None:
    values = form.getlist(name)
    if len(values) > 1:
        raise HTTPException(422, f"{name} is given {len(values)} times: at most once")
    value = values[0] if values else None
    return value if isinstance(value, str) and value.strip() else None


def _patterns(form: ImmutableMultiDict[str, Any], name: str) -> list[str]:
    values = [value for value in form.getlist(name) if isinstance(value, str) and value]
    if len(values) > MAX_PATTERNS:
        raise HTTPException(422, f"{name}: {len(values)} patterns, at most {MAX_PATTERNS}")
    for value in values:
        if len(value) > MAX_PATTERN_LENGTH:
            raise HTTPException(422, f"{name}: a pattern longer than {MAX_PATTERN_LENGTH} characters")
    return values


def document_fields(form: ImmutableMultiDict[str, Any]) -> DocumentFields:
    """The fields (of a multipart form, or the query string), validated: a bad value is a 422
    naming the field."""
    input_format = _single(form, "input_format")
    if input_format is not None and input_format not in INPUT_FORMATS:
        raise HTTPException(422, f"input_format {input_format!r} is not one of {', '.join(INPUT_FORMATS)}")
    base_url = _single(form, "base_url")
    if base_url is not None:
        parts = urlsplit(base_url.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise HTTPException(422, f"base_url {base_url!r} is not an absolute http:// or https:// URL")
        base_url = base_url.strip()
    include, exclude = _patterns(form, "include"), _patterns(form, "exclude")
    try:
        keep = LinkFilter(include, exclude, names=("include", "exclude"))
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    return DocumentFields(input_format, base_url, include, exclude, keep)


def document_url(name: str, base_url: str | None) -> str | None:
    """Where an uploaded document is published: base_url (a folder, as `check --base-url`) and its
    file name. None without base_url: relative links stay as written (and come out invalid_url)."""
    if base_url is None:
        return None
    folder = base_url if base_url.endswith("/") else base_url + "/"
    return urljoin(folder, quote(PurePosixPath(name).name))


class Collected:
    """Unique URLs in first-seen order and where each was found; more than `limit` is a 413.

    Kept compact, since a page may hold a million links: a URL's index in a dict, its count and
    first place in arrays, and only its further places (up to MAX_PLACES) as objects. As a dict of
    Sources per URL, then of their dicts for the store, a 44 MB page of 1M links took 1.9 GB."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.urls: list[str] = []
        self.index: dict[str, int] = {}
        self.documents: list[str] = []  # names, by number
        self.totals = array("q")
        self.first = array("q")  # per URL: document number << 32 | line of its first place
        self.more: dict[int, list[tuple[int, int]]] = {}  # per URL: its next places (document, line)

    def document(self, name: str) -> int:
        self.documents.append(name)
        return len(self.documents) - 1

    def add(self, url: str, document: int, line: int) -> None:
        index = self.index.get(url)
        if index is None:
            if len(self.urls) >= self.limit:
                raise HTTPException(413, f"the files hold more than {self.limit} URLs, the limit per task")
            self.index[url] = len(self.urls)
            self.urls.append(url)
            self.totals.append(1)
            self.first.append(document << 32 | min(line, LINE_MASK))
            return
        self.totals[index] += 1
        more = self.more.setdefault(index, [])
        if len(more) < MAX_PLACES - 1:
            more.append((document, line))

    def sources(self, index: int) -> dict[str, Any]:
        """The URL's `sources`, as extract.Sources says them."""
        first = self.first[index]
        places = [(first >> 32, first & LINE_MASK), *self.more.get(index, ())]
        return Sources([(self.documents[d], line) for d, line in places], self.totals[index]).to_dict()


class SourcesByIndex(Mapping[int, dict[str, Any]]):
    """Each input index's `sources`, built when the store reads it (a batch at a time)."""

    def __init__(self, collected: Collected) -> None:
        self.collected = collected

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.collected.urls):
            raise KeyError(index)
        return self.collected.sources(index)

    def __len__(self) -> int:
        return len(self.collected.urls)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.collected.urls)))


def _add_document(collected: Collected, upload: Upload, kind: Kind, fields: DocumentFields) -> None:
    upload.handle.seek(0)
    links = extract(upload.handle.read(), kind, document_url(upload.name, fields.base_url)).links
    if not links:
        raise HTTPException(422, f"no links found in {upload.name} (read as {kind.value})")
    document = collected.document(upload.name)
    for link in links:
        url = link.url
        if other_scheme(url) is None:
            url = probe_target(url) or url  # a fragment never reaches a server: one probe per page
        if fields.keep(url):
            collected.add(url, document, link.line)


def _add_url_list(collected: Collected, upload: Upload) -> None:
    upload.handle.seek(0)
    document = collected.document(upload.name)
    for line, url in numbered_url_lines(upload.handle.read().decode("utf-8", errors="replace")):
        collected.add(url, document, line)


def collect(
    uploads: list[Upload], fields: DocumentFields, limit: int
) -> tuple[list[str], Mapping[int, dict[str, Any]]]:
    """The task's unique URLs and, by input index, their sources. include/exclude apply to links
    found in documents; a URL list's lines are all kept (as in `check`)."""
    collected = Collected(limit)
    for upload in uploads:
        if upload.kind is None:
            _add_url_list(collected, upload)
        else:
            _add_document(collected, upload, upload.kind, fields)
    if not collected.urls:
        raise HTTPException(422, "the task has no URLs: include/exclude left none of the links found")
    return collected.urls, SourcesByIndex(collected)


async def extract_uploads(
    uploads: list[Upload], fields: DocumentFields, limit: int
) -> tuple[list[str], Mapping[int, dict[str, Any]]]:
    """collect() on the extraction pool: the event loop keeps serving while lxml parses."""
    return await asyncio.get_running_loop().run_in_executor(_EXTRACTION, collect, uploads, fields, limit)
