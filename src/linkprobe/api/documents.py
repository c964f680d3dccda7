"""Document uploads: links extracted from the HTML, Markdown, sitemap and text files of a multipart
upload, each unique URL once per task with where it was found (its `sources`).

Extraction (lxml on a large page) runs in an intake process (api/offload.py), off the event loop
and off this process's GIL. A document is read whole; HTML above 4 MiB is parsed in blocks with
its finished elements dropped (a 26 MB page costs +50-80 MB, bench/extract.py), but the links found
are kept, so the documents of an upload are limited together (LINKPROBE_MAX_DOCUMENT_BYTES). The
process writes the unique URLs to a file and each one's `sources` as a JSON line to another (the
places are kept compact meanwhile, `Places`); the store reads both a batch at a time, and this
process only wraps each line (a million links' sources built here took ~1.4 s of its GIL).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any
from urllib.parse import quote, urljoin, urlsplit

import orjson
from fastapi import HTTPException
from starlette.datastructures import ImmutableMultiDict

from linkprobe.api.offload import DOCUMENTS, write_urls
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

    @classmethod
    def of(
        cls, input_format: str | None, base_url: str | None, include: list[str], exclude: list[str]
    ) -> DocumentFields:
        """The fields with their filter compiled (ConfigError for a pattern RE2 refuses)."""
        keep = LinkFilter(include, exclude, names=("include", "exclude"))
        return cls(input_format, base_url, include, exclude, keep)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its values (for the intake process): the compiled filter is built again."""
        return (DocumentFields.of, (self.input_format, self.base_url, self.include, self.exclude))

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
        return DocumentFields.of(input_format, base_url, include, exclude)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None


def document_url(name: str, base_url: str | None) -> str | None:
    """Where an uploaded document is published: base_url (a folder, as `check --base-url`) and its
    file name. None without base_url: relative links stay as written (and come out invalid_url)."""
    if base_url is None:
        return None
    folder = base_url if base_url.endswith("/") else base_url + "/"
    return urljoin(folder, quote(PurePosixPath(name).name))


@dataclass(slots=True)
class Places:
    """Where each unique URL was found, by its index; compact, since a page may hold a million
    links: a URL's count and first place in arrays, and only its further places (up to
    MAX_PLACES) as objects. Built in the intake process and pickled back whole (as a dict of
    Sources per URL, then of their dicts for the store, a 44 MB page of 1M links took 1.9 GB)."""

    documents: list[str] = field(default_factory=list)  # names, by number
    totals: array[int] = field(default_factory=lambda: array("q"))
    first: array[int] = field(default_factory=lambda: array("q"))  # document number << 32 | line
    more: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # next places (document, line)

    def sources(self, index: int) -> dict[str, Any]:
        """The URL's `sources`, as extract.Sources says them."""
        first = self.first[index]
        places = [(first >> 32, first & LINE_MASK), *self.more.get(index, ())]
        return Sources([(self.documents[d], line) for d, line in places], self.totals[index]).to_dict()


class Collected:
    """Unique URLs in first-seen order and where each was found; more than `limit` is a 413."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.urls: list[str] = []
        self.index: dict[str, int] = {}
        self.places = Places()

    def document(self, name: str) -> int:
        self.places.documents.append(name)
        return len(self.places.documents) - 1

    def add(self, url: str, document: int, line: int) -> None:
        index = self.index.get(url)
        places = self.places
        if index is None:
            if len(self.urls) >= self.limit:
                raise HTTPException(413, f"the files hold more than {self.limit} URLs, the limit per task")
            self.index[url] = len(self.urls)
            self.urls.append(url)
            places.totals.append(1)
            places.first.append(document << 32 | min(line, LINE_MASK))
            return
        places.totals[index] += 1
        more = places.more.setdefault(index, [])
        if len(more) < MAX_PLACES - 1:
            more.append((document, line))


class SourceLines:
    """Each input index's `sources` from the file the intake process wrote (one JSON line each,
    in index order), passed to the store unparsed. Read once, as the store reads the URLs."""

    def __init__(self, spool: IO[bytes]) -> None:
        self.spool = spool

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        self.spool.seek(0)
        for index, line in enumerate(self.spool):
            yield index, orjson.Fragment(line[:-1])


def write_sources(places: Places, path: str) -> None:
    with open(path, "wb") as out:
        for index in range(len(places.first)):
            out.write(orjson.dumps(places.sources(index)) + b"\n")


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


def collect(uploads: list[Upload], fields: DocumentFields, limit: int) -> Collected:
    """The task's unique URLs and their places. include/exclude apply to links found in
    documents; a URL list's lines are all kept (as in `check`)."""
    collected = Collected(limit)
    for upload in uploads:
        if upload.kind is None:
            _add_url_list(collected, upload)
        else:
            _add_document(collected, upload, upload.kind, fields)
    if not collected.urls:
        raise HTTPException(422, "the task has no URLs: include/exclude left none of the links found")
    return collected


def _collect_to(
    paths: list[str], parts: list[tuple[str, Kind | None]], fields: DocumentFields, limit: int
) -> int:
    """In the intake process: collect() from the spools at `paths` (`parts` names them), the URLs
    written to the second last path and their sources to the last; how many."""
    *spools, out, sources = paths
    uploads: list[Upload] = []
    try:
        for (name, kind), path in zip(parts, spools, strict=True):
            uploads.append(Upload(name, kind, open(path, "rb")))  # noqa: SIM115 (closed below)
        collected = collect(uploads, fields, limit)
    finally:
        for upload in uploads:
            upload.handle.close()
    write_sources(collected.places, sources)
    return write_urls(collected.urls, out)


async def extract_uploads(
    uploads: list[Upload], fields: DocumentFields, limit: int, out: IO[bytes], sources: IO[bytes]
) -> tuple[int, SourceLines]:
    """collect() in an intake process, the unique URLs written to `out` (offload.read_urls reads
    them) and their sources to `sources`: how many, and the sources by index."""
    parts = [(upload.name, upload.kind) for upload in uploads]
    files = [*(upload.handle for upload in uploads), out, sources]
    count = await DOCUMENTS.run(_collect_to, files, parts, fields, limit)
    return count, SourceLines(sources)
