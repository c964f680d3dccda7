"""Crawled pages parsed by forked processes (extract.processes): the links page_links finds here,
for many pages at once, and nothing lost when a process fails or ends."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
from collections.abc import Iterator

import pytest

from linkprobe import crawl
from linkprobe.crawl import Extractor
from linkprobe.extract import Page, processes
from linkprobe.extract.html import page_links
from linkprobe.extract.processes import ParserGone, ParserProcesses
from tests.extract.test_html import LATE_BASE, PAGE, REPEATED

# Larger than a pipe's buffer (64 KiB) and than STREAM_ABOVE (read in blocks by the process too).
LARGE = b"".join(b'<p id="s%d"><a href="p%d.html#s">x</a></p>\n' % (n, n % 700) for n in range(130_000))
PAGES = [
    (PAGE, "file:///site/p.html"),
    (LATE_BASE, "https://s.example/a/"),
    (REPEATED, "https://s.example/r"),
]


@pytest.fixture
def parsers() -> Iterator[ParserProcesses]:
    forked = ParserProcesses(2)
    yield forked
    forked.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_pages_parsed_by_the_processes_are_those_parsed_here(parsers: ParserProcesses) -> None:
    """Many pages asked at once, with and without fragments: each answer is its own page's."""
    asked = [(body, f"{base}?n={n}", n % 2 == 1) for n, (body, base) in enumerate(PAGES * 8)]
    asked.append((LARGE, "https://s.example/large.html", True))
    answers = await asyncio.gather(*(parsers.page_links(*request) for request in asked))
    for (body, base, fragments), answer in zip(asked, answers, strict=True):
        assert answer == page_links(body, base, fragments=fragments)
    assert answers[-1].links["https://s.example/p699.html#s"].total == 185
    assert len(answers[-1].anchors) == 130_000


async def test_a_process_that_ends_fails_its_pages_and_the_others_take_the_next(
    parsers: ParserProcesses,
) -> None:
    first, second = parsers._processes
    assert (await parsers.page_links(PAGE, "https://s.example/", False)).links  # connected
    os.kill(first.pid, signal.SIGKILL)
    with pytest.raises(ParserGone, match="the parsing process ended"):  # asked of it before its
        await parsers.page_links(PAGE, "https://s.example/", False)  # pipe's end is seen
    assert not first.serving
    answers = await asyncio.gather(*(parsers.page_links(body, base, False) for body, base in PAGES * 2))
    assert answers == [page_links(body, base, fragments=False) for body, base in PAGES * 2]  # the other
    os.kill(second.pid, signal.SIGKILL)
    extract = Extractor(4, parsers)
    pages = await asyncio.gather(*(extract.page(body, base, False) for body, base in PAGES * 3))
    assert pages == [page_links(body, base, fragments=False) for body, base in PAGES * 3]  # in threads
    with pytest.raises(ParserGone, match="every parsing process ended"):
        await parsers.page_links(PAGE, "https://s.example/", False)
    extract.close()
    assert not alive(first.pid) and not alive(second.pid)


async def test_the_extractor_s_pages_are_parsed_by_its_processes_not_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extract = Extractor.forked(2)

    def not_here(body: bytes, base: str, *, fragments: bool) -> Page:
        raise AssertionError("parsed in this process")

    monkeypatch.setattr(crawl, "page_links", not_here)  # after the fork: the processes parse for real
    try:
        pages = await asyncio.gather(*(extract.page(body, base, True) for body, base in PAGES * 4))
        assert pages == [page_links(body, base, fragments=True) for body, base in PAGES * 4]
    finally:
        extract.close()


async def test_a_page_that_fails_in_a_process_is_told_and_the_next_one_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(body: bytes, base: str, *, fragments: bool) -> Page:
        if base.endswith("/boom"):
            raise RuntimeError("no parse today")
        return page_links(body, base, fragments=fragments)

    monkeypatch.setattr(processes, "page_links", failing)  # the forked processes inherit it
    forked = ParserProcesses(1)
    try:
        with pytest.raises(ParserGone, match="RuntimeError: no parse today"):
            await forked.page_links(PAGE, "https://s.example/boom", False)
        assert await forked.page_links(REPEATED, "https://s.example/\udc80", False) == page_links(
            REPEATED, "https://s.example/\udc80", fragments=False
        )
    finally:
        forked.close()


def test_the_processes_ignore_ctrl_c_and_end_when_closed() -> None:
    """A terminal's Ctrl-C reaches the whole process group: the parsing processes go on (pages
    asked after it are answered, by both) until close() ends them. Forked outside any event loop,
    as the CLI forks them (a running asyncio.Runner's own SIGINT handler would be inherited)."""
    forked = ParserProcesses(2)
    pids = [process.pid for process in forked._processes]
    for pid in pids:
        os.kill(pid, signal.SIGINT)

    async def ask() -> list[Page]:
        return await asyncio.gather(*(forked.page_links(body, base, False) for body, base in PAGES * 2))

    try:
        assert asyncio.run(ask()) == [page_links(body, base, fragments=False) for body, base in PAGES * 2]
    finally:
        forked.close()
    assert not any(alive(pid) for pid in pids)


def test_a_parsing_process_keeps_no_file_of_the_parent_but_its_two_pipes() -> None:
    """Not the crawl's sockets (a connection would outlive its close), nor its siblings' pipes
    (their end of input would never come)."""

    async def ask(forked: ParserProcesses) -> list[Page]:  # two at once: one to each process
        return await asyncio.gather(*(forked.page_links(PAGE, "https://s.example/", False) for _ in range(2)))

    with socket.socket() as held:
        forked = ParserProcesses(2)
        try:
            assert all(page.links for page in asyncio.run(ask(forked)))  # both are serving
            for process in forked._processes:
                fds = os.listdir(f"/proc/{process.pid}/fd")
                kept = {int(fd): os.readlink(f"/proc/{process.pid}/fd/{fd}") for fd in fds if int(fd) > 2}
                assert len(kept) == 2 and all(target.startswith("pipe:") for target in kept.values()), kept
                assert held.fileno() not in kept
        finally:
            forked.close()


async def test_an_asker_cancelled_while_the_pipes_connect_leaves_them_whole(parsers: ParserProcesses) -> None:
    """Ctrl-C as the first pages are handed over: the other askers are answered, close() is clean."""
    first = asyncio.ensure_future(parsers.page_links(PAGE, "https://s.example/", False))
    others = [asyncio.ensure_future(parsers.page_links(body, base, False)) for body, base in PAGES]
    await asyncio.sleep(0)  # each has started, the first one connecting the pipes
    first.cancel()
    assert await asyncio.gather(*others) == [page_links(body, base, fragments=False) for body, base in PAGES]
    with pytest.raises(asyncio.CancelledError):
        await first
    parsers.close()
    parsers.close()  # twice: harmless


def test_a_fork_that_fails_leaves_no_process_nor_pipe_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    forked: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        if forked:
            raise BlockingIOError(errno.EAGAIN, "no more processes")
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    before = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(BlockingIOError):
        ParserProcesses(3)
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert len(forked) == 1 and not alive(forked[0])  # the one forked is ended and reaped
