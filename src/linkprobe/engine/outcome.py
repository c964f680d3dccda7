"""The one outcome model: every input URL yields exactly one ProbeResult.

This module is the single declaration of a result's shape. The dataclass fields below, in order,
with their `doc` metadata, are the documented schema: `to_dict`/`from_dict`, the API's `Result`
model (api/models.py), the CSV columns (report.py) and the stores' JSON all derive from
`RESULT_FIELDS`, so a field added here appears everywhere.

Results are plain slotted dataclasses, not pydantic models: they are built on the hot path,
once per URL, and only the shells (CLI, API, store) need to serialise them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from operator import attrgetter
from typing import Any


class ErrorKind(StrEnum):
    """Why a URL could not be judged by its HTTP status. A closed set: shells may switch on it."""

    INVALID_URL = "invalid_url"  # unparsable, no scheme, userinfo, bad host or port
    BLOCKED = "blocked"  # the egress policy refused the destination (SSRF guard)
    DNS = "dns"  # the name did not resolve (NXDOMAIN, SERVFAIL, DNS timeout)
    CONNECT_REFUSED = "connect_refused"  # TCP RST on connect: nothing listens there
    CONNECT_TIMEOUT = "connect_timeout"  # no TCP handshake within connect_timeout
    CONNECT_ERROR = "connect_error"  # other socket failures: unreachable, reset
    TLS = "tls"  # certificate or handshake failure, or no TLS handshake within connect_timeout
    TIMEOUT = "timeout"  # the per-URL deadline passed before the final status arrived
    TOO_MANY_REDIRECTS = "too_many_redirects"
    REDIRECT_LOOP = "redirect_loop"  # back to a URL already visited, or an empty Location
    UNSUPPORTED = (
        "unsupported"  # a scheme that is not http(s) (a mailto: link, a redirect...): neither ok nor broken
    )
    MISSING_FILE = "missing_file"  # a link between local documents names a file that does not exist
    MISSING_FRAGMENT = "missing_fragment"  # --check-fragments: the target has no such id or heading
    PROTOCOL = "protocol"  # malformed, oversized or truncated response head, early disconnect
    BODY_TOO_LARGE = "body_too_large"  # no longer produced (see `body`); older stored results load
    CANCELLED = "cancelled"  # the run was stopped before this URL finished
    INTERNAL = "internal"  # a bug or an unprocessable work item; never expected


class Outcome(StrEnum):
    """How a result counts: ok, broken, or one of two counted apart, neither ok nor broken:
    unsupported (a scheme that is not probed) and cancelled (the run stopped before it finished).
    The one classifier: ProbeResult.outcome."""

    OK = "ok"
    BROKEN = "broken"
    UNSUPPORTED = "unsupported"
    CANCELLED = "cancelled"


APART = {ErrorKind.UNSUPPORTED: Outcome.UNSUPPORTED, ErrorKind.CANCELLED: Outcome.CANCELLED}


def classify(ok: bool, error_kind: str | None) -> Outcome:
    """The one classifier, on a result's `ok` and error kind (a ProbeResult's, or its stored JSON's)."""
    if ok:
        return Outcome.OK
    return Outcome.BROKEN if error_kind is None else APART.get(error_kind, Outcome.BROKEN)  # type: ignore[call-overload]


class BodyState(StrEnum):
    """What happened to the final response's body. It never changes the verdict: the status does."""

    COMPLETE = "complete"  # read to its end
    TRUNCATED = "truncated"  # max_body_bytes reached (decoded bytes), or a larger declared length left unread
    TIMEOUT = "timeout"  # the deadline passed while the body was still arriving
    RESET = "reset"  # the connection broke (reset, closed early) while the body was arriving
    UNDECODABLE = "undecodable"  # in a Content-Encoding not decoded here, or corrupt in it: not read


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


def _doc(text: str, default: Any = None, **kwargs: Any) -> Any:
    return field(default=default, metadata={"doc": text}, **kwargs)


