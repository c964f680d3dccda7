"""Probe one URL: redirects followed by hand, retries with backoff, a body cap, one deadline.

Every failure is a ProbeFailure caught here and turned into a result: nothing escapes.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from linkprobe.engine.client import CURRENT_TIMER, PhaseTimer, ms_since
from linkprobe.engine.deadline import Deadlines
from linkprobe.engine.egress import EgressPolicy
from linkprobe.engine.errors import (
    Blocked,
    BodyTooLarge,
    DeadlineExceeded,
    ProbeFailure,
    RedirectLoop,
    TooManyRedirects,
    map_client_error,
)
from linkprobe.engine.limits import Slots
from linkprobe.engine.options import ProbeOptions
from linkprobe.engine.outcome import ErrorKind, Hop, ProbeError, ProbeResult, utcnow
from linkprobe.engine.urls import normalise

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
FALLBACK_TO_GET = frozenset({405, 501})
READ_CHUNK = 64 * 1024


@dataclass(slots=True)
class Attempt(PhaseTimer):
    """What one attempt learned; kept when it fails so the result still shows the hops.

    It is its own PhaseTimer and holds no containers until a redirect needs them: one object
    per attempt, which keeps the garbage collector's share of the probe loop down.
    """

    hops: list[Hop] | None = None
    final_url: str | None = None
    status: int | None = None
    content_type: str | None = None
    content_length: int | None = None
    ttfb_ms: float | None = None
    retry_after: float | None = None


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


def _next_hop(current: URL, first: str, location: str, attempt: Attempt, max_redirects: int) -> URL:
    target = normalise(location, base=current)
    text = str(target)
    hops = attempt.hops if attempt.hops is not None else []
    # A short linear scan: hops are capped by max_redirects, and most URLs never redirect.
    looped = text == first or any(hop.url == text for hop in hops)
    hops.append(Hop(attempt.status or 0, text))
    attempt.hops = hops
    if looped:
        raise RedirectLoop(f"redirect loop back to {text}")
    if len(hops) > max_redirects:
        raise TooManyRedirects(f"more than {max_redirects} redirects")
    return target


def _record(result: ProbeResult, attempt: Attempt) -> None:
    if attempt.hops is not None:
        result.redirects = attempt.hops
    result.final_url = attempt.final_url
    result.status_code = attempt.status
    result.content_type = attempt.content_type
    result.content_length = attempt.content_length
    result.ttfb_ms = attempt.ttfb_ms
    result.dns_ms = attempt.dns_ms
    result.connect_ms = attempt.connect_ms


def _identity(response: aiohttp.ClientResponse) -> bool:
    return response.headers.get("Content-Encoding", "identity").lower() == "identity"


class Prober:
    """Probes single URLs on a shared session."""

    def __init__(self, session: aiohttp.ClientSession, policy: EgressPolicy, slots: Slots) -> None:
        self.session = session
        self.policy = policy
        self.slots = slots
        self.deadlines = Deadlines()

    async def probe(self, url: str, index: int, options: ProbeOptions) -> ProbeResult:
        started = time.perf_counter()
        result = ProbeResult(url=url, index=index)
        try:
            target = normalise(url)
            for number in range(options.retries + 1):
                result.attempts = number + 1
                delay = await self._attempt(target, options, result, number == options.retries)
                if delay is None:
                    break
                await asyncio.sleep(delay if delay >= 0 else self._backoff(number, options))
        except ProbeFailure as failure:
            result.error = ProbeError(failure.kind, str(failure) or failure.kind.value)
        except Exception as exc:  # a bug must still give this URL a result
            result.error = ProbeError(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}")
        result.ok = (
            result.error is None and result.status_code is not None and options.accepts(result.status_code)
        )
        result.elapsed_ms = ms_since(started)
        return result

    async def _attempt(
        self, target: URL, options: ProbeOptions, result: ProbeResult, last: bool
    ) -> float | None:
        """One attempt under the deadline. Returns None when done, else the delay before a retry
        (negative: use the backoff). Raises ProbeFailure when the URL failed for good."""
        attempt = Attempt()
        CURRENT_TIMER.set(attempt)
        task = asyncio.current_task()
        assert task is not None
        host = f"{target.raw_host}:{target.port}"
        if not self.slots.try_acquire(host):
            await self.slots.acquire(host)  # before the deadline: queueing is not the URL's fault
        self.deadlines.arm(task, options.timeout)
        try:
            await self._follow(target, options, attempt)
        except asyncio.CancelledError:
            _record(result, attempt)
            if not self.deadlines.expired(task):
                raise
            raise DeadlineExceeded(f"no complete answer within {options.timeout:g} s") from None
        except Exception as exc:
            _record(result, attempt)
            failure = map_client_error(exc)
            if last or not failure.retryable:
                raise failure from None
            return -1.0
        finally:
            self.deadlines.disarm(task)
            self.slots.release(host)
        _record(result, attempt)
        if last or attempt.status not in RETRY_STATUSES:
            return None
        return -1.0 if attempt.retry_after is None else min(attempt.retry_after, options.retry_after_cap)

    @staticmethod
    def _backoff(number: int, options: ProbeOptions) -> float:
        # Full jitter: spreads retries from many URLs of one host over the window.
        return random.uniform(0, options.retry_backoff * (2**number))

    async def _follow(self, target: URL, options: ProbeOptions, attempt: Attempt) -> None:
        method = options.method
        plan = options.plan
        first = text = str(target)
        while True:
            self._check_literal(target)
            sent = time.perf_counter()
            async with self.session.request(
                method,
                target,
                allow_redirects=False,
                headers=plan.headers,  # None with default options: the session sets User-Agent
                ssl=options.verify_tls,  # True: default verification; False: none
                timeout=plan.timeout,
            ) as response:
                attempt.ttfb_ms = ms_since(sent)
                self._note(response, text, attempt)
                location = response.headers.get("Location") if response.status in REDIRECT_STATUSES else None
                if location:
                    target = _next_hop(target, first, location, attempt, options.max_redirects)
                    text = str(target)
                    continue
                if method == "HEAD" and response.status in FALLBACK_TO_GET:
                    method = "GET"
                    continue
                if method == "GET":
                    declared = attempt.content_length
                    if declared is not None and declared <= options.max_body_bytes and _identity(response):
                        await response.read()  # small and declared: one read, the common case
                    else:
                        await self._drain(response, options, declared)
                return

    def _check_literal(self, target: URL) -> None:
        # Early, cheaper and clearer than the socket-level check, which still runs.
        why = self.policy.check_literal(target.host or "")
        if why is not None:
            raise Blocked(f"blocked by egress policy: {target.host} is {why}")

    @staticmethod
    def _note(response: aiohttp.ClientResponse, url: str, attempt: Attempt) -> None:
        headers: CIMultiDictProxy[str] = response.headers
        attempt.status = response.status
        attempt.final_url = url
        attempt.content_type = headers.get("Content-Type")
        attempt.content_length = response.content_length
        if response.status in RETRY_STATUSES:
            attempt.retry_after = retry_after_seconds(headers.get("Retry-After"))

    @staticmethod
    async def _drain(response: aiohttp.ClientResponse, options: ProbeOptions, declared: int | None) -> None:
        """Read and discard the body up to the cap, counting decoded bytes.

        Over the cap: an accepted status becomes body_too_large, unless the server declared an
        identity Content-Length (an honest large file is judged by its status, unread). A status
        that is not accepted already judges the URL, so the body is not held against it.
        """
        cap = options.max_body_bytes
        if declared is not None and declared > cap and _identity(response):
            response.close()  # drop the connection rather than read what we will not use
            return
        seen = 0
        async for chunk in response.content.iter_chunked(READ_CHUNK):
            seen += len(chunk)
            if seen > cap:
                response.close()
                if options.accepts(response.status):
                    raise BodyTooLarge(f"body larger than max_body_bytes ({cap} bytes after decoding)")
                return
