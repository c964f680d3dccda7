"""Webhooks as the Standard Webhooks spec has them: signing, verifying, the summary, delivery.

- A secret is `whsec_` and the base64 of 32 random bytes, made once and shown once.
- A delivery is a POST of a JSON body with `webhook-id` (the same on every attempt: receivers
  deduplicate on it), `webhook-timestamp` (the attempt's Unix time) and `webhook-signature`
  (`v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the secret's bytes).
- Deliveries run on the engine's own HTTP machinery (a `Transport` of their own: its handles dial
  through the egress policy in OPENSOCKETFUNCTION, as probes do), so a webhook reaches no address
  a probe could not. A URL the policy refuses on its face (an IP literal) is refused before
  libcurl sees it; a name is refused at the dial, before any socket exists.
- `Notifier.submit` returns at once; the delivery retries with backoff within a bounded total
  time, at most `max_active` requests at once, and records every attempt as a value.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from linkprobe import __version__
from linkprobe.changes import CHANGES
from linkprobe.engine.egress import EgressPolicy
from linkprobe.engine.errors import BLOCKED_MARK, Blocked, ProbeFailure, curl_failure
from linkprobe.engine.handle import Handle, Limits
from linkprobe.engine.outcome import ErrorKind, ProbeError
from linkprobe.engine.probe import _attempted
from linkprobe.engine.urls import Target, normalise

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64
SIGNATURE_VERSION = "v1"
TOLERANCE_S = 5 * 60  # how far a receiver accepts a timestamp from its own clock (the spec's default)
EVENT = "task.ended"
RESPONSE_CAP = 4096  # a receiver's answer is read up to this and dropped: only its status counts
MAX_URL_LENGTH = 2048
USER_AGENT = f"linkprobe-webhook/{__version__}"  # not libcurl's, which names library versions
# Failures no retry can mend: the URL itself, or where it leads.
FINAL = frozenset({ErrorKind.BLOCKED, ErrorKind.INVALID_URL, ErrorKind.UNSUPPORTED})


class WebhookOn(StrEnum):
    """When a webhook is notified."""

    END = "end"  # every run that ends
    CHANGES = "changes"  # only a run whose changes against the previous run are not all zero


class WebhookSpec(BaseModel):
    """A webhook of a task or a schedule, as the API takes it (the secret is made by the service)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        max_length=MAX_URL_LENGTH,
        description="Where a run's summary is POSTed (http or https; the probes' egress policy applies).",
        examples=["https://ci.example.com/hooks/linkprobe"],
    )
    on: WebhookOn = Field(
        default=WebhookOn.END,
        description="`end`: every run that ends; `changes`: only runs where something changed.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, text: str) -> str:
        try:
            return str(normalise(text.strip()))
        except ProbeFailure as failure:
            raise ValueError(f"not a webhook URL: {failure}") from None


# -- signing: both sides --


class VerifyError(ValueError):
    """A delivery that does not verify; says why."""


def new_secret() -> str:
    """A fresh signing secret: shown to its owner once, kept by the service to sign."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; ValueError if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX}")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise ValueError("a webhook secret is whsec_ and base64") from None


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "user-agent": USER_AGENT,
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance: float = TOLERANCE_S,
) -> None:
    """The receiver's check: a signature of ours over this id, timestamp and body, the timestamp
    within `tolerance` of `now`. `headers` is looked up by the spec's lower-case names."""
    try:
        message_id = headers["webhook-id"]
        stamp = headers["webhook-timestamp"]
        given = headers["webhook-signature"]
    except KeyError as missing:
        raise VerifyError(f"missing header {missing}") from None
    if not (stamp.isascii() and stamp.isdigit()):  # not '²': int() refuses it
        raise VerifyError("webhook-timestamp is not a Unix time")
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance:
        raise VerifyError("webhook-timestamp is outside the tolerance")
    expected = signature(secret, message_id, int(stamp), body).encode()
    # Several space-separated signatures may be sent (a secret being rotated): any one of ours does.
    if not any(hmac.compare_digest(expected, one.encode()) for one in given.split()):
        raise VerifyError("no matching signature")


# -- the payload --


def task_links(base_url: str, task_id: str) -> dict[str, str]:
    """Where a run's task, results and changes are read in the API."""
    task = f"{base_url.rstrip('/')}/api/v1/tasks/{task_id}"
    return {"task": task, "results": f"{task}/results", "changes": f"{task}/changes"}


@dataclass(frozen=True, slots=True)
class Summary:
    """What a webhook says of a run that ended: its counts, its changes, where to read more."""

    task_id: str
    status: str
    counts: Mapping[str, int]
    links: Mapping[str, str]
    changes: Mapping[str, int] | None = None  # None: no previous run to compare with
    schedule_id: str | None = None

    @property
    def changed(self) -> bool:
        return self.changes is not None and any(self.changes.get(kind, 0) for kind in CHANGES)

    def wanted(self, on: WebhookOn) -> bool:
        """Whether a webhook that asked for `on` hears of this run."""
        return on is WebhookOn.END or self.changed

    def body(self, at: datetime) -> bytes:
        """The JSON body, in the spec's envelope (`type`, `timestamp`, `data`)."""
        data: dict[str, Any] = {
            "task_id": self.task_id,
            "schedule_id": self.schedule_id,
            "status": self.status,
            "counts": dict(self.counts),
            "changes": None if self.changes is None else dict(self.changes),
            "links": dict(self.links),
        }
        return orjson.dumps({"type": EVENT, "timestamp": at.astimezone(UTC).isoformat(), "data": data})


# -- delivery --


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST: the receiver's status, or why there was none (`error`, as probes type it)."""

    number: int
    at: datetime
    status: int | None = None
    error: ProbeError | None = None
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def final(self) -> bool:
        """Ends the delivery: accepted, or refused for a reason no retry mends."""
        return self.ok or (self.error is not None and self.error.kind in FINAL)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A webhook delivery so far: its id (the `webhook-id`), where it goes, each attempt."""

    id: str
    url: str
    attempts: tuple[Attempt, ...] = ()

    @property
    def delivered(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ok


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retries: waits growing from `first_s` by `factor` up to `max_s` (each drawn in its upper
    half), attempts of at most `timeout_s`, no attempt started after `total_s`."""

    first_s: float = 5.0
    factor: float = 2.0
    max_s: float = 300.0
    total_s: float = 3600.0
    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0

    def waits(self) -> Iterator[float]:
        wait = self.first_s
        while True:
            yield random.uniform(wait / 2, wait)
            wait = min(wait * self.factor, self.max_s)


def refusal(url: str, policy: EgressPolicy) -> ProbeError | None:
    """Why a webhook URL is refused on its face (unparsable, not http(s), an IP literal the policy
    refuses), or None: a host name is checked at the dial, on every address it resolves to."""
    try:
        target = normalise(url)
        host = target.host
        try:
            why = policy.reason(host.strip("[]"))
        except ValueError:  # a name, not an address
            why = None
        if why is not None:
            raise Blocked(f"{BLOCKED_MARK}: {host} is {why}")
    except ProbeFailure as failure:
        return ProbeError(failure.kind, str(failure) or failure.kind.value)
    return None


async def resolved_refusal(url: str, policy: EgressPolicy, timeout_s: float = 5.0) -> ProbeError | None:
    """Why a webhook URL whose host is a name is refused by the addresses it resolves to now, or
    None (an address, a name that does not resolve now, or only allowed addresses)."""
    host = normalise(url).host.strip("[]")
    try:
        policy.reason(host)
        return None  # an address: refusal() judged it
    except ValueError:
        pass
    name = host.rstrip(".").lower()  # the same name (libcurl dials "localhost." as "localhost")
    if name == "localhost" or name.endswith(".localhost"):  # loopback to libcurl, whatever DNS says
        addresses = {"127.0.0.1", "::1"}
    else:
        try:
            async with asyncio.timeout(timeout_s):
                found = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError):
            return None  # told at the delivery, as a DNS failure
        addresses = {str(info[4][0]) for info in found}
    for address in sorted(addresses):
        if (why := policy.reason(address)) is not None:
            return ProbeError(
                ErrorKind.BLOCKED, f"{BLOCKED_MARK}: {host} resolves to {address}, which is {why}"
            )
    return None


