"""The floors of the benches: the plainest correct client loops, without linkprobe.

- `bare`: aiohttp on uvloop, `concurrency` workers sharing one session whose connector allows
  `concurrency` connections, `per_host` to one host;
- `curl`: a pycurl CurlMulti loop, `concurrency` easy handles (each reused for the next URL as it
  finishes), MAX_HOST_CONNECTIONS `per_host`, driven by socket_action over epoll: `multi.select`
  goes through curl_multi_fdset and select(2), which cannot see a descriptor above 1023, and with
  a concurrency of 1000 plus the connection cache there are more than that.
- `driver` and `async-multi`: linkprobe's own easy handles (engine/handle.py: the same options and
  callbacks, egress check included) driven from uvloop by the engine's Transport, or by pycurl's
  experimental AsyncCurlMulti: which of the two drives libcurl better (issue 18 asked to keep
  the faster one that stays correct).
All count the URLs answered 200 (bodies read and dropped).

`python bench/loops.py NAME FILE CONCURRENCY PER_HOST [tuned]` probes the URLs of FILE (one a
line) and prints the count; only the loop it runs is imported; `tuned` applies linkprobe's
collector settings first (cli.settle_heap).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import sys
import time
from pathlib import Path

from bench.run import CONCURRENCY, PER_HOST, raise_fd_limit

TIMEOUT_S, CONNECT_TIMEOUT_S = 10, 5  # linkprobe's defaults
IDLE_CONNECTIONS = 10_000


async def bare(urls: list[str], concurrency: int = CONCURRENCY, per_host: int = PER_HOST) -> int:
    """The baseline: the plainest correct aiohttp loop with the same limits."""
    import aiohttp  # here, as uvloop in main: the curl loop's process does not pay for them

    ok = 0
    source = iter(urls)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=per_host)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal ok
            for url in source:
                async with session.get(url) as response:
                    await response.read()
                    ok += response.status == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


def curl(urls: list[str], concurrency: int = CONCURRENCY, per_host: int = PER_HOST) -> int:
    """The same with libcurl: a CurlMulti loop on socket_action and epoll."""
    import pycurl  # type: ignore[import,unused-ignore]  # no stubs; not a runtime dependency yet

    ok = 0
    source = iter(urls)
    poller = select.epoll()
    multi = pycurl.CurlMulti()
    multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, per_host)
    # Idle connections kept for reuse: libcurl's default cache (4 per easy handle) drops them
    # long before a host comes round again (bench/probe.py: 16,000 connections for 20,000 URLs
    # over 5,000 hosts, against 5,000 for aiohttp, which keeps every idle connection).
    multi.setopt(pycurl.M_MAXCONNECTS, IDLE_CONNECTIONS)
    deadline: float | None = None  # when libcurl wants socket_action(SOCKET_TIMEOUT), per its timer

    def on_socket(what: int, fd: int, _multi: object, _data: object) -> None:
        if what == pycurl.POLL_REMOVE:
            with contextlib.suppress(OSError, ValueError):  # already closed
                poller.unregister(fd)
            return
        mask = (select.EPOLLIN if what & pycurl.POLL_IN else 0) | (
            select.EPOLLOUT if what & pycurl.POLL_OUT else 0
        )
        try:
            poller.modify(fd, mask)
        except FileNotFoundError:
            poller.register(fd, mask)

    def on_timer(ms: int) -> None:
        nonlocal deadline
        deadline = None if ms < 0 else time.monotonic() + ms / 1000

    multi.setopt(pycurl.M_SOCKETFUNCTION, on_socket)
    multi.setopt(pycurl.M_TIMERFUNCTION, on_timer)

    def start(handle: pycurl.Curl) -> bool:
        url = next(source, None)
        if url is None:
            return False
        handle.setopt(pycurl.URL, url)
        multi.add_handle(handle)
        return True

    running = 0
    for _ in range(concurrency):
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.WRITEFUNCTION, len)  # the body, read and dropped
        handle.setopt(pycurl.TIMEOUT, TIMEOUT_S)
        handle.setopt(pycurl.CONNECTTIMEOUT, CONNECT_TIMEOUT_S)
        running += start(handle)
    while running:
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        for fd, event in poller.poll(wait):
            flags = (
                (pycurl.CSELECT_IN if event & (select.EPOLLIN | select.EPOLLHUP) else 0)
                | (pycurl.CSELECT_OUT if event & select.EPOLLOUT else 0)
                | (pycurl.CSELECT_ERR if event & select.EPOLLERR else 0)
            )
            multi.socket_action(fd, flags)
        if deadline is not None and time.monotonic() >= deadline:
            deadline = None
            multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        queued = 1
        while queued:
            queued, done, failed = multi.info_read()
            for handle in done:
                ok += handle.getinfo(pycurl.RESPONSE_CODE) == 200
            for handle, *_error in failed:
                done.append(handle)
            for handle in done:
                multi.remove_handle(handle)
                running -= not start(handle)
    return ok


async def driven(urls: list[str], concurrency: int, per_host: int, theirs: bool) -> int:
    """`concurrency` workers each sending the next URL on a linkprobe Handle, through the engine's
    Transport or through pycurl.AsyncCurlMulti."""
    import pycurl

    from linkprobe.engine.egress import EgressPolicy
    from linkprobe.engine.handle import Handle, Limits, ca_bundle
    from linkprobe.engine.options import ProbeOptions
    from linkprobe.engine.shards import REUSE_BLOCK, waves
    from linkprobe.engine.transport import Transport

    policy, limits = EgressPolicy(allow_private=True), Limits(concurrency, per_host)
    headers = ProbeOptions().request_headers
    order = waves(urls, list(range(len(urls))), int(concurrency * REUSE_BLOCK))  # as `check` orders them
    ok, source = 0, (urls[i] for i in order)
    if theirs:
        multi = pycurl.AsyncCurlMulti()
        multi.setopt(pycurl.M_MAXCONNECTS, limits.connections)
        multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, limits.connections)
        multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, per_host)
    else:
        transport = Transport(policy, limits)

    async def worker() -> None:
        nonlocal ok
        handle = Handle(policy, ca_bundle())
        for url in source:
            handle.start(url, False, headers, TIMEOUT_S, CONNECT_TIMEOUT_S, True, 1 << 20, None)
            if theirs:
                with contextlib.suppress(pycurl.error):
                    await multi.perform(handle.curl)
                handle.close_made()
            else:
                await transport.send(handle)
            ok += handle.status == 200

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if theirs:
        await multi.aclose()
    else:
        transport.close()
    return ok


def main() -> None:
    name, file, concurrency, per_host = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    raise_fd_limit()
    if sys.argv[5:] == ["tuned"]:
        from linkprobe.cli import settle_heap

        settle_heap()
    urls = file.read_text().split()
    if name in ("bare", "driver", "async-multi"):
        import uvloop

        run = bare(urls, concurrency, per_host) if name == "bare" else None
        ok = uvloop.run(run or driven(urls, concurrency, per_host, theirs=name == "async-multi"))
    else:
        ok = curl(urls, concurrency, per_host)
    print(ok)


if __name__ == "__main__":
    main()
