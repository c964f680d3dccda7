"""The HTTP client: one aiohttp session and connector per engine, with phase timing.

Phase timing does not use aiohttp's TraceConfig: with any trace config installed aiohttp builds
several parameter objects per request and the engine measured ~15% slower. Instead the resolver
and the connector, which only run for a new connection, write into the PhaseTimer (the result) of
the probe that is running, found through a context variable (the connector's resolution task
copies it).

Two protections no server may defeat live here too: BoundedHandler caps the bytes of a response
head (interim 1xx responses included) and the number of interim responses, so an endless stream
of `100 Continue` or of headers is refused after a few KiB instead of growing memory and holding
the event loop. aiohttp's parser already caps one header line (8190 bytes) and the header count
(128), and the body is read by the probe up to max_body_bytes.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from contextvars import ContextVar
from functools import partial
from time import perf_counter
from typing import Any, Protocol

import aiohttp
from aiohttp import hdrs
from aiohttp.abc import ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.resolver import AsyncResolver

from linkprobe.engine.egress import EgressPolicy
from linkprobe.engine.errors import TLSFailure
from linkprobe.engine.options import DEFAULT_USER_AGENT, EngineConfig


class PhaseTimer(Protocol):
    """Where phase times in ms of an attempt's last new connection go (the attempt's result);
    None when it made none: a reused keep-alive connection has no DNS or connect phase."""

    dns_ms: float | None
    connect_ms: float | None
    tls_ms: float | None


CURRENT_TIMER: ContextVar[PhaseTimer | None] = ContextVar("linkprobe_phase_timer", default=None)


def ms_since(started: float) -> float:
    """Milliseconds since a perf_counter() reading, to the microsecond.

    Not round(x, 3): that formats and re-parses the float, a measurable cost on every probe.
    """
    return int((perf_counter() - started) * 1_000_000 + 0.5) / 1000


class TimedResolver(AsyncResolver):
    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        started = perf_counter()
        answer = await super().resolve(host, port, family)
        timer = CURRENT_TIMER.get()
        if timer is not None:
            timer.dns_ms = ms_since(started)
        return answer


MAX_HEAD_BYTES = 64 * 1024  # status lines and headers of one response, interim responses included
MAX_INTERIM = 8  # 1xx responses before the final one


class BoundedHandler(ResponseHandler):
    """aiohttp's protocol with the response head bounded in bytes and in interim responses.

    Bytes are fed to the parser no further than the head budget allows until the final head has
    arrived, so the parser never works through more than MAX_HEAD_BYTES of a flood at once. Interim
    responses are dropped here (aiohttp's reader skips them anyway) rather than queued.
    """

    _head_left: int | None = MAX_HEAD_BYTES  # None once the final response head has arrived
    _interim = 0
    _refused = False

    def set_response_params(self, **kwargs: Any) -> None:  # once per request on this connection
        super().set_response_params(**kwargs)
        self._head_left, self._interim = MAX_HEAD_BYTES, 0

    def data_received(self, data: bytes) -> None:
        left = self._head_left
        if left is None or len(data) <= left:  # the common case: one call, no copy
            if left is not None:
                self._head_left = left - len(data)
            super().data_received(data)
            return
        self._head_left = 0
        super().data_received(data[:left])
        if self._head_left is None:  # the head ended within the budget: the rest is body
            super().data_received(data[left:])
        else:
            self._refuse(f"response head larger than {MAX_HEAD_BYTES} bytes")

    def feed_data(self, data: Any, size: int = 0) -> None:
        if self._refused:
            return
        code = data[0].code
        if 100 <= code < 200 and code != 101:
            self._interim += 1
            if self._interim > MAX_INTERIM:
                self._refuse(f"more than {MAX_INTERIM} interim (1xx) responses")
            return
        self._head_left = None
        super().feed_data(data, size)

    def _refuse(self, reason: str) -> None:
        if self._refused:
            return
        self._refused = True
        if self.transport is not None:
            self.transport.close()
        self.set_exception(HttpProcessingError(message=reason))


class TimedConnector(aiohttp.TCPConnector):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._factory = partial(BoundedHandler, loop=self._loop)  # type: ignore[assignment]  # a subclass

    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> ResponseHandler:  # noqa: ASYNC109
        timer = CURRENT_TIMER.get()
        if timer is not None:
            timer.dns_ms = timer.tls_ms = None
        started = perf_counter()
        handler = await super()._create_connection(req, traces, timeout)
        if timer is not None:
            spent = ms_since(started) - (timer.dns_ms or 0.0) - (timer.tls_ms or 0.0)
            timer.connect_ms = round(spent, 3)
        return handler

    async def _wrap_create_connection(
        self, *args: Any, **kwargs: Any
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        """For TLS, aiohttp dials and shakes hands under one timer. asyncio builds the protocol once
        TCP is up and before the handshake, so wrapping the factory marks the split: tls_ms is
        measured, and a timeout after the mark is a stalled handshake, not a TCP connect timeout."""
        if not kwargs.get("ssl"):
            return await super()._wrap_create_connection(*args, **kwargs)
        factory: Callable[[], ResponseHandler] = args[0]
        shaking: list[float] = []

        def marked() -> ResponseHandler:
            shaking.append(perf_counter())
            return factory()

        try:
            connection = await super()._wrap_create_connection(marked, *args[1:], **kwargs)
        except TimeoutError:
            if shaking:
                raise TLSFailure("TLS handshake not finished within the connect timeout") from None
            raise
        timer = CURRENT_TIMER.get()
        if timer is not None and shaking:
            timer.tls_ms = ms_since(shaking[0])
        return connection


class LinkprobeRequest(aiohttp.ClientRequest):
    """Sends linkprobe's User-Agent as one of aiohttp's automatic headers: session-level default
    headers are merged into a new multidict on every request, automatic ones only fill gaps."""

    DEFAULT_HEADERS = {**aiohttp.ClientRequest.DEFAULT_HEADERS, hdrs.USER_AGENT: DEFAULT_USER_AGENT}


def create_session(config: EngineConfig, policy: EgressPolicy) -> aiohttp.ClientSession:
    """Build the shared session. Must be called inside the running event loop."""
    connector = TimedConnector(
        # Unlimited here: the engine's Slots bound requests (and so connections) before a request
        # starts, and aiohttp's own per-host bookkeeping would only repeat that work.
        limit=0,
        limit_per_host=0,
        resolver=TimedResolver(timeout=config.dns_timeout, tries=1),
        socket_factory=policy.socket_factory,
        ttl_dns_cache=60,
    )
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,  # proxy environment variables are ignored on purpose
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=True,
        raise_for_status=False,
        request_class=LinkprobeRequest,  # per-request headers only when options differ
    )
