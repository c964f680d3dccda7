"""The exception tree for pipeline failures.

    LinkprobeError
    ├── ConfigError              bad options or settings (CLI exit 3, API 422)
    ├── ProbeFailure             one URL failed; carries an ErrorKind; becomes a result,
    │                            never escapes the engine
    │   ├── InvalidURL, Blocked, DNSFailure, ConnectRefused, ConnectTimeout, ConnectFailure,
    │   ├── TLSFailure, DeadlineExceeded, TooManyRedirects, RedirectLoop,
    │   └── Unsupported, ProtocolFailure
    └── StoreError               the store failed (linkprobe.store)
        └── StoreUnavailable     the store cannot be reached right now (API 503)

aiohttp's exceptions are translated in one place, `map_client_error`, so nothing above the
engine ever sees a library exception.
"""

from __future__ import annotations

import asyncio
import errno
import re
import ssl

import aiohttp

from linkprobe.engine.outcome import ErrorKind

BLOCKED_MARK = "blocked by egress policy"


class LinkprobeError(Exception):
    """Base of every error linkprobe raises on purpose."""


class ConfigError(LinkprobeError):
    """Options or settings that cannot work."""


class StoreError(LinkprobeError):
    """The task store failed."""


class StoreUnavailable(StoreError):
    """The task store cannot be reached; callers may retry later."""


class ProbeFailure(LinkprobeError):
    kind: ErrorKind = ErrorKind.INTERNAL
    retryable = False


class InvalidURL(ProbeFailure):
    kind = ErrorKind.INVALID_URL


class Blocked(ProbeFailure):
    kind = ErrorKind.BLOCKED


class DNSFailure(ProbeFailure):
    kind = ErrorKind.DNS


class ConnectRefused(ProbeFailure):
    kind = ErrorKind.CONNECT_REFUSED


class ConnectTimeout(ProbeFailure):
    kind = ErrorKind.CONNECT_TIMEOUT
    retryable = True


class ConnectFailure(ProbeFailure):
    kind = ErrorKind.CONNECT_ERROR
    retryable = True


class TLSFailure(ProbeFailure):
    kind = ErrorKind.TLS


class DeadlineExceeded(ProbeFailure):
    kind = ErrorKind.TIMEOUT


class TooManyRedirects(ProbeFailure):
    kind = ErrorKind.TOO_MANY_REDIRECTS


class RedirectLoop(ProbeFailure):
    kind = ErrorKind.REDIRECT_LOOP


class Unsupported(ProbeFailure):
    """A URL, or a redirect, of a scheme linkprobe does not probe (mailto:, ftp:, file:, ...)."""

    kind = ErrorKind.UNSUPPORTED


class ProtocolFailure(ProbeFailure):
    kind = ErrorKind.PROTOCOL


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _map_connector_error(exc: aiohttp.ClientConnectorError) -> ProbeFailure:
    os_error = exc.os_error
    text = str(os_error)
    if BLOCKED_MARK in text:
        return _blocked_or_dialled(exc, text)
    if isinstance(os_error, ConnectionRefusedError):
        return ConnectRefused(f"connection refused by {exc.host}:{exc.port}")
    if isinstance(os_error, ssl.SSLError):
        return TLSFailure(_describe(os_error))
    return ConnectFailure(_describe(os_error))


def _blocked_or_dialled(exc: aiohttp.ClientConnectorError, text: str) -> ProbeFailure:
    """Blocked only when every address was: the happy-eyeballs dialer merges one error per address
    into a single OSError, and an allowed address that failed says more than the blocked ones."""
    reasons = dict.fromkeys(re.findall(rf"{BLOCKED_MARK}: ([^,\]]+)", text))
    blocked = f"{BLOCKED_MARK}: " + "; ".join(reasons)
    dialled = [
        int(n)
        for n, what in re.findall(r"\[Errno (\d+)\] (?!Multiple)([^,\]]*)", text)
        if BLOCKED_MARK not in what
    ]
    if not dialled:
        return Blocked(blocked)
    if errno.ECONNREFUSED in dialled:
        return ConnectRefused(f"connection refused by {exc.host}:{exc.port} (other addresses {blocked})")
    return ConnectFailure(f"{_describe(exc.os_error)}")


def map_client_error(exc: BaseException) -> ProbeFailure:
    """Translate an exception raised while talking to a target into a typed failure."""
    if isinstance(exc, ProbeFailure):
        return exc
    # Order matters: the aiohttp classes overlap (DNS and TLS errors are connector errors too).
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return DNSFailure(f"cannot resolve {exc.host}: {exc.os_error}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError):
        return TLSFailure(_describe(exc))
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimeout("no TCP connection within the connect timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _map_connector_error(exc)
    if isinstance(
        exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError
    ):
        return ProtocolFailure(_describe(exc))
    if isinstance(exc, asyncio.TimeoutError):
        return DeadlineExceeded(_describe(exc))
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return InvalidURL(_describe(exc))
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        return ConnectFailure(_describe(exc))
    if isinstance(exc, aiohttp.ClientError):
        return ProtocolFailure(_describe(exc))
    return ProbeFailure(_describe(exc))