OnAttempt = Callable[[Delivery], object]


@dataclass(eq=False)
class Notifier:
    """Webhook deliveries in the background of the running loop, on a transport of their own (a
    dead receiver holds none of the probes' connections or slots)."""

    policy: EgressPolicy
    backoff: Backoff = field(default_factory=Backoff)
    max_active: int = 8  # requests in flight at once; further attempts wait their turn

    def __post_init__(self) -> None:
        from linkprobe.engine.transport import Transport  # needs the running loop

        self._transport = Transport(self.policy, Limits(self.max_active, self.max_active))
        self._slots = asyncio.Semaphore(self.max_active)
        self._running: set[asyncio.Task[Delivery]] = set()

    def submit(
        self, url: str, secret: str, body: bytes, on_attempt: OnAttempt | None = None
    ) -> asyncio.Task[Delivery]:
        """Start a delivery and return at once; `on_attempt` sees the delivery after each attempt."""
        task = asyncio.get_running_loop().create_task(self.deliver(url, secret, body, on_attempt))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def deliver(
        self, url: str, secret: str, body: bytes, on_attempt: OnAttempt | None = None
    ) -> Delivery:
        """Attempt until accepted, refused for good, or `backoff.total_s` is spent. An exception
        from `on_attempt` ends the delivery (the caller's to record, not to lose)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.backoff.total_s
        delivery = Delivery(new_message_id(), url)
        waits = self.backoff.waits()
        while True:
            attempt = await self._attempt(delivery, secret, body, deadline)
            delivery = Delivery(delivery.id, url, (*delivery.attempts, attempt))
            if on_attempt is not None:
                on_attempt(delivery)
            wait = next(waits)
            if attempt.final or loop.time() + wait >= deadline:
                return delivery
            await asyncio.sleep(wait)

    async def _attempt(self, delivery: Delivery, secret: str, body: bytes, deadline: float) -> Attempt:
        number = len(delivery.attempts) + 1
        refused = refusal(delivery.url, self.policy)
        if refused is not None:
            return Attempt(number, datetime.now(UTC), error=refused)
        async with self._slots:
            at = datetime.now(UTC)  # signed once its turn has come, so the timestamp is fresh
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                waited = ProbeError(ErrorKind.TIMEOUT, "the delivery's total time ran out waiting for a turn")
                return Attempt(number, at, error=waited)
            headers = signed_headers(secret, delivery.id, int(at.timestamp()), body)
            lines = [f"{name}: {value}" for name, value in headers.items()]
            lines.append("Expect:")  # no 100-continue round trip before the body
            seconds = min(self.backoff.timeout_s, left)
            connect = min(self.backoff.connect_timeout_s, seconds)
            started = time.perf_counter()
            status, error = await self._post(normalise(delivery.url), lines, body, seconds, connect)
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        return Attempt(number, at, status, error, elapsed)

    async def _post(
        self, target: Target, lines: list[str], body: bytes, seconds: float, connect: float
    ) -> tuple[int | None, ProbeError | None]:
        handle: Handle = self._transport.handle()
        try:
            handle.start(str(target), False, lines, seconds, connect, True, RESPONSE_CAP, None)
            handle.post(body)
            code, message = await self._transport.send(handle)
            if handle.head_done:
                return handle.status, None
            failure = curl_failure(code, message, _attempted(handle, target, connect < seconds))
            return None, ProbeError(failure.kind, str(failure) or failure.kind.value)
        finally:
            self._transport.release(handle)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel the deliveries still running, then close the transport."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        self._transport.close()
