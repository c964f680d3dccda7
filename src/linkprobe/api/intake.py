"""Reading task submissions: JSON, text/plain (one URL a line) or multipart files (URL lists or
documents, api/documents.py).

Every body is spooled to a temporary file (unlinked) while it is hashed, so a million-URL upload
never sits in memory.

Parsing and counting a body is CPU work linear in its size (up to LINKPROBE_MAX_REQUEST_BYTES): it
runs in an intake process (api/offload.py), which writes the task's URLs, filtered and in order,
to a second spool; this process streams that one into the store. So neither the event loop nor
this process's GIL is held by the work, and /healthz and the task routes keep answering while a
large or hostile body is read.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from fastapi import HTTPException, Request
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from linkprobe.api import jsonstream
from linkprobe.api.documents import FIELDS as DOCUMENT_FIELDS
from linkprobe.api.documents import MAX_PATTERNS, DocumentFields, Upload, document_fields, extract_uploads
from linkprobe.api.jsonstream import M
from linkprobe.api.models import Submit, TaskCreate
from linkprobe.api.offload import INTAKE, read_urls, write_urls
from linkprobe.api.options import ProbeOptionsModel, options_of
from linkprobe.engine import ProbeOptions
from linkprobe.engine.urls import url_lines
from linkprobe.extract import kind_for_content_type
from linkprobe.settings import Settings
from linkprobe.store import CrawlSpec, NewTask

FORM_FIELDS = ("name", "description", "options", *DOCUMENT_FIELDS)
MAX_FORM_FIELDS = 5 + 2 * MAX_PATTERNS  # one of each, and the include and exclude patterns


@dataclass
class Submission:
    task: NewTask
    urls: Any  # an iterable of URL strings, consumed once by the store
    count: int
    fingerprint: str
    files: list[IO[bytes]] = field(default_factory=list)

    def close(self) -> None:
        for handle in self.files:
            handle.close()


def too_large(settings: Settings) -> HTTPException:
    return HTTPException(413, f"request body larger than the limit of {settings.max_request_bytes} bytes")


def documents_too_large(settings: Settings) -> HTTPException:
    limit = settings.max_document_bytes
    return HTTPException(413, f"documents larger than {limit} bytes together (LINKPROBE_MAX_DOCUMENT_BYTES)")


def check_count(count: int, settings: Settings) -> None:
    if count > settings.max_urls_per_task:
        raise HTTPException(
            413, f"{count} URLs exceed the limit of {settings.max_urls_per_task} URLs per task"
        )
    if count == 0:
        raise HTTPException(422, "the task has no URLs")


def _spool_file() -> IO[bytes]:
    """A temporary file on disk, already unlinked: an intake process opens it by its descriptor."""
    return tempfile.TemporaryFile()


def _lines(path: str) -> Iterator[str]:
    with open(path, "rb") as handle:
        yield from url_lines(_whole_lines(_decoded_blocks(handle)))


def _write_url_lines(paths: list[str]) -> int:
    """In the intake process: the URLs of the URL lists at `paths`, in order, written to the
    last path."""
    *lists, out = paths
    return write_urls((url for path in lists for url in _lines(path)), out)


async def _url_lists(handles: list[IO[bytes]]) -> tuple[IO[bytes], int]:
    """The URL lists' URLs in a spool of their own (read by read_urls), and how many."""
    out = _spool_file()
    try:
        count = await INTAKE.run(_write_url_lines, [*handles, out])
    except BaseException:
        out.close()
        raise
    return out, count


def _whole_lines(blocks: Iterable[str]) -> Iterator[str]:
    """The same text, cut only just after a line end (`\n` or `\r`). url_lines joins a partial
    line to the next piece and splits the whole again, which is quadratic on a line of megabytes;
    cut here, it splits every piece once. A long line is kept in pieces and joined once."""
    pending: list[str] = []
    for block in blocks:
        end = max(block.rfind("\n"), block.rfind("\r")) + 1
        if not end:
            pending.append(block)
            continue
        yield "".join((*pending, block[:end]))
        pending = [block[end:]]
    yield "".join(pending)