@dataclass(slots=True)
class ProbeResult:
    url: str = _doc("The URL as given.", dataclasses.MISSING)
    index: int = _doc("Its position in the input, from 0.", dataclasses.MISSING)
    ok: bool = _doc("True when the final status is accepted and no error occurred.", False)
    final_url: str | None = _doc("The URL that gave the final status, after redirects.")
    status_code: int | None = _doc("The final HTTP status; null when no response arrived.")
    error: ProbeError | None = _doc("Why the URL could not be judged by its status; null when it was.")
    redirects: tuple[Hop, ...] = _doc("Each redirect followed, in order.", ())  # () is shared
    body: BodyState | None = _doc(
        "What happened to the final body: complete, truncated, timeout, reset or undecodable; null "
        "when none was read (HEAD, or no final response)."
    )
    elapsed_ms: float = _doc("Time probing, all attempts, without waiting for a slot.", 0.0)
    queue_ms: float = _doc("Time waiting for a global or per-host slot, all attempts.", 0.0)
    dns_ms: float | None = _doc("Name resolution of the last new connection.")
    connect_ms: float | None = _doc("TCP connect of the last new connection.")
    tls_ms: float | None = _doc("TLS handshake of the last new https connection.")
    ttfb_ms: float | None = _doc("From sending the last request to its response head.")
    content_type: str | None = _doc("The final response's Content-Type.")
    content_length: int | None = _doc("The final response's declared Content-Length.")
    checked_at: datetime = _doc(
        "When the final answer arrived (or the probe ended without one).",
        dataclasses.MISSING,
        default_factory=partial(datetime.now, UTC),  # no Python frame
    )
    attempts: int = _doc("Attempts made (1 + retries used).", 0)

    @property
    def outcome(self) -> Outcome:
        error = self.error
        return classify(self.ok, None if error is None else error.kind)

    def __reduce__(self) -> tuple[type[ProbeResult], tuple[Any, ...]]:
        """Pickled as its field values, rebuilt by the constructor: check's processes send every
        result to the parent, and the slots dataclass's own state (a list made by fields() per
        object, set back field by field) cost 4x as much."""
        return ProbeResult, _VALUES(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; the field order is the documented result schema."""
        return {
            name: value if encode is None else encode(value)
            for name, encode, value in zip(_NAMES, _ENCODERS, _VALUES(self), strict=True)
        }

    def to_json(self) -> str:
        """Compact JSON of to_dict(), written by orjson from the dataclass itself: its fields in
        order, enums by value, datetimes in ISO 8601, ProbeError and Hop as objects, as to_dict()
        has them (test_probe checks the two agree), without the encoders' Python calls
        (callgrind: 18k instructions a result against 43k). Imported here: a check that writes
        no JSON need not load orjson."""
        import orjson

        return orjson.dumps(self).decode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeResult:
        """The inverse of to_dict; a field missing from older stored data takes its default."""
        values = {}
        for name in _NAMES:
            if name in data:
                decode = _DECODERS.get(name)
                values[name] = data[name] if decode is None or data[name] is None else decode(data[name])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ResultField:
    """One field of the result schema, as the shells derive their forms from it."""

    name: str
    type: Any  # the annotation, resolved
    doc: str
    required: bool  # no default: older stored results always carry it

    @property
    def default(self) -> Any:
        return getattr(_DEFAULTS, self.name)


def _result_fields() -> tuple[ResultField, ...]:
    import typing

    hints = typing.get_type_hints(ProbeResult)
    return tuple(
        ResultField(f.name, hints[f.name], f.metadata["doc"], f.default is dataclasses.MISSING)
        for f in dataclasses.fields(ProbeResult)
    )


RESULT_FIELDS = _result_fields()
_DEFAULTS = ProbeResult("", 0)
_NAMES = tuple(f.name for f in RESULT_FIELDS)
_VALUES = attrgetter(*_NAMES)


def _error_out(error: ProbeError | None) -> dict[str, str] | None:
    return None if error is None else {"kind": error.kind.value, "message": error.message}


def _hops_out(hops: tuple[Hop, ...]) -> list[dict[str, Any]]:
    return [{"status_code": h.status_code, "url": h.url} for h in hops]


_ENCODE: dict[str, Callable[[Any], Any]] = {
    "error": _error_out,
    "redirects": _hops_out,
    "body": lambda body: None if body is None else body.value,
    "checked_at": datetime.isoformat,
}
_ENCODERS = tuple(_ENCODE.get(name) for name in _NAMES)
_DECODERS: dict[str, Callable[[Any], Any]] = {
    "error": lambda e: ProbeError(ErrorKind(e["kind"]), e["message"]),
    "redirects": lambda hops: tuple(Hop(h["status_code"], h["url"]) for h in hops),
    "body": BodyState,
    "checked_at": datetime.fromisoformat,
}


def failed(url: str, index: int, kind: ErrorKind, message: str) -> ProbeResult:
    """A result for a URL that was never (or no longer) probed."""
    return ProbeResult(url=url, index=index, error=ProbeError(kind, message))
