"""The HTTP client: one aiohttp session and connector per engine, with phase timing.

Phase timing does not use aiohttp's TraceConfig: with any trace config installed aiohttp builds
several parameter objects per request and the engine measured ~15% slower. Instead the resolver
and the connector, which only run for a new connection, write into the PhaseTimer (the result) of
the probe that is running, found through a context variable (the connector's resolution task
copies it).
"""

from __future__ import annotations

import socket
from contextvars import ContextVar
from time import perf_counter
from typing import Any, Protocol

import aiohttp
from aiohttp import hdrs
from aiohttp.abc import ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.resolver import AsyncResolver

from linkprobe.engine.egress import EgressPolicy
from linkprobe.engine.options import DEFAULT_USER_AGENT, EngineConfig


class PhaseTimer(Protocol):
    """Where phase times in ms of an attempt's last new connection go (the attempt's result);
    None when it made none: a reused keep-alive connection has no DNS or connect phase."""

    dns_ms: float | None
    connect_ms: float | None


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


class TimedConnector(aiohttp.TCPConnector):
    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> ResponseHandler:  # noqa: ASYNC109
        timer = CURRENT_TIMER.get()
        if timer is not None:
            timer.dns_ms = None
        started = perf_counter()
        handler = await super()._create_connection(req, traces, timeout)
        if timer is not None:  # TCP connect plus TLS handshake: aiohttp does both in one call
            timer.connect_ms = round(ms_since(started) - (timer.dns_ms or 0.0), 3)
        return handler


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
