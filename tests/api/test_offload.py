"""Intake's processes (api/offload.py): a refusal there is the same HTTP error here; a process
that dies or hangs is a 503 that says so, never a hung request, and the pool serves again; the
URL file gives back every URL whole."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
from fastapi import HTTPException

from linkprobe.api import offload
from tests.api.test_documents import intake_processes
from tests.conftest import start_service, wait_for

# Jobs, run in the intake process (imported there by name): fn(paths, *args).


def _refuse(paths: list[str], detail: str) -> None:
    raise HTTPException(413, detail)


def _die(paths: list[str]) -> None:
    os._exit(3)


def _hang(paths: list[str]) -> None:
    Path(paths[0]).write_text(str(os.getpid()))
    time.sleep(3600)


def _read(paths: list[str]) -> bytes:
    return Path(paths[0]).read_bytes()


def _copy_later(paths: list[str]) -> None:
    time.sleep(1)
    Path(paths[1]).write_bytes(Path(paths[0]).read_bytes())


@pytest.fixture
def spool() -> Iterator[IO[bytes]]:
    with tempfile.TemporaryFile() as file:
        file.write(b"the body")
        file.flush()
        yield file


async def test_a_refusal_in_the_process_is_the_same_http_error() -> None:
    with pytest.raises(HTTPException) as refused:
        await offload.INTAKE.run(_refuse, [], "12 URLs exceed the limit")
    assert (refused.value.status_code, refused.value.detail) == (413, "12 URLs exceed the limit")


async def test_the_process_reads_the_spool_by_its_descriptor(spool: IO[bytes]) -> None:
    assert await offload.INTAKE.run(_read, [spool]) == b"the body"


async def test_a_job_whose_caller_gave_up_still_reads_its_own_files(spool: IO[bytes]) -> None:
    """The caller closes its spool at once (its client went away): the job still reads that
    file, not another that took its descriptor's number meanwhile."""
    with tempfile.TemporaryFile() as out:
        job = asyncio.ensure_future(offload.INTAKE.run(_copy_later, [spool, out]))
        await asyncio.sleep(0.1)
        job.cancel()
        number = spool.fileno()
        spool.close()
        with tempfile.TemporaryFile() as other:
            other.write(b"another request's body")
            other.flush()
            assert other.fileno() == number  # the number is taken again
            await wait_for(lambda: os.fstat(out.fileno()).st_size > 0, "the job to copy its spool")
        out.seek(0)
        assert out.read() == b"the body"


async def test_a_process_that_dies_is_a_503_and_the_next_job_runs(spool: IO[bytes]) -> None:
    with pytest.raises(HTTPException) as died:
        await offload.INTAKE.run(_die, [])
    assert died.value.status_code == 503 and "ended unexpectedly" in died.value.detail
    assert await offload.INTAKE.run(_read, [spool]) == b"the body"


async def test_a_process_that_hangs_is_a_503_within_the_bound_and_is_killed(
    spool: IO[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offload, "JOB_TIMEOUT_S", 2.0)
    with tempfile.TemporaryFile() as pid_file:
        with pytest.raises(HTTPException) as hung:
            await offload.INTAKE.run(_hang, [pid_file])
        assert hung.value.status_code == 503 and "longer than 2 s" in hung.value.detail
        pid_file.seek(0)
        pid = int(pid_file.read())
    await wait_for(lambda: not _alive(pid), "the hung process to be killed")
    assert await offload.INTAKE.run(_read, [spool]) == b"the body"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_url_file_gives_back_every_url_whole() -> None:
    urls = [
        "http://a.example/",
        "http://b.example/x\ny",
        '"http://c.example/"',
        "",
        " x ",
        "http://é.example/\r",
    ]
    with tempfile.TemporaryFile() as file:
        assert offload.write_urls(urls, f"/proc/{os.getpid()}/fd/{file.fileno()}") == len(urls)
        assert list(offload.read_urls(file)) == urls


async def test_the_intake_processes_end_with_a_killed_api(tmp_path: Path) -> None:
    service = await start_service(tmp_path, "api", "--db", str(tmp_path / "i.db"), name="api")
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as api:
            sent = await api.post(
                "/api/v1/tasks", content="http://127.0.0.1:9/a\n", headers={"Content-Type": "text/plain"}
            )
            assert sent.status_code == 202, sent.text
        server, pooled = intake_processes(service.process.pid)
    finally:
        await service.stop(kill=True)  # kill -9: nothing of the API's runs its shutdown
    left = [server, *pooled]
    await wait_for(lambda: not any(map(_alive, left)), "the fork server and its processes to end")
