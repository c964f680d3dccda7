"""Webhooks: Standard Webhooks signatures, the summary, and deliveries to a real receiver on loopback."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import pytest
from aiohttp import web
from pydantic import ValidationError

from linkprobe.engine import EgressPolicy, ErrorKind
from linkprobe.webhooks import (
    Backoff,
    Delivery,
    Notifier,
    Summary,
    VerifyError,
    WebhookOn,
    WebhookSpec,
    new_secret,
    refusal,
    resolved_refusal,
    secret_key,
    signature,
    signed_headers,
    task_links,
    verify,
)
from tests.conftest import Canary, free_port, serving, wait_for

LOOPBACK = EgressPolicy(allow_private=True)  # as the tests' probes: the receiver is on loopback
QUICK = Backoff(first_s=0.02, max_s=0.05, total_s=30, timeout_s=5)
NOW = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)


@dataclass
class Receiver:
    """A webhook receiver that verifies every delivery and answers 500 to the first `fail` ones."""

    port: int
    secret: str
    fail: int = 0
    seen: list[tuple[str, bool]] = field(default_factory=list)  # (webhook-id, verified)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(port=free_port(), secret=new_secret())

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify(state.secret, {k.lower(): v for k, v in request.headers.items()}, body)
            verified = True
        except VerifyError:
            verified = False
        state.seen.append((request.headers.get("webhook-id", ""), verified))
        state.bodies.append(body)
        if len(state.seen) <= state.fail:
            return web.Response(status=500)
        return web.Response(status=204 if verified else 401)

    async with serving(hook, state.port, "127.0.0.1", "POST"):
        yield state


@pytest.fixture
async def notifier() -> AsyncIterator[Notifier]:
    async with Notifier(LOOPBACK, QUICK) as running:
        yield running


def summary(changes: dict[str, int] | None = None) -> Summary:
    return Summary("t1", "done", {"total": 3, "ok": 2, "broken": 1}, task_links("http://lp/", "t1"), changes)


# -- signing --


def test_signature_matches_the_specs_reference_vector() -> None:
    """The Standard Webhooks specification's published test vector: matching it is what lets a
    receiver verify our deliveries with any of the spec's libraries."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signed = signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signed == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_new_secrets_are_whsec_and_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(secret_key(first)) == 32
    assert base64.b64encode(secret_key(first)).decode() == first.removeprefix("whsec_")


@pytest.mark.parametrize("bad", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!"])
def test_a_secret_that_is_not_whsec_base64_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="whsec_"):
        secret_key(bad)


def test_verify_accepts_a_signed_delivery_and_any_one_of_several_signatures() -> None:
    secret, body = new_secret(), b'{"a": 1}'
    headers = signed_headers(secret, "msg_1", 1_700_000_000, body)
    verify(secret, headers, body, now=1_700_000_100)
    rotated = {**headers, "webhook-signature": f"v1,b3RoZXI= {headers['webhook-signature']}"}
    verify(secret, rotated, body, now=1_700_000_100)


@dataclass
class Signed:
    """A delivery as a receiver gets it, to be spoiled one way per case."""

    secret: str
    headers: dict[str, str]
    body: bytes = b'{"a": 1}'
    now: float = 1_700_000_000


def signed() -> Signed:
    secret = new_secret()
    return Signed(secret, signed_headers(secret, "msg_1", 1_700_000_000, b'{"a": 1}'))


SPOILED: dict[str, tuple[Callable[[Signed], object], str]] = {
    "body": (lambda d: setattr(d, "body", b'{"a": 2}'), "no matching signature"),
    "secret": (lambda d: setattr(d, "secret", new_secret()), "no matching signature"),
    "id": (lambda d: d.headers.update({"webhook-id": "msg_2"}), "no matching signature"),
    "late": (lambda d: setattr(d, "now", d.now + 301), "outside the tolerance"),
    "early": (lambda d: setattr(d, "now", d.now - 301), "outside the tolerance"),
    "timestamp": (lambda d: d.headers.update({"webhook-timestamp": "soon"}), "not a Unix time"),
    "superscript": (lambda d: d.headers.update({"webhook-timestamp": "17²"}), "not a Unix time"),
    "unsigned": (lambda d: d.headers.pop("webhook-signature"), "missing header"),
}


