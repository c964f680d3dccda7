"""The HTTP transport: libcurl's multi interface driven by the running event loop.

One `Transport` per engine owns a curl multi handle (its connection cache and DNS cache are
shared by every request) and a pool of reusable easy handles. libcurl tells the loop which
sockets to watch and when to wake it (socket and timer callbacks); the loop calls back
`socket_action`, and finished transfers resolve their futures. Nothing blocks the loop: name
resolution runs in libcurl's resolver threads.

The guarantees no server may defeat (egress policy, head and body bounds) live in the handles'
callbacks (handle.py).
"""

from __future__ import annotations

import asyncio
import select
import selectors
from typing import Any

import pycurl

from linkprobe.engine.egress import EgressPolicy
from linkprobe.engine.handle import DNS_CACHE_SECONDS, DNS_UNCHECKED, Handle, Limits, ca_bundle

# libcurl prunes its whole DNS cache after every transfer whose handle has a DNS_CACHE_TIMEOUT:
# one pass over every host seen, per URL (17% of the CPU of a check of 20,000 URLs over 5,000
# hosts). One transfer a second prunes (and checks the age of the entry it uses); the others use
# DNS_UNCHECKED. An entry may so outlive DNS_CACHE_SECONDS by a second and a transfer's length.
DNS_PRUNE_SECONDS = 1.0
# libcurl's POLL_IN, POLL_OUT and POLL_INOUT (1, 2, 3) as epoll's events (EPOLLIN 1, EPOLLOUT 4);
# a selector's EVENT_READ and EVENT_WRITE have libcurl's values.
EPOLL_EVENTS = (0, 1, 4, 5)
SELECTOR_EVENTS = (0, 1, 2, 3)


class Transport:
    """A curl multi handle on the running loop, its pool bounded by `limits`."""

    def __init__(self, policy: EgressPolicy, limits: Limits) -> None:
        self.loop = asyncio.get_running_loop()
        self.policy = policy
        self.multi = multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        # The pool's bound. Requests in flight are bounded by the engine's slots (limits.Slots), the
        # only queue, per host too: libcurl would count a transfer waiting in its own against the
        # transfer's timeout. Idle connections beyond the bound are closed, oldest first.
        multi.setopt(pycurl.M_MAXCONNECTS, limits.connections)
        multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, limits.connections)
        multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, 0)
        self._free: list[Handle] = []
        self._busy: set[Handle] = set()  # added to the multi handle: close() removes them
        # libcurl's sockets are watched in an epoll set of their own, itself one reader of the loop:
        # libcurl adds a connection's socket at each transfer and removes it at its end, and the
        # loop's add_reader/remove_reader (uvloop: a poll handle made and closed) cost 7.5 syscalls
        # a URL where epoll's register/unregister cost 2. The epoll object itself, not the
        # selectors module's wrapper around it (a key object and lookups per call: 4% of a check's
        # CPU); a selector where there is no epoll.
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._watcher: Any = self._epoll if self._epoll is not None else selectors.DefaultSelector()
        self._events = EPOLL_EVENTS if self._epoll is not None else SELECTOR_EVENTS
        ready = self._ready if self._epoll is not None else self._selected
        self.loop.add_reader(self._watcher.fileno(), ready)
        self._watching: dict[int, int] = {}  # fd -> the POLL_* events it is registered for
        self._timer: asyncio.TimerHandle | None = None
        self._active = 0
        self._cainfo = ca_bundle()
        self._prune_at = 0.0  # loop time from which the next transfer prunes the DNS cache

    async def send(self, handle: Handle) -> tuple[int, str]:
        """Run the request set up on `handle`; (CURLcode, message), 0 when it completed.

        Cancelled, the transfer is removed (its connection closed) before the cancellation goes on.
        """
        future: asyncio.Future[tuple[int, str]] = self.loop.create_future()
        handle.future = future
        now = self.loop.time()
        if now >= self._prune_at:
            self._prune_at = now + DNS_PRUNE_SECONDS
            handle.expire_dns(DNS_CACHE_SECONDS)
        else:
            handle.expire_dns(DNS_UNCHECKED)
        self.multi.add_handle(handle.curl)
        self._busy.add(handle)
        self._active += 1
        try:
            return await future
        except asyncio.CancelledError:
            if not future.done() or future.cancelled():
                self._remove(handle)
            raise

    def handle(self) -> Handle:
        return self._free.pop() if self._free else Handle(self.policy, self._cainfo)

    def release(self, handle: Handle) -> None:
        handle.page = None
        self._free.append(handle)

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def _remove(self, handle: Handle) -> None:
        if handle not in self._busy:  # close() took it already
            return
        self._busy.discard(handle)
        self.multi.remove_handle(handle.curl)
        self._active -= 1
        handle.future = None
        handle.close_made()

    def close(self) -> None:
        """End every transfer still running (their probes get CancelledError), then the pool."""
        for handle in list(self._busy):
            future = handle.future
            self._remove(handle)
            if future is not None and not future.done():
                future.cancel()
        if self._timer is not None:
            self._timer.cancel()
        for fd in list(self._watching):
            self._unwatch(fd)
        self.multi.close()
        self.loop.remove_reader(self._watcher.fileno())
        self._watcher.close()
        for handle in self._free:
            handle.curl.close()
        self._free.clear()

    # -- the loop's side of libcurl's multi socket interface --

    def _on_socket(self, what: int, fd: int, multi: Any, socketp: Any) -> None:
        watched = self._watching.get(fd, pycurl.POLL_NONE)
        if what == watched:
            return
        if what == pycurl.POLL_REMOVE:
            self._unwatch(fd)
            return
        if watched:
            self._watcher.modify(fd, self._events[what])
        else:
            self._watcher.register(fd, self._events[what])
        self._watching[fd] = what

    def _unwatch(self, fd: int) -> None:
        if self._watching.pop(fd, pycurl.POLL_NONE):
            try:  # noqa: SIM105 (once a URL: cheaper than contextlib.suppress)
                self._watcher.unregister(fd)
            except OSError:  # a descriptor closed meanwhile: the kernel dropped it already
                pass

    def _ready(self) -> None:
        """epoll's events as libcurl's CSELECT_IN (1) and CSELECT_OUT (2): an error or a hang-up
        is both, as the selectors module has it."""
        assert self._epoll is not None
        for fd, events in self._epoll.poll(0):
            self._act(fd, (events & ~4 and 1) | (events & ~1 and 2))

    def _selected(self) -> None:
        for key, events in self._watcher.select(0):  # EVENT_READ and EVENT_WRITE: CSELECT's values
            self._act(key.fd, events)

    def _on_timer(self, ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None if ms < 0 else self.loop.call_later(ms / 1000, self._act, pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, events: int) -> None:
        if fd == pycurl.SOCKET_TIMEOUT:
            self._timer = None
        _, running = self.multi.socket_action(fd, events)
        if running < self._active:  # some transfer ended: collect it
            self._collect()

    def _collect(self) -> None:
        while True:
            queued, done, failed = self.multi.info_read()
            for curl in done:
                self._finish(curl.handle, 0, "")
            for curl, code, message in failed:
                self._finish(curl.handle, code, message)
            if not queued:
                return

    def _finish(self, handle: Handle, code: int, message: str) -> None:
        future = handle.future
        self._remove(handle)
        if future is not None and not future.done():
            future.set_result((code, message))
