"""Probe one URL: redirects followed by hand, retries with backoff, a body cap, one deadline.

Every failure is a ProbeFailure caught here and turned into a result: nothing escapes. Once the
final status and headers have arrived the status decides the verdict: the body cap, the deadline
and a connection that breaks only bound how much of the body is read, and `result.body` says how
that went.
"""

from __future__ import annotations

from time import perf_counter

import pycurl

from linkprobe.engine.egress import EgressPolicy
from linkprobe.engine.errors import (
    Attempted,
    DeadlineExceeded,
    ProbeFailure,
    RedirectLoop,
    TooManyRedirects,
    Unsupported,
    curl_failure,
)
from linkprobe.engine.handle import REDIRECT_STATUSES, BlockingTransport, Handle, Sender
from linkprobe.engine.limits import Lane, Slots
from linkprobe.engine.options import EngineConfig, ProbeOptions
from linkprobe.engine.outcome import BodyState, ErrorKind, Hop, ProbeError, ProbeResult, utcnow
from linkprobe.engine.urls import Target, normalise

RETRY_STATUSES = frozenset({429, 502, 503, 504})
FALLBACK_TO_GET = frozenset({405, 501})


def ms_since(started: float) -> float:
    """Milliseconds since a perf_counter() reading, to the microsecond.

    Not round(x, 3): that formats and re-parses the float, a measurable cost on every probe.
    """
    return int((perf_counter() - started) * 1_000_000 + 0.5) / 1000


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime  # rare: most Retry-After values are seconds

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())


def _next_hop(current: Target, first: str, location: str, result: ProbeResult, max_redirects: int) -> Target:
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


def _host(url: Target) -> str:
    return f"{url.host}:{url.port}"


def _origin(url: Target) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port


def _forget_attempt(result: ProbeResult) -> None:
    """Before a retry: a result shows what its last attempt saw, and nothing of earlier ones."""
    result.redirects = ()
    result.final_url = result.status_code = result.content_type = result.content_length = None
    result.ttfb_ms = result.dns_ms = result.connect_ms = result.tls_ms = result.body = None


def _ms(microseconds: int) -> float:
    return microseconds / 1000


def _timings(curl: pycurl.Curl, result: ProbeResult) -> None:
    """Phase times from libcurl's own timing info. A reused connection (or HTTP/2 stream) has no
    DNS, connect or TLS phase: those stay as the last new connection of the attempt left them."""
    if curl.getinfo(pycurl.NUM_CONNECTS):
        dns = curl.getinfo(pycurl.NAMELOOKUP_TIME_T)
        connected = curl.getinfo(pycurl.CONNECT_TIME_T)
        secured = curl.getinfo(pycurl.APPCONNECT_TIME_T)
        result.dns_ms, result.connect_ms = _ms(dns), _ms(connected - dns)
        result.tls_ms = _ms(secured - connected) if secured else None
    result.ttfb_ms = _ms(curl.getinfo(pycurl.STARTTRANSFER_TIME_T) - curl.getinfo(pycurl.PRETRANSFER_TIME_T))


def _attempted(handle: Handle, target: Target, connect_bound: bool) -> Attempted:
    curl = handle.curl
    return Attempted(
        host=_host(target),
        refusal=handle.refusal,
        blocked=tuple(handle.blocked),
        dialled=handle.dialled,
        os_errno=curl.getinfo(pycurl.OS_ERRNO),
        connected=curl.getinfo(pycurl.CONNECT_TIME_T) > 0,
        secured=target.scheme != "https" or curl.getinfo(pycurl.APPCONNECT_TIME_T) > 0,
        connect_bound=connect_bound,
        socket_error=handle.socket_error,
    )


def _body_state(handle: Handle, code: int) -> BodyState:
    """How the final body's read ended: the transport's own verdict (cap, encoding) first."""
    if handle.body is not None:
        return handle.body
    if code == 0:
        return BodyState.COMPLETE
    return BodyState.TIMEOUT if code == pycurl.E_OPERATION_TIMEDOUT else BodyState.RESET


