"""Intake's CPU work (counting lines, scanning JSON, extracting links) in a separate process.

A thread would keep it off the event loop but not off the GIL: the loop then waits for the GIL
after every I/O call and /healthz crawls while a 260 MB body is counted. Here the body's spool
(an unlinked temporary file) is handed to a pooled process by a /proc/<pid>/fd path, the
process writes the task's URLs to another spool in a compact form (`write_urls`), and this
process only streams that file into the store (`read_urls`).

The pool is started lazily with `forkserver` (the API process has threads: a plain fork could
copy a lock another thread holds). A refusal in the process (HTTPException) comes back as the
same 4xx; a process that ends mid-job, or a job that outlives JOB_TIMEOUT_S, is a 503 (the pool
is then replaced, its processes killed): a request is never left hanging.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import select
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from fastapi import HTTPException

T = TypeVar("T")
# A job's time bound. Every job is linear in its body (at most LINKPROBE_MAX_REQUEST_BYTES): 260 MB
# of text is counted in ~10 s, so this is only reached by a process that hangs.
JOB_TIMEOUT_S = 300.0
NICENESS = 10  # added to the processes' nice value
_PRELOAD = ["linkprobe.api.intake"]  # imported once in the fork server, not in each process


@dataclass(frozen=True, slots=True)
class Refused:
    """An HTTPException raised in the process, carried back to be raised here."""

    status: int
    detail: Any


class Pool:
    """`workers` intake processes, started on the first job."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], files: Sequence[IO[bytes]], *args: Any) -> T:
        """`fn(paths, *args)` in one of the processes, where it opens `files` (unlinked temporary
        files) by `paths`; fn and args are pickled (a module-level function, plain values)."""
        executor, timeout = self._started(), JOB_TIMEOUT_S
        # Descriptors of the job's own, closed when it ends: a caller that gives up (its client
        # went away) closes its files, and their numbers could be reused for another request's
        # spool before the process opens them.
        held = [os.dup(file.fileno()) for file in files]
        try:
            # Submitted from a thread: submit() starts the processes it lacks, and the first
            # waits for the fork server to import linkprobe (a second or more).
            async with asyncio.timeout(timeout):
                future = await asyncio.to_thread(_submit, executor, held, fn, *args)
                result = await asyncio.wrap_future(future)
        except TimeoutError:
            self._discard(executor)
            detail = f"the intake process took longer than {timeout:g} s: try again"
            raise HTTPException(503, detail) from None
        except BrokenProcessPool:
            self._discard(executor)
            raise HTTPException(503, "the intake process ended unexpectedly: try again") from None
        if isinstance(result, Refused):
            raise HTTPException(result.status, result.detail)
        return result

    def _started(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_started, initargs=(os.getpid(),)
            )
        return self._executor

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        """Replace the processes: kill them (one hangs, or one died and broke the executor)."""
        if self._executor is executor:
            self._executor = None
        processes = list((getattr(executor, "_processes", None) or {}).values())  # no public way
        for process in processes:
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)


# Two for URL lists and JSON: a second upload is not stuck behind a long one. One for documents:
# they are parsed whole, so their memory is bounded by extracting one upload at a time.
INTAKE = Pool(2)
DOCUMENTS = Pool(1)


def _started(api: int) -> None:
    """Each process: Ctrl-C is the API's to handle (the processes end when it shuts the pool
    down), and its CPU goes to the API first: on a busy machine the scheduler would otherwise
    share it evenly, and /healthz would wait behind a body being counted."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(NICENESS)
    _end_with(api)


def _end_with(api: int) -> None:
    """Exit when the API process ends, even by kill -9: a pooled process would wait for work
    forever (and keep its fork server alive), ~90 MB each time. Its parent is the fork server,
    so PR_SET_PDEATHSIG cannot tell; a pidfd of the API can."""
    try:
        watched = os.pidfd_open(api)
    except ProcessLookupError:  # already gone
        os._exit(0)
    except OSError:  # a kernel without pidfds (before Linux 5.3): intake works, unwatched
        return
    threading.Thread(target=_exit_when_readable, args=(watched,), daemon=True).start()


def _exit_when_readable(descriptor: int) -> None:
    select.select([descriptor], [], [])  # a pidfd is readable once its process has ended
    os._exit(0)


def _submit(
    executor: ProcessPoolExecutor, held: list[int], fn: Callable[..., T], *args: Any
) -> Future[T | Refused]:
    """The job submitted, its descriptors closed when it ends (or now, if it cannot start)."""
    try:
        future = executor.submit(_guarded, fn, [f"/proc/{os.getpid()}/fd/{fd}" for fd in held], *args)
    except BaseException:
        _close(held)
        raise
    future.add_done_callback(lambda _: _close(held))
    return future


def _guarded(fn: Callable[..., T], *args: Any) -> T | Refused:
    """In the process: fn(*args), or the refusal it raised (an exception's own pickling is not
    reliable: HTTPException takes its arguments by keyword too)."""
    try:
        return fn(*args)
    except HTTPException as exc:
        return Refused(exc.status_code, exc.detail)


def _close(descriptors: list[int]) -> None:
    for descriptor in descriptors:
        os.close(descriptor)


# The URL file: one URL a line. A URL that holds "\n" (a JSON string may) or starts with '"' is
# written as a JSON string, so that every other line is read back by a slice, not a parse.


def write_urls(urls: Iterable[str], path: str) -> int:
    """Writes `urls` to the file at `path` (truncated); how many were written."""
    count = 0
    with open(path, "wb") as out:
        for url in urls:
            line = json.dumps(url) if "\n" in url or url.startswith('"') else url
            out.write(line.encode("utf-8", "surrogatepass") + b"\n")
            count += 1
    return count


def read_urls(handle: IO[bytes]) -> Iterator[str]:
    """The URLs of a file write_urls wrote, in order."""
    handle.seek(0)
    for line in handle:
        text = line.decode("utf-8", "surrogatepass")
        yield json.loads(text) if text.startswith('"') else text[:-1]