def _decoded_blocks(handle: IO[bytes]) -> Iterator[str]:
    """The text in blocks: read by size, not by b"\\n", since a `\\r` alone also ends a line."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while block := handle.read(1 << 16):
        yield decoder.decode(block)
    yield decoder.decode(b"", final=True)


async def _spool(chunks: AsyncIterator[bytes], settings: Settings) -> tuple[IO[bytes], str]:
    spool = _spool_file()
    digest, size = hashlib.sha256(), 0
    async for chunk in chunks:
        size += len(chunk)
        if size > settings.max_request_bytes:
            spool.close()
            raise too_large(settings)
        digest.update(chunk)
        spool.write(chunk)
    spool.flush()  # read by another process, through the file
    return spool, digest.hexdigest()


def _options(raw: str | None) -> ProbeOptions:
    """The `options` field or parameter (ProbeOptions as JSON) of a text, multipart or document
    upload; 422 naming the field, as a JSON body's options."""
    if not raw:
        return ProbeOptions()
    try:
        return options_of(ProbeOptionsModel.model_validate_json(raw))
    except ValidationError as exc:
        raise HTTPException(422, json.loads(exc.json(include_url=False, include_input=False))) from None


async def _scan_json(request: Request, settings: Settings, model: type[M]) -> tuple[M, Submission]:
    """Spool a JSON body and validate it as `model` (jsonstream): never held whole, nor its URLs."""
    spool, fingerprint = await _spool(request.stream(), settings)
    out = _spool_file()
    try:
        fields, count = await INTAKE.run(jsonstream.scan_to, [spool, out], model)
        parsed = jsonstream.validated(fields, model)
    except BaseException:
        out.close()
        raise
    finally:
        spool.close()  # read whole: its URLs are in `out`
    return parsed, Submission(NewTask(), read_urls(out), count, fingerprint, [out])


async def from_json(request: Request, settings: Settings) -> Submission:
    created, submission = await _scan_json(request, settings, TaskCreate)
    submission.task = NewTask(created.name, created.description, options_of(created.options))
    if created.crawl is not None:  # the start page is the task's one URL; the rest is discovered
        submission.task.crawl = CrawlSpec(**created.crawl.model_dump())
        submission.urls, submission.count = [submission.task.crawl.start], 1
    return submission


async def from_short_json(request: Request, settings: Settings) -> Submission:
    """The short form {"urls": [...]} (POST /api/v1/submit), read the same way."""
    return (await _scan_json(request, settings, Submit))[1]


async def from_text(request: Request, settings: Settings) -> Submission:
    spool, fingerprint = await _spool(request.stream(), settings)
    try:
        query = request.query_params
        task = NewTask(query.get("name"), query.get("description"), _options(query.get("options")))
        out, count = await _url_lists([spool])
    finally:
        spool.close()
    return Submission(task, read_urls(out), count, fingerprint, [out])


async def _file_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1 << 16):
        yield chunk


def _counted(request: Request, settings: Settings) -> Request:
    """The request, its body counted as it is read: every multipart part counts against the limit."""
    size = 0

    async def receive() -> Message:
        nonlocal size
        message = await request.receive()
        size += len(message.get("body", b""))
        if size > settings.max_request_bytes:
            raise too_large(settings)
        return message

    return Request(request.scope, receive)


async def _form(request: Request, settings: Settings) -> FormData:
    """The parsed form: up to max_upload_files `file` parts, and the text fields; every byte counted."""
    try:
        return await _counted(request, settings).form(
            max_files=settings.max_upload_files, max_fields=MAX_FORM_FIELDS, max_part_size=64 << 10
        )
    except StarletteHTTPException as exc:
        if exc.status_code == 400:  # python-multipart's limits, as Starlette reports them
            raise HTTPException(422, f"multipart upload refused: {exc.detail}") from None
        raise


def _check_form(form: FormData) -> list[UploadFile]:
    unknown = sorted(set(form.keys()) - {"file", *FORM_FIELDS})
    if unknown:
        raise HTTPException(422, f"unknown multipart fields {unknown}: only file, {', '.join(FORM_FIELDS)}")
    files = form.getlist("file")
    if not files or not all(isinstance(upload, UploadFile) for upload in files):
        raise HTTPException(422, "multipart upload needs 'file' parts: URL lists or documents")
    return [upload for upload in files if isinstance(upload, UploadFile)]