class Prober:
    """Probes single URLs on a shared transport."""

    def __init__(self, transport: Sender, slots: Slots) -> None:
        self.transport = transport  # its sockets pass the egress policy on every dial
        self.slots = slots

    async def probe(
        self, url: str, index: int, options: ProbeOptions, page: bytearray | None = None, lane: Lane = None
    ) -> ProbeResult:
        """One result for `url`; with `page`, the final GET body is kept there (up to
        max_body_bytes, decoded) instead of counted and dropped: a page to extract links from.
        `lane` is whose share of the engine's slots it takes (limits.LaneSemaphore)."""
        started = perf_counter()
        result = ProbeResult(url, index)  # positional: keyword parsing measured 20% of building it
        try:
            target = normalise(url)
            for number in range(options.retries + 1):
                result.attempts = number + 1
                delay = await self._attempt(target, options, result, number == options.retries, page, lane)
                if delay is None:
                    break
                await self.transport.pause(delay if delay >= 0 else self._backoff(number, options))
        except ProbeFailure as failure:
            result.error = ProbeError(failure.kind, str(failure) or failure.kind.value)
        except Exception as exc:  # a bug must still give this URL a result
            result.error = ProbeError(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}")
        result.ok = result.error is None and result.status_code in options.accepted  # None is never in it
        result.elapsed_ms = ms_since(started)
        if result.queue_ms:  # round() only then: it formats and re-parses the float
            result.elapsed_ms = round(result.elapsed_ms - result.queue_ms, 3)
        if result.status_code is None:  # no answer: checked when the probe gave up
            result.checked_at = utcnow()
        return result

    async def _attempt(
        self,
        target: Target,
        options: ProbeOptions,
        result: ProbeResult,
        last: bool,
        page: bytearray | None,
        lane: Lane,
    ) -> float | None:
        """One attempt under the deadline. Returns None when done, else the delay before a retry
        (negative: use the backoff). Raises ProbeFailure when the URL failed for good."""
        if result.attempts > 1:
            _forget_attempt(result)
        host = _host(target)
        if not self.slots.try_acquire(host, lane):
            queued = perf_counter()
            await self.slots.acquire(host, lane)  # before the deadline: queueing is not the URL's fault
            result.queue_ms += ms_since(queued)
        held: list[str | None] = [host]  # the host whose slot the probe holds: redirects move it
        handle = self.transport.handle()
        try:
            retry_after = await self._follow(handle, target, options, result, page, held)
        except ProbeFailure as failure:
            if last or not failure.retryable:
                raise
            return -1.0
        finally:
            self.transport.release(handle)
            self.slots.release(held[0], lane)
        if last or result.status_code not in RETRY_STATUSES:
            return None
        return -1.0 if retry_after is None else min(retry_after, options.retry_after_cap)

    async def _move(self, held: list[str | None], host: str, result: ProbeResult) -> float:
        """Take a slot of the redirect's host (libcurl would queue the hop against its timeout);
        the seconds waited, which do not count against the deadline."""
        queued = perf_counter()
        await self.slots.move(held, host)
        waited = perf_counter() - queued
        result.queue_ms = round(result.queue_ms + waited * 1000, 3)
        return waited

    @staticmethod
    def _backoff(number: int, options: ProbeOptions) -> float:
        # Full jitter: spreads retries from many URLs of one host over the window. Imported here:
        # most checks never retry, and a one-URL check counts its memory (random loads hashlib).
        import random

        return random.uniform(0, options.retry_backoff * (2**number))

    async def _follow(
        self,
        handle: Handle,
        target: Target,
        options: ProbeOptions,
        result: ProbeResult,
        page: bytearray | None,
        held: list[str | None],
    ) -> float | None:
        """Request `target`, following redirects, all within the attempt's deadline; returns the
        final response's Retry-After."""
        deadline = perf_counter() + options.timeout
        method = options.method
        first = text = target.text
        headers = options.request_headers
        home = _origin(target) if options.foreign_headers is not headers else None  # has credentials
        while True:
            left = deadline - perf_counter()
            if left <= 0:
                raise DeadlineExceeded(f"no final status within {options.timeout:g} s")
            connect = min(options.connect_timeout, left)
            get = method == "GET"
            handle.start(
                text,
                not get,
                headers,
                left,
                connect,
                options.verify_tls,
                options.max_body_bytes,
                page if get else None,
            )
            code, message = await self.transport.send(handle)
            if not handle.head_done:
                raise curl_failure(code, message, _attempted(handle, target, connect < left))
            status = self._note(handle, text, result)
            location = handle.header(b"location") if status in REDIRECT_STATUSES else None
            if location is not None:
                target = _next_hop(target, first, location, result, options.max_redirects)
                text = result.redirects[-1].url
                if home is not None:  # credentials stay with their origin, as curl and browsers do
                    headers = options.request_headers if _origin(target) == home else options.foreign_headers
                if (host := _host(target)) != held[0]:  # the per-host limit holds on every hop
                    deadline += await self._move(held, host, result)
                continue
            if not get and status in FALLBACK_TO_GET:
                method = "GET"
                continue
            if get:
                result.body = _body_state(handle, code)
            if status in RETRY_STATUSES:
                return retry_after_seconds(handle.header(b"retry-after"))
            return None

    @staticmethod
    def _note(handle: Handle, url: str, result: ProbeResult) -> int:
        status = handle.status
        assert status is not None
        result.status_code = status
        result.final_url = url
        result.content_type = handle.header(b"content-type")
        result.content_length = handle.declared_length()
        result.checked_at = utcnow()
        _timings(handle.curl, result)
        return status


def probe_now(url: str, config: EngineConfig, options: ProbeOptions, index: int = 0) -> ProbeResult:
    """Probe one URL in this thread without an event loop (the Prober's coroutines never suspend
    on a BlockingTransport): what `linkprobe check` of one URL needs, and no more. Ctrl-C raises
    KeyboardInterrupt."""
    transport = BlockingTransport(EgressPolicy(config.allow_private, config.allow_cidrs))
    probing = Prober(transport, Slots(1, 1)).probe(url, index, options)
    try:
        probing.send(None)
    except StopIteration as done:
        result: ProbeResult = done.value
        return result
    finally:
        transport.close()
    probing.close()
    raise RuntimeError("a probe on the blocking transport waited for an event loop")
