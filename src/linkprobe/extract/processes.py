"""Crawled pages parsed in forked worker processes, fed through pipes by the event loop.

A page's link walk is Python and holds the GIL, so threads cannot parse pages on two cores at
once. concurrent.futures.ProcessPoolExecutor can, but its manager and feeder threads and its
wakeup pipe cost the parent about 270 µs of CPU per page (measured with 16 KB pages: more than
fetching the page), which the crawl's event loop then lacks. Here a page is one write to a pipe
and its links one read, both on the event loop, with no thread: each process reads a request
(the page's base URL and body), answers with its Page pickled, and exits at end of input.

A process that ends costs speed, not links: its pages go to the others, or are parsed in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pickle
import signal
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import BinaryIO, NoReturn

from linkprobe.extract.document import Page
from linkprobe.extract.html import page_links

REQUEST = struct.Struct("!IQ?")  # the base URL's length in bytes, the body's, fragments checked
REPLY = struct.Struct("!Q?")  # the reply's length, whether it is a Page (else the error's text)


class ParserGone(Exception):
    """No parsing process could answer for a page: every one ended, or the one asked ended or
    failed on it. The page is parsed in this process instead (failing there too, if it must)."""


class _Replies(asyncio.Protocol):
    """The parent's end of one process's reply pipe: replies come back in the order asked."""

    def __init__(self) -> None:
        self.waiting: deque[asyncio.Future[Page]] = deque()
        self.buffer = bytearray()
        self.gone = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= REPLY.size:
            length, ok = REPLY.unpack_from(self.buffer)
            end = REPLY.size + length
            if len(self.buffer) < end:
                return
            with memoryview(self.buffer) as view:  # unpickled in place: no copy of the reply
                self._settle(view[REPLY.size : end], ok)
            del self.buffer[:end]

    def _settle(self, reply: memoryview, ok: bool) -> None:
        waiter = self.waiting.popleft()
        if waiter.done():
            return  # its asker was cancelled
        if ok:
            waiter.set_result(pickle.loads(reply))
        else:
            waiter.set_exception(ParserGone(bytes(reply).decode(errors="replace")))

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(ParserGone("the parsing process ended"))


@dataclass
class _Process:
    pid: int
    requests: BinaryIO  # the parent's ends of the two pipes
    replies: BinaryIO
    writer: asyncio.WriteTransport | None = None
    reader: asyncio.ReadTransport | None = None
    protocol: _Replies = field(default_factory=_Replies)

    @property
    def load(self) -> int:
        return len(self.protocol.waiting)

    @property
    def serving(self) -> bool:
        """Whether it can take a page: its pipes are open (a process that ended closed them)."""
        return not self.protocol.gone and self.writer is not None and not self.writer.is_closing()

    def close(self) -> None:
        """Kills and reaps the process, then closes the pipes: through their transports while
        the event loop runs, else directly (a closed loop cannot close them)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):  # reaped already (SIGCHLD ignored)
            os.waitpid(self.pid, 0)
        for transport, pipe in ((self.writer, self.requests), (self.reader, self.replies)):
            if transport is None or not _closed_by(transport):
                pipe.close()


def _closed_by(transport: asyncio.BaseTransport) -> bool:
    """Closes a pipe's transport; False when its event loop is closed (the pipe is not)."""
    if transport.is_closing():
        return True
    try:
        transport.close()
    except RuntimeError:  # the event loop is closed
        return False
    return True


