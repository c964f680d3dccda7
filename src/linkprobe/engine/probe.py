"""Probe one URL: redirects followed by hand, retries with backoff, a body cap, one deadline.

Every failure is a ProbeFailure caught here and turned into a result: nothing escapes. Once the
final status and headers have arrived the status decides the verdict: the body cap and the
deadline only bound how much of the body is read, and `result.body` says how that went.
"""

from __future__ import annotations

import asyncio
import random
from contextvars import ContextVar
from email.utils import parsedate_to_datetime
from time import perf_counter

import aiohttp
from yarl import URL

from linkprobe.engine.client import CURRENT_TIMER, ms_since
from linkprobe.engine.deadline import Deadlines
from linkprobe.engine.errors import (
    DeadlineExceeded,
    ProbeFailure,
    RedirectLoop,
    TooManyRedirects,
    Unsupported,
    map_client_error,
)
from linkprobe.engine.limits import Slots
from linkprobe.engine.options import Plan, ProbeOptions
from linkprobe.engine.outcome import BodyState, ErrorKind, Hop, ProbeError, ProbeResult, utcnow
from linkprobe.engine.urls import normalise

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
FALLBACK_TO_GET = frozenset({405, 501})
READ_CHUNK = 64 * 1024
# Set by Engine.fetch(): the final GET body is kept here (up to max_body_bytes) instead of drained.
PAGE_BODY: ContextVar[bytearray | None] = ContextVar("PAGE_BODY", default=None)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())


def _next_hop(current: URL, first: str, location: str, result: ProbeResult, max_redirects: int) -> URL:
    """The URL a redirect points to; an empty Location points back to the current URL."""
    try:
        target = normalise(location, base=current) if location.strip() else current
    except Unsupported:
        result.redirects = (*result.redirects, Hop(result.status_code or 0, location.strip()))
        raise
    text = str(target)
    # A short linear scan: hops are capped by max_redirects, and most URLs never redirect.
    looped = text == first or any(hop.url == text for hop in result.redirects)
    result.redirects = hops = (*result.redirects, Hop(result.status_code or 0, text))
    if looped:
        raise RedirectLoop(f"redirect loop back to {text}")
    if len(hops) > max_redirects:
        raise TooManyRedirects(f"more than {max_redirects} redirects")
    return target


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme, url.raw_host, url.port


def _forget_attempt(result: ProbeResult) -> None:
    """Before a retry: a result shows what its last attempt saw, and nothing of earlier ones."""
    result.redirects = ()
    result.final_url = result.status_code = result.content_type = result.content_length = None
    result.ttfb_ms = result.dns_ms = result.connect_ms = result.tls_ms = result.body = None


def _identity(response: aiohttp.ClientResponse) -> bool:
    encoding = response.headers.get("Content-Encoding")
    return encoding is None or encoding.lower() == "identity"