@pytest.mark.parametrize("case", SPOILED)
def test_verify_refuses_what_was_not_signed_so(case: str) -> None:
    spoil, why = SPOILED[case]
    delivery = signed()
    verify(delivery.secret, delivery.headers, delivery.body, now=delivery.now)  # unspoiled, it verifies
    spoil(delivery)
    with pytest.raises(VerifyError, match=why):
        verify(delivery.secret, delivery.headers, delivery.body, now=delivery.now)


# -- the summary and the body model --


def test_the_summary_body_is_the_specs_envelope_with_counts_changes_and_links() -> None:
    body = orjson.loads(summary({"broke": 1, "fixed": 0}).body(NOW))
    assert body["type"] == "task.ended"
    assert body["timestamp"] == "2026-12-07T22:00:00+00:00"
    assert body["data"]["counts"] == {"total": 3, "ok": 2, "broken": 1}
    assert body["data"]["changes"] == {"broke": 1, "fixed": 0}
    assert body["data"]["links"]["changes"] == "http://lp/api/v1/tasks/t1/changes"


def test_on_changes_hears_only_of_runs_where_something_changed() -> None:
    assert summary({"broke": 0, "new": 2}).wanted(WebhookOn.CHANGES)
    assert not summary({"broke": 0, "fixed": 0}).wanted(WebhookOn.CHANGES)
    assert not summary(None).wanted(WebhookOn.CHANGES)  # a first run has nothing to compare with
    assert summary(None).wanted(WebhookOn.END)


def test_webhook_spec_normalises_its_url_and_defaults_to_every_end() -> None:
    spec = WebhookSpec.model_validate({"url": " https://Hooks.Example.COM/x "})
    assert spec.url == "https://hooks.example.com/x" and spec.on is WebhookOn.END


@pytest.mark.parametrize(
    ("body", "where", "says"),
    [
        ({"url": "ftp://example.com/"}, "url", "not a webhook URL"),
        ({"url": "example.com/hook"}, "url", "not a webhook URL"),
        ({"url": "https://example.com/", "on": "sometimes"}, "on", "'end' or 'changes'"),
        ({"url": "https://example.com/", "secret": "x"}, "secret", "Extra inputs"),
    ],
)
def test_webhook_spec_errors_name_the_field_and_why(body: dict[str, str], where: str, says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        WebhookSpec.model_validate(body)
    error = raised.value.errors()[0]
    assert error["loc"] == (where,) and says in error["msg"]


# -- delivery --


async def test_a_delivery_reaches_the_receiver_signed_and_verifies(
    receiver: Receiver, notifier: Notifier
) -> None:
    body = summary().body(NOW)
    delivery = await notifier.submit(receiver.url, receiver.secret, body)
    assert delivery.delivered and [a.status for a in delivery.attempts] == [204]
    assert receiver.seen == [(delivery.id, True)] and receiver.bodies == [body]


async def test_failed_attempts_are_retried_with_the_same_id_and_each_outcome_recorded(
    receiver: Receiver, notifier: Notifier
) -> None:
    receiver.fail = 2
    seen: list[Delivery] = []
    delivery = await notifier.submit(receiver.url, receiver.secret, b"{}", seen.append)
    assert [a.status for a in delivery.attempts] == [500, 500, 204]
    assert [a.number for a in delivery.attempts] == [1, 2, 3] and delivery.delivered
    assert [len(d.attempts) for d in seen] == [1, 2, 3]  # told after each attempt
    assert {webhook_id for webhook_id, _ in receiver.seen} == {delivery.id}
    assert all(verified for _, verified in receiver.seen)


async def test_a_dead_receiver_is_retried_only_within_the_total_time_and_never_blocks_the_caller() -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens
    async with Notifier(LOOPBACK, Backoff(first_s=0.05, max_s=0.1, total_s=2.0, timeout_s=1)) as notifier:
        started = datetime.now(UTC)
        task = notifier.submit(dead, new_secret(), b"{}")
        assert not task.done()  # submit returned before any attempt ended
        await wait_for(task.done, "the delivery to give up")
        delivery = task.result()
        assert not delivery.delivered and len(delivery.attempts) > 1
        kinds = {a.error.kind for a in delivery.attempts if a.error}
        # refused; the last attempt may be cut short by the total time instead (a slow machine)
        assert ErrorKind.CONNECT_REFUSED in kinds and kinds <= {ErrorKind.CONNECT_REFUSED, ErrorKind.TIMEOUT}
        assert all((a.at - started).total_seconds() < 2.0 for a in delivery.attempts)


async def test_a_hanging_delivery_is_cancelled_by_aclose(receiver: Receiver) -> None:
    notifier = Notifier(LOOPBACK, QUICK)
    receiver.fail = 1_000_000
    task = notifier.submit(receiver.url, receiver.secret, b"{}")
    await wait_for(lambda: len(receiver.seen) >= 2, "a retry")
    await notifier.aclose()
    assert task.cancelled()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "2130706433"])
