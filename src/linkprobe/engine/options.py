"""Options: per-probe ProbeOptions (may differ per task) and engine-wide EngineConfig."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from linkprobe import __version__

DEFAULT_USER_AGENT = f"linkprobe/{__version__}"
# Header values may hold tabs, not other control characters: CR/LF would split the request.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})
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


Seconds = Annotated[float, Field(gt=0, le=600)]


@dataclass(frozen=True, slots=True)
class Plan:
    """ProbeOptions as the probe loop reads them: a slotted copy built once per options object,
    because every attribute read on a pydantic model goes through its __getattr__ hook."""

    method: str
    accepted: frozenset[int]
    headers: dict[str, str] | None  # None: the request class's automatic headers are enough
    foreign_headers: dict[str, str] | None  # for other origins after a redirect: no credentials
    verify_tls: bool
    deadline: float  # ProbeOptions.timeout: the total per-attempt deadline
    client_timeout: aiohttp.ClientTimeout
    retries: int
    retry_backoff: float
    retry_after_cap: float
    max_redirects: int
    max_body_bytes: int

    def accepts(self, status: int) -> bool:
        return status in self.accepted


class ProbeOptions(BaseModel):
    """How to probe one URL. Tasks may each carry their own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["GET", "HEAD"] = Field("GET", description="HEAD falls back to GET on 405 and 501.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    user_agent: str = Field(DEFAULT_USER_AGENT, max_length=512)
    accept: str = Field(
        "200-299", description="Status codes judged ok after redirects, e.g. 200-299,301,429."
    )
    verify_tls: bool = True
    timeout: Seconds = Field(10.0, description="Total deadline per URL attempt, redirects and body included.")
    connect_timeout: Seconds = 5.0
    retries: int = Field(2, ge=0, le=10, description="Retries for connect errors and 429/502/503/504.")
    retry_backoff: float = Field(0.5, ge=0, le=60, description="Base of the exponential backoff, seconds.")
    retry_after_cap: float = Field(10.0, ge=0, le=600, description="Longest Retry-After honoured, seconds.")
    max_redirects: int = Field(10, ge=0, le=50)
    max_body_bytes: int = Field(1 << 20, ge=0, le=1 << 30, description="Decoded body bytes read at most.")
    concurrency: int = Field(256, ge=1, le=10000, description="URLs of one run in flight at once.")

    @field_validator("accept")
    @classmethod
    def _valid_accept(cls, value: str) -> str:
        parse_accept(value)
        return value

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, content in value.items():
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise ValueError(f"invalid header name {name!r}")
            if _CONTROL.search(content):
                raise ValueError(f"header {name!r} has control characters (CR, LF, ...) in its value")
        return value

    @field_validator("user_agent")
    @classmethod
    def _valid_user_agent(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("user_agent must not contain control characters (CR, LF, ...)")
        return value

    @cached_property
    def plan(self) -> Plan:
        """What every request needs, built once."""
        headers = (
            None
            if not self.headers and self.user_agent == DEFAULT_USER_AGENT
            else {"User-Agent": self.user_agent, **self.headers}
        )
        foreign = headers
        if headers is not None and any(name.lower() in CREDENTIALS for name in headers):
            foreign = {name: v for name, v in headers.items() if name.lower() not in CREDENTIALS}
        return Plan(
            method=self.method,
            accepted=parse_accept(self.accept),
            headers=headers,
            foreign_headers=foreign,
            verify_tls=self.verify_tls,
            deadline=self.timeout,
            client_timeout=aiohttp.ClientTimeout(sock_connect=self.connect_timeout),
            retries=self.retries,
            retry_backoff=self.retry_backoff,
            retry_after_cap=self.retry_after_cap,
            max_redirects=self.max_redirects,
            max_body_bytes=self.max_body_bytes,
        )


class EngineConfig(BaseModel):
    """Engine-wide settings: one connection pool, one egress policy, shared by every run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    concurrency: int = Field(256, ge=1, le=10000, description="Connections open at once, all hosts.")
    per_host: int = Field(8, ge=1, le=1000, description="Connections open at once to one host.")
    dns_timeout: Seconds = 5.0
    allow_private: bool = Field(False, description="Allow loopback, private and link-local destinations.")
    allow_cidrs: tuple[str, ...] = Field((), description="Networks allowed despite the egress policy.")

    @field_validator("allow_cidrs")
    @classmethod
    def _valid_cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value
