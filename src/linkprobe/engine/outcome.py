"""The one outcome model: every input URL yields exactly one ProbeResult.

Results are plain slotted dataclasses, not pydantic models: they are built on the hot path,
once per URL, and only the shells (CLI, API, store) need to serialise them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Any

import orjson


class ErrorKind(StrEnum):
    """Why a URL could not be judged by its HTTP status. A closed set: shells may switch on it."""

    INVALID_URL = "invalid_url"  # unparsable, unsupported scheme, userinfo, bad host or port
    BLOCKED = "blocked"  # the egress policy refused the destination (SSRF guard)
    DNS = "dns"  # the name did not resolve (NXDOMAIN, SERVFAIL, DNS timeout)
    CONNECT_REFUSED = "connect_refused"  # TCP RST on connect: nothing listens there
    CONNECT_TIMEOUT = "connect_timeout"  # no TCP handshake within connect_timeout
    CONNECT_ERROR = "connect_error"  # other socket failures: unreachable, reset
    TLS = "tls"  # certificate or handshake failure
    TIMEOUT = "timeout"  # the per-URL deadline passed (slow or hanging server)
    TOO_MANY_REDIRECTS = "too_many_redirects"
    REDIRECT_LOOP = "redirect_loop"
    PROTOCOL = "protocol"  # malformed or truncated HTTP response, early disconnect
    BODY_TOO_LARGE = "body_too_large"  # the body exceeded max_body_bytes (see README)
    CANCELLED = "cancelled"  # the run was stopped before this URL finished
    INTERNAL = "internal"  # a bug or an unprocessable work item; never expected


@dataclass(slots=True, frozen=True)
class ProbeError:
    kind: ErrorKind
    message: str


@dataclass(slots=True, frozen=True)
class Hop:
    """One redirect: the status that redirected and the URL it pointed to."""

    status_code: int
    url: str


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class ProbeResult:
    url: str
    index: int
    ok: bool = False
    final_url: str | None = None
    status_code: int | None = None
    error: ProbeError | None = None
    redirects: tuple[Hop, ...] = ()  # a tuple: most URLs never redirect, and () is shared
    elapsed_ms: float = 0.0
    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    ttfb_ms: float | None = None
    content_type: str | None = None
    content_length: int | None = None
    checked_at: datetime = field(default_factory=partial(datetime.now, UTC))  # no Python frame
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; the field order is the documented result schema."""
        return {
            "url": self.url,
            "index": self.index,
            "ok": self.ok,
            "final_url": self.final_url,
            "status_code": self.status_code,
            "error": None
            if self.error is None
            else {"kind": self.error.kind.value, "message": self.error.message},
            "redirects": [{"status_code": h.status_code, "url": h.url} for h in self.redirects],
            "elapsed_ms": self.elapsed_ms,
            "dns_ms": self.dns_ms,
            "connect_ms": self.connect_ms,
            "tls_ms": self.tls_ms,
            "ttfb_ms": self.ttfb_ms,
            "content_type": self.content_type,
            "content_length": self.content_length,
            "checked_at": self.checked_at.isoformat(),
            "attempts": self.attempts,
        }

    def to_json(self) -> str:
        """Compact JSON of to_dict(); orjson because this runs once per stored result."""
        return orjson.dumps(self.to_dict()).decode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeResult:
        err = data.get("error")
        return cls(
            url=data["url"],
            index=data["index"],
            ok=data["ok"],
            final_url=data.get("final_url"),
            status_code=data.get("status_code"),
            error=None if err is None else ProbeError(ErrorKind(err["kind"]), err["message"]),
            redirects=tuple(Hop(h["status_code"], h["url"]) for h in data.get("redirects", [])),
            elapsed_ms=data.get("elapsed_ms", 0.0),
            dns_ms=data.get("dns_ms"),
            connect_ms=data.get("connect_ms"),
            tls_ms=data.get("tls_ms"),
            ttfb_ms=data.get("ttfb_ms"),
            content_type=data.get("content_type"),
            content_length=data.get("content_length"),
            checked_at=datetime.fromisoformat(data["checked_at"]),
            attempts=data.get("attempts", 0),
        )


def failed(url: str, index: int, kind: ErrorKind, message: str) -> ProbeResult:
    """A result for a URL that was never (or no longer) probed."""
    return ProbeResult(url=url, index=index, error=ProbeError(kind, message))