async def _uploads(files: list[UploadFile], fields: DocumentFields, settings: Settings) -> list[Upload]:
    """Each file part spooled, with its kind; the digests go into the fingerprint."""
    uploads: list[Upload] = []
    document_bytes = 0
    try:
        for number, upload in enumerate(files, 1):
            name = upload.filename or f"file {number}"
            spool, digest = await _spool(_file_chunks(upload), settings)
            uploads.append(Upload(name, fields.kind_of(name, upload.content_type), spool, digest))
            document_bytes += spool.tell() if uploads[-1].kind is not None else 0
            if document_bytes > settings.max_document_bytes:  # parsed whole: memory grows with them
                raise documents_too_large(settings)
    except BaseException:
        for done in uploads:
            done.handle.close()
        raise
    return uploads


def _fingerprint(uploads: list[Upload], form: FormData) -> str:
    """The whole upload's identity for Idempotency-Key: every file and every field."""
    digest = hashlib.sha256()
    for upload in uploads:
        digest.update(f"{upload.name}\0{upload.kind}\0{upload.digest}\0".encode())
    for key, value in form.multi_items():
        if isinstance(value, str):
            digest.update(f"{key}\0{value}\0".encode())
    return digest.hexdigest()


async def from_multipart(request: Request, settings: Settings) -> Submission:
    """`file` parts (URL lists or documents) and the fields. URL lists alone give every line's URL
    in order; with a document, links are extracted and each unique URL kept once."""
    form = await _form(request, settings)
    try:
        fields = document_fields(form)
        task = NewTask(_text(form, "name"), _text(form, "description"), _options(_text(form, "options")))
        uploads = await _uploads(_check_form(form), fields, settings)
    finally:
        await form.close()
    return await _submission(task, uploads, fields, _fingerprint(uploads, form), settings)


async def from_document(request: Request, settings: Settings, content_type: str) -> Submission:
    """A document as the whole body (text/html, text/markdown, application/xml...): its fields in
    the query string, its name (the `document` of its sources) in `?document=`, else "body"."""
    query = request.query_params
    fields = document_fields(query)
    task = NewTask(query.get("name"), query.get("description"), _options(query.get("options")))
    name = query.get("document") or "body"
    spool, digest = await _spool(request.stream(), settings)
    upload = Upload(name, fields.kind_of(name, content_type), spool, digest)
    if upload.kind is not None and spool.tell() > settings.max_document_bytes:
        spool.close()
        raise documents_too_large(settings)
    fingerprint = hashlib.sha256(f"{digest}\0{query}".encode()).hexdigest()
    return await _submission(task, [upload], fields, fingerprint, settings)


async def _submission(
    task: NewTask, uploads: list[Upload], fields: DocumentFields, fingerprint: str, settings: Settings
) -> Submission:
    """URL lists alone: their URLs in order. With a document: its links extracted, each unique URL
    once, with its sources. Either way found in an intake process, and streamed from its spool."""
    handles = [upload.handle for upload in uploads]
    try:
        if all(upload.kind is None for upload in uploads):
            out, count = await _url_lists(handles)
        else:
            out, sources = _spool_file(), _spool_file()
            try:
                count, task.sources = await extract_uploads(
                    uploads, fields, settings.max_urls_per_task, out, sources
                )
            except BaseException:
                out.close()
                sources.close()
                raise
            return Submission(task, read_urls(out), count, fingerprint, [out, sources])
    finally:
        for handle in handles:
            handle.close()  # read whole: the URLs are in `out`
    return Submission(task, read_urls(out), count, fingerprint, [out])


def _text(form: FormData, key: str) -> str | None:
    value = form.get(key)
    return value if isinstance(value, str) else None


async def read_submission(request: Request, settings: Settings) -> Submission:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_request_bytes:
        raise too_large(settings)  # refused before a byte of the body is read
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind == "application/json":
        return await from_json(request, settings)
    if kind == "text/plain" and "input_format" not in request.query_params:
        return await from_text(request, settings)
    if kind == "multipart/form-data":
        return await from_multipart(request, settings)
    if kind_for_content_type(kind) is not None:
        return await from_document(request, settings, kind)
    raise HTTPException(
        415,
        f"unsupported content type {kind!r}: use application/json, text/plain, multipart/form-data "
        "or a document's (text/html, text/markdown, application/xml, application/gzip)",
    )
