"""The exception tree for pipeline failures.

    LinkprobeError
    ├── ConfigError              bad options or settings (CLI exit 3, API 422)
    ├── ProbeFailure             one URL failed; carries an ErrorKind; becomes a result,
    │                            never escapes the engine
    │   ├── InvalidURL, Blocked, DNSFailure, ConnectRefused, ConnectTimeout, ConnectFailure,
    │   ├── TLSFailure, DeadlineExceeded, TooManyRedirects, RedirectLoop,
    │   ├── Unsupported, ProtocolFailure
    │   └── OwnResources         linkprobe's own resources ran out (internal, not the target)
    └── (StoreError and its kin live with the store: linkprobe.store.errors)

libcurl's result codes are translated in one place, `curl_failure`, so nothing above the
engine ever sees a library error.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import pycurl

from linkprobe.engine.outcome import ErrorKind

BLOCKED_MARK = "blocked by egress policy"


class LinkprobeError(Exception):
    """Base of every error linkprobe raises on purpose."""


class ConfigError(LinkprobeError):
    """Options or settings that cannot work."""


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


class OwnResources(ProbeFailure):
    """linkprobe itself could not (no file descriptor for a socket): never the target's failure."""

    kind = ErrorKind.INTERNAL
    retryable = True


@dataclass(frozen=True, slots=True)
class Attempted:
    """What a failed transfer had reached, as the transport saw it: the input of curl_failure."""

    host: str
    refusal: str | None  # the transport refused the response (head too large, too many 1xx)
    blocked: tuple[str, ...]  # addresses the egress policy refused, with why
    dialled: int  # sockets opened to allowed addresses
    os_errno: int  # the last socket error libcurl saw
    connected: bool  # a TCP connection was established
    secured: bool  # the TLS handshake finished (or no TLS)
    connect_bound: bool  # the connect timeout, not the deadline, was the nearer limit
    socket_error: OSError | None  # linkprobe could not open a socket of its own


TLS_CODES = frozenset({
    pycurl.E_SSL_CONNECT_ERROR, pycurl.E_PEER_FAILED_VERIFICATION, pycurl.E_SSL_CERTPROBLEM,
    pycurl.E_SSL_CACERT_BADFILE, pycurl.E_SSL_CIPHER, pycurl.E_SSL_ENGINE_NOTFOUND,
    pycurl.E_SSL_ENGINE_SETFAILED, pycurl.E_SSL_SHUTDOWN_FAILED, pycurl.E_SSL_CRL_BADFILE,
    pycurl.E_SSL_ISSUER_ERROR, 90, 91, 98,  # pinned key, invalid cert status, client certificate
})  # fmt: skip


def curl_failure(code: int, message: str, seen: Attempted) -> ProbeFailure:
    """Translate a libcurl result code (with what the transfer reached) into a typed failure."""
    if seen.refusal is not None:
        return ProtocolFailure(seen.refusal)
    if code == pycurl.E_COULDNT_CONNECT:
        return _not_connected(seen, message)
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return _timed_out(seen, message)
    if code == pycurl.E_COULDNT_RESOLVE_HOST:
        return DNSFailure(f"cannot resolve {seen.host}: {message}")
    if code in TLS_CODES:
        return TLSFailure(message)
    if code == pycurl.E_URL_MALFORMAT:
        return InvalidURL(message)
    # Everything else is the server's answer going wrong: E_UNSUPPORTED_PROTOCOL included, which
    # libcurl also gives for an unknown HTTP version (other schemes never reach libcurl).
    return ProtocolFailure(message or f"libcurl error {code}")


def _not_connected(seen: Attempted, message: str) -> ProbeFailure:
    """No address took the connection. Blocked only when every address was: an allowed address
    that failed says more than the blocked ones (which are still named)."""
    blocked = f"{BLOCKED_MARK}: " + "; ".join(dict.fromkeys(seen.blocked)) if seen.blocked else ""
    if seen.socket_error is not None:
        return OwnResources(f"linkprobe could not open a socket of its own: {seen.socket_error}")
    if not seen.dialled:
        return Blocked(blocked) if blocked else ConnectFailure(message)
    also = f" (other addresses {blocked})" if blocked else ""
    if seen.os_errno == errno.ECONNREFUSED:
        return ConnectRefused(f"connection refused by {seen.host}{also}")
    return ConnectFailure(f"{message}{also}")


def _timed_out(seen: Attempted, message: str) -> ProbeFailure:
    """libcurl words a timeout by where the transfer was: resolving, connecting (TCP and TLS), or
    later (the request sent, on a new or a reused connection): only the first two are ours to
    split by phase."""
    if message.startswith("Resolving timed out"):
        return DNSFailure(f"cannot resolve {seen.host}: no answer within the connect timeout")
    if not message.startswith("Connection timed out"):
        return DeadlineExceeded(message)
    if seen.connect_bound and not seen.connected:
        return ConnectTimeout("no TCP connection within the connect timeout")
    if seen.connect_bound and not seen.secured:
        return TLSFailure("TLS handshake not finished within the connect timeout")
    return DeadlineExceeded(message)
