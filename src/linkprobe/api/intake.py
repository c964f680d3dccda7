"""Reading task submissions: JSON, text/plain (one URL a line) or a multipart file upload.

Large text uploads are spooled to a temporary file while they are counted and hashed, so a
million-URL upload never sits in memory; the store then reads the file line by line.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from fastapi import HTTPException, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from linkprobe.api import jsonstream
from linkprobe.api.jsonstream import M
from linkprobe.api.models import Submit, TaskCreate
from linkprobe.api.options import ProbeOptionsModel
from linkprobe.engine.urls import url_lines
from linkprobe.settings import Settings
from linkprobe.store import NewTask

SPOOL_IN_MEMORY = 1 << 20
FORM_FIELDS = ("name", "description", "options")


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


def check_count(count: int, settings: Settings) -> None:
    if count > settings.max_urls_per_task:
        raise HTTPException(
            413, f"{count} URLs exceed the limit of {settings.max_urls_per_task} URLs per task"
        )
    if count == 0:
        raise HTTPException(422, "the task has no URLs")


def _lines(handle: IO[bytes]) -> Iterator[str]:
    handle.seek(0)
    yield from url_lines(_decoded_blocks(handle))


def _decoded_blocks(handle: IO[bytes]) -> Iterator[str]:
    """The text in blocks: read by size, not by b"\\n", since a `\\r` alone also ends a line."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while block := handle.read(1 << 16):
        yield decoder.decode(block)
    yield decoder.decode(b"", final=True)


def _count_lines(handle: IO[bytes]) -> int:
    return sum(1 for _ in _lines(handle))


async def _spool(chunks: AsyncIterator[bytes], settings: Settings) -> tuple[IO[bytes], str]:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 (closed by Submission)
    digest, size = hashlib.sha256(), 0
    async for chunk in chunks:
        size += len(chunk)
        if size > settings.max_request_bytes:
            spool.close()
            raise too_large(settings)
        digest.update(chunk)
        spool.write(chunk)
    return spool, digest.hexdigest()


def _options(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        return ProbeOptionsModel.model_validate_json(raw).model_dump(exclude_defaults=True)
    except ValidationError as exc:
        raise HTTPException(422, json.loads(exc.json(include_url=False, include_input=False))) from None


async def _scan_json(request: Request, settings: Settings, model: type[M]) -> tuple[M, Submission]:
    """Spool a JSON body and validate it as `model` (jsonstream): never held whole, nor its URLs."""
    spool, fingerprint = await _spool(request.stream(), settings)
    try:
        parsed, count = jsonstream.scan(spool, model)
    except BaseException:
        spool.close()
        raise
    return parsed, Submission(NewTask(), jsonstream.urls(spool), count, fingerprint, [spool])


async def from_json(request: Request, settings: Settings) -> Submission:
    created, submission = await _scan_json(request, settings, TaskCreate)
    options = created.options.model_dump(exclude_defaults=True)
    submission.task = NewTask(created.name, created.description, options)
    return submission


async def from_short_json(request: Request, settings: Settings) -> Submission:
    """The short form {"urls": [...]} (POST /api/v1/submit), read the same way."""
    return (await _scan_json(request, settings, Submit))[1]


async def from_text(request: Request, settings: Settings) -> Submission:
    spool, fingerprint = await _spool(request.stream(), settings)
    query = request.query_params
    submission = Submission(
        NewTask(query.get("name"), query.get("description"), _options(query.get("options"))),
        _lines(spool), _count_lines(spool), fingerprint, [spool],
    )  # fmt: skip
    return submission


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


async def from_multipart(request: Request, settings: Settings) -> Submission:
    try:  # one file part (`file`) and the three text fields: anything more is refused, not spooled
        form = await _counted(request, settings).form(
            max_files=1, max_fields=len(FORM_FIELDS), max_part_size=64 << 10
        )
    except StarletteHTTPException as exc:
        if exc.status_code == 400:  # python-multipart's limits, as Starlette reports them
            raise HTTPException(422, f"multipart upload refused: {exc.detail}") from None
        raise
    unknown = sorted(set(form.keys()) - {"file", *FORM_FIELDS})
    if unknown:
        await form.close()
        raise HTTPException(422, f"unknown multipart fields {unknown}: only file, {', '.join(FORM_FIELDS)}")
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, "multipart upload needs a 'file' field with one URL per line")
    spool, fingerprint = await _spool(_file_chunks(upload), settings)
    name, description, options = (form.get(k) for k in ("name", "description", "options"))
    task = NewTask(
        name if isinstance(name, str) else None,
        description if isinstance(description, str) else None,
        _options(options if isinstance(options, str) else None),
    )
    return Submission(task, _lines(spool), _count_lines(spool), fingerprint, [spool])


async def read_submission(request: Request, settings: Settings) -> Submission:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_request_bytes:
        raise too_large(settings)  # refused before a byte of the body is read
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind == "application/json":
        return await from_json(request, settings)
    if kind == "text/plain":
        return await from_text(request, settings)
    if kind == "multipart/form-data":
        return await from_multipart(request, settings)
    raise HTTPException(
        415, f"unsupported content type {kind!r}: use application/json, text/plain or multipart"
    )
