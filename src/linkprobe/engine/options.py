"""Options: per-probe ProbeOptions (may differ per task) and engine-wide EngineConfig.

Plain dataclasses, declared once: each field's default, bounds and description live in its
`metadata` (a Rule). The engine checks them here without pydantic (`linkprobe check` of one URL
would otherwise spend about 10 MiB and a tenth of a second on it); the API derives its pydantic
model, constraints and OpenAPI schema from the same declaration (api/options.py).
"""

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Self, get_args, get_origin

from linkprobe import __version__
from linkprobe.engine.decode import ACCEPTED
from linkprobe.engine.errors import ConfigError

DEFAULT_USER_AGENT = f"linkprobe/{__version__}"
# Header values may hold tabs, not other control characters: CR/LF would split the request.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})
SECRET_OPTIONS = ("headers",)  # options whose values are credentials: never shown (errors, logs, views)
REDACTED = "[redacted]"
_RANGE = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$")


def parse_accept(rule: str) -> frozenset[int]:
    """Parse an accept rule such as "200-299,301,429" into the set of accepted status codes."""
    codes: set[int] = set()
    for part in rule.split(","):
        match = _RANGE.match(part)
        if match is None:
            raise ValueError(f"invalid status range {part.strip()!r} (expected e.g. 200-299,301)")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if not 100 <= low <= high <= 599:
            raise ValueError(f"status range {part.strip()!r} must lie within 100-599")
        codes.update(range(low, high + 1))
    return frozenset(codes)


def check_headers(value: Mapping[str, str]) -> None:
    for name, content in value.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if _CONTROL.search(content):
            raise ValueError(f"header {name!r} has control characters (CR, LF, ...) in its value")


def check_user_agent(value: str) -> None:
    if _CONTROL.search(value):
        raise ValueError("user_agent must not contain control characters (CR, LF, ...)")


def check_cidrs(value: tuple[str, ...]) -> None:
    for cidr in value:
        ipaddress.ip_network(cidr, strict=False)


@dataclass(frozen=True, slots=True)
class Rule:
    """What one option may hold, beyond its type: a description, bounds, and a check that raises
    ValueError with the reason. The messages of the bounds are pydantic's, so the CLI and the API
    word a bad value alike."""

    doc: str | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    max_length: int | None = None
    check: Callable[[Any], None] | None = None

    def bounds(self) -> dict[str, Any]:
        """The bounds that are set, by pydantic's names (ge, gt, le, max_length)."""
        given = {"ge": self.ge, "gt": self.gt, "le": self.le, "max_length": self.max_length}
        return {name: bound for name, bound in given.items() if bound is not None}

    def violation(self, value: Any) -> str | None:
        """Why `value` (of the field's type) breaks a bound or the check; None when it does not."""
        if self.ge is not None and value < self.ge:
            return f"Input should be greater than or equal to {number_text(self.ge)}"
        if self.gt is not None and value <= self.gt:
            return f"Input should be greater than {number_text(self.gt)}"
        if self.le is not None and value > self.le:
            return f"Input should be less than or equal to {number_text(self.le)}"
        if self.max_length is not None and len(value) > self.max_length:
            return f"String should have at most {self.max_length} characters"
        try:
            if self.check is not None:
                self.check(value)
        except ValueError as exc:
            return str(exc)
        return None


def rule(doc: str | None = None, **bounds: Any) -> dict[str, Rule]:
    """A field's metadata: `field(default=..., metadata=rule("what it is", ge=0, le=10))`."""
    return {"rule": Rule(doc, **bounds)}


def rule_of(item: dataclasses.Field[Any]) -> Rule:
    found: Rule = item.metadata.get("rule", NO_RULE)
    return found


NO_RULE = Rule()


def number_text(value: float) -> str:
    """A number as a message shows it: 30, not 30.0."""
    return str(int(value)) if float(value).is_integer() else str(value)


def default_of(item: dataclasses.Field[Any]) -> Any:
    return item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default


def described(item: dataclasses.Field[Any]) -> str:
    """An option as help text shows it (`linkprobe check --help`): its description, its default
    and its bounds, all from the declaration."""
    found, default = rule_of(item), default_of(item)
    numeric = isinstance(default, int | float) and not isinstance(default, bool)
    shown = number_text(default) if numeric else default
    bounds = [f"default {shown}"]
    words = (("at least", found.ge), ("above", found.gt), ("at most", found.le))
    bounds += [f"{word} {number_text(bound)}" for word, bound in words if bound is not None]
    if found.max_length is not None:
        bounds.append(f"at most {found.max_length} characters")
    return f"{(found.doc or item.name).rstrip('.')} ({'; '.join(bounds)})"