class ParserProcesses:
    """`count` forked processes that parse crawled pages (page_links). Build it while the process
    has a single thread, before any event loop starts: fork() copies only the calling thread, and
    a lock another thread held would stay held in the child. The processes ignore SIGINT (Ctrl-C
    is the crawl's to handle) and end when close() ends them, or when this process ends."""

    def __init__(self, count: int) -> None:
        self._processes: list[_Process] = []
        try:
            for _ in range(count):
                self._processes.append(_fork())
        except BaseException:
            self.close()  # those forked already (fork or pipe failed: too many processes or files)
            raise
        self._connection: asyncio.Task[None] | None = None

    async def page_links(self, body: bytes, base: str, fragments: bool) -> Page:
        """The page's links, from the least busy process; raises ParserGone if none can answer."""
        if self._connection is None:
            self._connection = asyncio.ensure_future(self._connect())
        try:
            await asyncio.shield(self._connection)  # an asker cancelled meanwhile leaves it whole
        except Exception as exc:
            raise ParserGone(f"the parsing processes cannot be reached: {exc}") from exc
        live = [process for process in self._processes if process.serving]
        if not live:
            raise ParserGone("every parsing process ended")
        process = min(live, key=lambda process: process.load)
        assert process.writer is not None  # serving
        waiter = asyncio.get_running_loop().create_future()
        process.protocol.waiting.append(waiter)
        encoded = base.encode(errors="surrogatepass")
        process.writer.write(REQUEST.pack(len(encoded), len(body), fragments) + encoded)
        process.writer.write(body)
        page: Page = await waiter
        return page

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        for process in self._processes:
            process.writer, _ = await loop.connect_write_pipe(asyncio.Protocol, process.requests)
            protocol = functools.partial(_same, process.protocol)
            process.reader, _ = await loop.connect_read_pipe(protocol, process.replies)

    def close(self) -> None:
        """Ends the processes (pages being parsed are of no more use); closing twice is harmless."""
        while self._processes:
            self._processes.pop().close()


def _same(protocol: _Replies) -> _Replies:
    return protocol


def _fork() -> _Process:
    requests_read, requests_write = os.pipe()
    replies_read, replies_write = os.pipe()
    # SIGINT is held back across fork(): the child ignores it before it could be handled there
    # (raising KeyboardInterrupt into this process's code, running in the child)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pid = os.fork()
        if pid == 0:
            _child(requests_read, replies_write)
    except OSError:  # no more processes: the pipes are of no use
        for fd in (requests_read, requests_write, replies_read, replies_write):
            os.close(fd)
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    os.close(requests_read)
    os.close(replies_write)
    return _Process(
        pid, os.fdopen(requests_write, "wb", buffering=0), os.fdopen(replies_read, "rb", buffering=0)
    )


def _child(requests: int, replies: int) -> NoReturn:
    """The forked process: it ignores SIGINT, keeps no file of the parent's but its two pipe
    ends and standard error (not the crawl's sockets, output or standard input, nor its
    siblings' pipes), and serves."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        nothing = os.open(os.devnull, os.O_RDWR)
        os.dup2(nothing, 0)
        os.dup2(nothing, 1)
        low, high = sorted((requests, replies))
        os.closerange(3, low)  # close_range(2) on Linux: one call, whatever the limit
        os.closerange(low + 1, high)
        os.closerange(high + 1, os.sysconf("SC_OPEN_MAX"))
        code = _serve(requests, replies)
    finally:
        os._exit(code)  # never back into the parent's code: no atexit handlers, no flushing


def _serve(requests: int, replies: int) -> int:
    """A parsing process: pages in, their links out, until its input ends; its exit code."""
    try:
        with os.fdopen(requests, "rb") as reader, os.fdopen(replies, "wb") as writer:
            while (request := _read_request(reader)) is not None:
                body, base, fragments = request
                writer.write(_reply(body, base, fragments))
                writer.flush()
    except BaseException:  # whatever it is, the parent sees the pipe end
        return 1
    return 0


def _read_request(reader: BinaryIO) -> tuple[bytes, str, bool] | None:
    header = reader.read(REQUEST.size)
    if len(header) < REQUEST.size:
        return None
    base_length, body_length, fragments = REQUEST.unpack(header)
    base = reader.read(base_length).decode(errors="surrogatepass")
    return reader.read(body_length), base, fragments


def _reply(body: bytes, base: str, fragments: bool) -> bytes:
    try:
        data, ok = pickle.dumps(page_links(body, base, fragments=fragments), pickle.HIGHEST_PROTOCOL), True
    except Exception as exc:  # told to the parent, which parses the page itself
        data, ok = f"{type(exc).__name__}: {exc}".encode(), False
    return REPLY.pack(len(data), ok) + data