class Prober:
    """Probes single URLs on a shared session."""

    def __init__(self, session: aiohttp.ClientSession, slots: Slots) -> None:
        self.session = session  # its connector enforces the egress policy on every dial
        self.slots = slots
        self.deadlines = Deadlines()

    async def probe(self, url: str, index: int, options: ProbeOptions) -> ProbeResult:
        started = perf_counter()
        plan = options.plan
        result = ProbeResult(url, index)  # positional: keyword parsing measured 20% of building it
        CURRENT_TIMER.set(result)  # the result records each attempt itself, phase times included
        try:
            target = normalise(url)
            for number in range(plan.retries + 1):
                result.attempts = number + 1
                delay = await self._attempt(target, plan, result, number == plan.retries)
                if delay is None:
                    break
                await asyncio.sleep(delay if delay >= 0 else self._backoff(number, plan))
        except ProbeFailure as failure:
            result.error = ProbeError(failure.kind, str(failure) or failure.kind.value)
        except Exception as exc:  # a bug must still give this URL a result
            result.error = ProbeError(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}")
        result.ok = result.error is None and result.status_code in plan.accepted  # None is never in it
        result.elapsed_ms = ms_since(started)
        if result.queue_ms:  # round() only then: it formats and re-parses the float
            result.elapsed_ms = round(result.elapsed_ms - result.queue_ms, 3)
        if result.status_code is None:  # no answer: checked when the probe gave up
            result.checked_at = utcnow()
        return result

    async def _attempt(self, target: URL, plan: Plan, result: ProbeResult, last: bool) -> float | None:
        """One attempt under the deadline. Returns None when done, else the delay before a retry
        (negative: use the backoff). Raises ProbeFailure when the URL failed for good."""
        if result.attempts > 1:
            _forget_attempt(result)
        task = asyncio.current_task()
        assert task is not None
        host = f"{target.raw_host}:{target.port}"
        if not self.slots.try_acquire(host):
            queued = perf_counter()
            await self.slots.acquire(host)  # before the deadline: queueing is not the URL's fault
            result.queue_ms += ms_since(queued)
        self.deadlines.arm(task, plan.deadline)
        try:
            retry_after = await self._follow(target, plan, result)
        except asyncio.CancelledError:
            if not self.deadlines.expired(task):
                raise
            if result.body is not BodyState.TIMEOUT:
                raise DeadlineExceeded(f"no final status within {plan.deadline:g} s") from None
            retry_after = None  # the status had arrived: the deadline only cut its body short
        except Exception as exc:
            failure = map_client_error(exc)
            if last or not failure.retryable:
                raise failure from None
            return -1.0
        finally:
            self.deadlines.disarm(task)
            self.slots.release(host)
        if last or result.status_code not in RETRY_STATUSES:
            return None
        return -1.0 if retry_after is None else min(retry_after, plan.retry_after_cap)

    @staticmethod
    def _backoff(number: int, plan: Plan) -> float:
        # Full jitter: spreads retries from many URLs of one host over the window.
        return random.uniform(0, plan.retry_backoff * (2**number))

    async def _follow(self, target: URL, plan: Plan, result: ProbeResult) -> float | None:
        """Request `target`, following redirects; returns the final response's Retry-After."""
        method = plan.method
        first = text = str(target)
        headers = plan.headers
        home = _origin(target) if plan.foreign_headers is not headers else None  # has credentials
        while True:
            sent = perf_counter()
            async with self.session.request(
                method,
                target,
                allow_redirects=False,
                headers=headers,  # None with default options: LinkprobeRequest sets User-Agent
                ssl=plan.verify_tls,  # True: default verification; False: none
                timeout=plan.client_timeout,
            ) as response:
                result.ttfb_ms = ms_since(sent)
                self._note(response, text, result)
                location = response.headers.get("Location") if response.status in REDIRECT_STATUSES else None
                if location is not None:
                    target = _next_hop(target, first, location, result, plan.max_redirects)
                    text = result.redirects[-1].url
                    if home is not None:  # credentials stay with their origin, as curl and browsers do
                        headers = plan.headers if _origin(target) == home else plan.foreign_headers
                    continue
                if method == "HEAD" and response.status in FALLBACK_TO_GET:
                    method = "GET"
                    continue
                if method == "GET":
                    result.body = BodyState.TIMEOUT  # until the read ends: what a deadline leaves
                    page = PAGE_BODY.get()  # set by Engine.fetch(): keep the body of a crawled page
                    declared = result.content_length
                    if page is not None:
                        result.body = await self._keep(response, plan, page)
                    elif declared is not None and declared <= plan.max_body_bytes and _identity(response):
                        await response.read()  # small and declared: one read, the common case
                        result.body = BodyState.COMPLETE
                    else:
                        result.body = await self._drain(response, plan, declared)
                if response.status in RETRY_STATUSES:
                    return retry_after_seconds(response.headers.get("Retry-After"))
                return None

    @staticmethod
    def _note(response: aiohttp.ClientResponse, url: str, result: ProbeResult) -> None:
        result.status_code = response.status
        result.final_url = url
        result.content_type = response.headers.get("Content-Type")
        result.content_length = response.content_length
        result.checked_at = utcnow()

    @staticmethod
    async def _keep(response: aiohttp.ClientResponse, plan: Plan, page: bytearray) -> BodyState:
        """Read the body into `page`, at most max_body_bytes after decoding: a page to extract
        links from. A longer page is cut at the cap (its first part still has links)."""
        page.clear()  # a retry or a redirect starts over
        async for chunk in response.content.iter_chunked(READ_CHUNK):
            page += chunk[: plan.max_body_bytes - len(page)]
            if len(page) >= plan.max_body_bytes:
                response.close()
                return BodyState.TRUNCATED
        return BodyState.COMPLETE

    @staticmethod
    async def _drain(response: aiohttp.ClientResponse, plan: Plan, declared: int | None) -> BodyState:
        """Read and discard the body up to the cap, counting decoded bytes.

        A declared identity Content-Length over the cap is not read at all: the connection is
        dropped rather than read for nothing.
        """
        cap = plan.max_body_bytes
        if declared is not None and _identity(response):  # declared > cap: see the caller
            response.close()
            return BodyState.TRUNCATED
        seen = 0
        async for chunk in response.content.iter_chunked(READ_CHUNK):
            seen += len(chunk)
            if seen > cap:
                response.close()
                return BodyState.TRUNCATED
        return BodyState.COMPLETE