class OptionError(ConfigError, ValueError):
    """One option with a value it may not hold: which, why, and the value given."""

    def __init__(self, name: str, reason: str, value: object) -> None:
        if name in SECRET_OPTIONS:  # the error is logged and shown: names stay, values do not
            value = dict.fromkeys(value, REDACTED) if isinstance(value, Mapping) else REDACTED
        super().__init__(f"invalid value for {name}: {reason} (got {value!r})")
        self.name, self.reason, self.value = name, reason, value


def _coerce(kind: Any, value: Any) -> Any:
    """`value` as a `kind` (the field's annotation): the types JSON and the flags give, an int for
    a float too, and nothing else (no parsing of strings); raises ValueError in pydantic's words."""
    origin, args = get_origin(kind), get_args(kind)
    if origin is Literal:
        if value not in args:
            raise ValueError("Input should be " + " or ".join(repr(a) for a in args))
        return value
    if kind is bool or kind is int:
        if type(value) is kind:
            return value
        if kind is int and type(value) is float:
            if value.is_integer():
                return int(value)
            raise ValueError("Input should be a valid integer, got a number with a fractional part")
        raise ValueError(f"Input should be a valid {'boolean' if kind is bool else 'integer'}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ValueError("Input should be a valid number")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ValueError("Input should be a valid string")
    if origin is dict and isinstance(value, Mapping) and all(isinstance(x, str) for x in _flat(value)):
        return dict(value)
    if origin is tuple and isinstance(value, list | tuple) and all(isinstance(x, str) for x in value):
        return tuple(value)
    raise ValueError(
        f"Input should be a valid {'dictionary of strings' if origin is dict else 'list of strings'}"
    )


def _flat(mapping: Mapping[Any, Any]) -> list[Any]:
    return [*mapping.keys(), *mapping.values()]


class Validated:
    """Checks every field of a dataclass against its type and Rule when it is built; unknown
    names are refused by the dataclass's own __init__ (and by `of`)."""

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            try:
                coerced = _coerce(item.type, value)
            except ValueError as exc:
                raise OptionError(item.name, str(exc), value) from None
            if (reason := rule_of(item).violation(coerced)) is not None:
                raise OptionError(item.name, reason, value)
            if coerced is not value:
                object.__setattr__(self, item.name, coerced)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Self:
        """Built from a mapping (stored task options, flags): an unknown name is an OptionError."""
        names = {item.name for item in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for name, value in values.items():
            if name not in names:
                raise OptionError(name, "Extra inputs are not permitted", value)
        return cls(**values)


def header_lines(defaults: dict[str, str], given: Mapping[str, str]) -> list[str]:
    """Request header lines: the given headers, and each default the given ones do not name."""
    named = {name.lower() for name in given}
    merged = {**{k: v for k, v in defaults.items() if k.lower() not in named}, **given}
    # libcurl drops a header written "Name:" with nothing after it; "Name;" sends it empty.
    return [f"{name}: {value}" if value else f"{name};" for name, value in merged.items()]


@dataclass(frozen=True)
class ProbeOptions(Validated):
    """How to probe one URL. Tasks may each carry their own."""

    method: Literal["GET", "HEAD"] = field(
        default="GET", metadata=rule("HEAD falls back to GET on 405 and 501.")
    )
    headers: dict[str, str] = field(
        default_factory=dict, metadata=rule("Extra request headers.", check=check_headers)
    )
    user_agent: str = field(
        default=DEFAULT_USER_AGENT,
        metadata=rule("The User-Agent header.", max_length=512, check=check_user_agent),
    )
    accept: str = field(
        default="200-299",
        metadata=rule("Status codes judged ok after redirects, e.g. 200-299,301,429.", check=parse_accept),
    )
    verify_tls: bool = field(default=True, metadata=rule("Verify TLS certificates."))
    timeout: float = field(
        default=10.0,
        metadata=rule("Total deadline per URL attempt, redirects and body included.", gt=0, le=600),
    )
    connect_timeout: float = field(
        default=5.0, metadata=rule("Seconds to resolve, connect and finish the TLS handshake.", gt=0, le=600)
    )
    retries: int = field(
        default=2, metadata=rule("Retries for connect errors and 429/502/503/504.", ge=0, le=10)
    )
    retry_backoff: float = field(
        default=0.5, metadata=rule("Base of the exponential backoff, seconds.", ge=0, le=60)
    )
    retry_after_cap: float = field(
        default=10.0, metadata=rule("Longest Retry-After honoured, seconds.", ge=0, le=600)
    )
    max_redirects: int = field(default=10, metadata=rule("Redirects followed at most.", ge=0, le=50))
    max_body_bytes: int = field(
        default=1 << 20, metadata=rule("Decoded body bytes read at most.", ge=0, le=1 << 30)
    )
    concurrency: int = field(default=256, metadata=rule("URLs of one run in flight at once.", ge=1, le=10000))
    max_age: float = field(
        default=0.0,
        metadata=rule(
            "Service tasks: reuse a URL's result from a task of the same owner with the same other "
            "options probed at most this many seconds ago (results say cached_from; 0: never). The "
            "engine ignores it.",
            ge=0,
            le=30 * 86400,
        ),
    )

    @cached_property
    def longest_s(self) -> float:
        """The longest one URL can take once it holds its slots: every attempt to its deadline,
        the longest backoffs or Retry-After waits between them."""
        waits = sum(max(self.retry_backoff * 2.0**n, self.retry_after_cap) for n in range(self.retries))
        return float((self.retries + 1) * self.timeout + waits)

    # What every request needs, derived once per options object (the hot path reads these).
    @cached_property
    def accepted(self) -> frozenset[int]:
        """The status codes judged ok (`accept` parsed)."""
        return parse_accept(self.accept)

    @cached_property
    def request_headers(self) -> list[str]:
        """The request's header lines ("Name: value"), User-Agent and Accept-Encoding included."""
        return header_lines({"User-Agent": self.user_agent, "Accept-Encoding": ACCEPTED}, self.headers)

    @cached_property
    def foreign_headers(self) -> list[str]:
        """The header lines for other origins after a redirect: no credentials (the same list
        object as request_headers when there are none)."""
        if not any(name.lower() in CREDENTIALS for name in self.headers):
            return self.request_headers
        safe = {name: v for name, v in self.headers.items() if name.lower() not in CREDENTIALS}
        return header_lines({"User-Agent": self.user_agent, "Accept-Encoding": ACCEPTED}, safe)

    # The stored form: the fields that differ from their defaults, as JSON; read back through
    # the same checks (`of`). Secret values (SECRET_OPTIONS) are split off before it is stored.
    def changed(self) -> dict[str, Any]:
        """The fields given other values than their defaults (what a task shows and stores)."""
        return {
            item.name: value
            for item in dataclasses.fields(self)
            if (value := getattr(self, item.name)) != default_of(item)
        }

    def to_json(self) -> str:
        import json  # the stores' and the cache's: a check of one URL does without

        return json.dumps(self.changed())

    @classmethod
    def from_json(cls, text: str) -> Self:
        import json

        return cls.of(json.loads(text))

    def redacted(self) -> Self:
        """The options as shown to anyone: the secret options' names (header names) stay, their
        values do not."""
        if not any(getattr(self, name) for name in SECRET_OPTIONS):
            return self
        hidden: dict[str, Any] = {n: dict.fromkeys(getattr(self, n), REDACTED) for n in SECRET_OPTIONS}
        return dataclasses.replace(self, **hidden)

    def secrets(self) -> dict[str, Any]:
        """The secret options' values that are set (None of them: empty)."""
        return {name: value for name in SECRET_OPTIONS if (value := getattr(self, name))}


@dataclass(frozen=True)
class EngineConfig(Validated):
    """Engine-wide settings: one connection pool, one egress policy, shared by every run."""

    concurrency: int = field(
        default=256,
        metadata=rule(
            "Requests in flight at once, all hosts (connections kept open: twice this).",
            ge=1,
            le=10000,
        ),
    )
    per_host: int = field(default=8, metadata=rule("Requests in flight at once to one host.", ge=1, le=1000))
    allow_private: bool = field(
        default=False, metadata=rule("Allow loopback, private and link-local destinations.")
    )
    allow_cidrs: tuple[str, ...] = field(
        default=(), metadata=rule("Networks allowed despite the egress policy.", check=check_cidrs)
    )