async def test_a_webhook_to_a_private_address_is_refused_under_the_default_policy_without_a_connection(
    canary: Canary, host: str
) -> None:
    url = f"http://{host}:{canary.port}/hook"
    async with Notifier(EgressPolicy(), QUICK) as notifier:
        delivery = await notifier.submit(url, new_secret(), b"{}")
    assert [a.error.kind if a.error else None for a in delivery.attempts] == [ErrorKind.BLOCKED]
    error = delivery.attempts[0].error
    assert error is not None and error.message.startswith("blocked by egress policy")
    assert canary.connections == 0


async def test_the_same_webhook_reaches_loopback_when_the_policy_allows_private_addresses(
    canary: Canary,
) -> None:
    async with Notifier(LOOPBACK, QUICK) as notifier:
        delivery = await notifier.submit(f"http://localhost:{canary.port}/hook", new_secret(), b"{}")
    assert delivery.delivered and canary.connections == 1


def test_refusal_names_a_private_ip_literal_and_leaves_names_to_the_dial() -> None:
    blocked = refusal("http://10.0.0.1/hook", EgressPolicy())
    assert blocked is not None and blocked.kind is ErrorKind.BLOCKED and "10.0.0.1" in blocked.message
    assert refusal("http://10.0.0.1/hook", EgressPolicy(allow_private=True)) is None
    assert refusal("https://hooks.example.com/x", EgressPolicy()) is None
    unsupported = refusal("mailto:a@example.com", EgressPolicy())
    assert unsupported is not None and unsupported.kind is ErrorKind.UNSUPPORTED


async def test_at_most_max_active_deliveries_are_in_flight() -> None:
    gate = asyncio.Event()
    active = peak = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await gate.wait()
        active -= 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with Notifier(LOOPBACK, QUICK, max_active=2) as notifier:
            tasks = [notifier.submit(f"http://127.0.0.1:{port}/slow", new_secret(), b"{}") for _ in range(5)]
            await wait_for(lambda: active == 2, "two deliveries in flight")
            gate.set()
            deliveries = await asyncio.gather(*tasks)
        assert all(d.delivered for d in deliveries) and peak == 2
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("url", "kind"), [("mailto:ops@example.com", ErrorKind.UNSUPPORTED), ("http://", ErrorKind.INVALID_URL)]
)
async def test_a_webhook_url_that_cannot_be_requested_ends_at_its_first_attempt(
    notifier: Notifier, url: str, kind: ErrorKind
) -> None:
    delivery = await notifier.submit(url, new_secret(), b"{}")
    assert [a.error.kind if a.error else None for a in delivery.attempts] == [kind]


async def test_a_name_is_refused_by_the_addresses_it_resolves_to_now() -> None:
    name = socket.gethostname()  # resolved by the system (/etc/hosts here), not a special name
    address = socket.gethostbyname(name)
    refused = await resolved_refusal(f"http://{name}/hook", EgressPolicy())
    if EgressPolicy().reason(address) is None:  # a machine whose name is public: nothing to refuse
        assert refused is None
    else:
        assert refused is not None and refused.kind is ErrorKind.BLOCKED
        assert f"{name} resolves to {address}" in refused.message
    allowed = EgressPolicy(allow_cidrs=[f"{address}/32"])
    assert await resolved_refusal(f"http://{name}/hook", allowed) is None
    assert await resolved_refusal("http://no-such-name.invalid/", EgressPolicy()) is None  # told at the dial
