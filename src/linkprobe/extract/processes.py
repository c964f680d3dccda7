"""Crawled pages parsed in forked worker processes, fed through pipes by the event loop.

A page's link walk is Python and holds the GIL, so threads cannot parse pages on two cores at
once. concurrent.futures.ProcessPoolExecutor can, but its manager and feeder threads and its
wakeup pipe cost the parent about 270 µs of CPU per page (measured with 16 KB pages: more than
fetching the page), which the crawl's event loop then lacks. Here a page is one write to a pipe
and its links one read, both on the event loop, with no thread: each process reads a request
(the page's base URL and body), answers with its Page pickled, and exits at end of input.

A process that fails or dies costs speed, not links: its pages are parsed in a thread instead.
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
    """A parsing process failed on a page or ended; the page is parsed in this process instead."""


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
            if len(self.buffer) < REPLY.size + length:
                return
            reply = bytes(self.buffer[REPLY.size : REPLY.size + length])
            del self.buffer[: REPLY.size + length]
            self._settle(reply, ok)

    def _settle(self, reply: bytes, ok: bool) -> None:
        waiter = self.waiting.popleft()
        if waiter.done():
            return  # its asker was cancelled
        if ok:
            waiter.set_result(pickle.loads(reply))
        else:
            waiter.set_exception(ParserGone(reply.decode(errors="replace")))

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(ParserGone("the parsing process ended"))


@dataclass
class _Process:
    pid: int
    requests: int  # the parent's ends of the two pipes
    replies: int
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


class ParserProcesses:
    """`count` forked processes that parse crawled pages (page_links). Build it while the process
    has a single thread, before any event loop starts: fork() copies only the calling thread, and
    a lock another thread held would stay held in the child. The processes ignore SIGINT (Ctrl-C
    is the crawl's to handle) and end when close() shuts their input, or when this process ends."""

    def __init__(self, count: int) -> None:
        self._processes: list[_Process] = []
        for _ in range(count):
            self._processes.append(self._fork())
        self._connected = False
        self._connecting = asyncio.Lock()

    def _fork(self) -> _Process:
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        # SIGINT is held back across fork(): the child ignores it before it could be handled there
        # (raising KeyboardInterrupt into this process's code, running in the child)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pid = os.fork()
            if pid == 0:
                _child(requests_read, replies_write)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        os.close(requests_read)
        os.close(replies_write)
        return _Process(pid, requests_write, replies_read)

    async def page_links(self, body: bytes, base: str, fragments: bool) -> Page:
        """The page's links, from the least busy process; raises ParserGone if it fails or ends."""
        if not self._connected:
            async with self._connecting:  # the first pages are asked for all at once
                if not self._connected:
                    await self._connect()
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
            requests = os.fdopen(process.requests, "wb", buffering=0)
            replies = os.fdopen(process.replies, "rb", buffering=0)
            process.writer, _ = await loop.connect_write_pipe(asyncio.Protocol, requests)
            process.reader, _ = await loop.connect_read_pipe(
                functools.partial(_same, process.protocol), replies
            )
        self._connected = True

    def close(self) -> None:
        """Ends the processes (pages being parsed are of no more use), reaps them and closes the
        pipes: through their transports while the event loop runs, else directly."""
        for process in self._processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            os.waitpid(process.pid, 0)
            for transport, fd in ((process.writer, process.requests), (process.reader, process.replies)):
                if transport is None:
                    os.close(fd)
                elif not transport.is_closing():
                    _close(transport)
        self._processes.clear()


def _close(transport: asyncio.BaseTransport) -> None:
    """Closes a pipe's transport; once its event loop is closed, the pipe itself."""
    try:
        transport.close()
    except RuntimeError:  # the event loop is closed: nothing will read or write it again
        pipe = transport.get_extra_info("pipe")
        if pipe is not None:
            pipe.close()


def _same(protocol: _Replies) -> _Replies:
    return protocol


def _child(requests: int, replies: int) -> NoReturn:
    """The forked process: it ignores SIGINT, keeps no file of the parent's but its two pipe
    ends and standard streams (not the crawl's sockets, nor its siblings' pipes), and serves."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        low, high = sorted((requests, replies))
        os.closerange(3, low)
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
