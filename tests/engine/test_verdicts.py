"""Verdicts follow what the server said: encodings, odd Locations, credentials, timings, kinds."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from linkprobe.engine import Engine, EngineConfig, ErrorKind, OptionError, ProbeOptions
from linkprobe.engine.outcome import BodyState
from tests.conftest import Handler, Target

FAST = ProbeOptions(retries=0, timeout=5, connect_timeout=2)
CODINGS = ["gzip", "deflate", "br", "zstd"]


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[Engine]:
    async with Engine(EngineConfig(allow_private=True)) as running:
        yield running


@pytest.mark.parametrize("coding", CODINGS)
async def test_every_content_encoding_is_decoded(engine: Engine, target: Target, coding: str) -> None:
    result = await engine.probe(target.url(f"/encoded/{coding}"), 0, FAST)
    assert (result.ok, result.error, result.body) == (True, None, BodyState.COMPLETE)


async def test_an_unknown_encoding_keeps_its_verdict_and_says_the_body_was_not_read(
    engine: Engine, target: Target
) -> None:
    result = await engine.probe(target.url("/encoded/x-unknown"), 0, FAST)
    assert (result.ok, result.error, result.status_code) == (True, None, 200)
    assert result.body == BodyState.UNDECODABLE


def test_only_what_is_decoded_is_advertised() -> None:
    from linkprobe.engine.decode import ACCEPTED, MAKERS

    assert {c.strip() for c in ACCEPTED.split(",")} <= set(MAKERS)
    assert set(CODINGS) <= {c.strip() for c in ACCEPTED.split(",")}


@pytest.mark.parametrize("coding", [*CODINGS, "x-unknown"])
async def test_head_never_fails_on_an_encoding(engine: Engine, target: Target, coding: str) -> None:
    options = ProbeOptions(retries=0, method="HEAD")
    result = await engine.probe(target.url(f"/encoded/{coding}"), 0, options)
    assert (result.ok, result.error, result.status_code, result.body) == (True, None, 200, None)


async def test_big_gzip_page_is_ok_with_its_body_truncated(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/big-gzip-page"), 0, FAST)  # 3.4 MB decoded, cap 1 MiB
    assert (result.ok, result.error, result.body) == (True, None, BodyState.TRUNCATED)


@pytest.mark.parametrize("to", ["", "   ", "#top"])
async def test_empty_location_is_a_loop(engine: Engine, target: Target, to: str) -> None:
    result = await engine.probe(target.url(f"/location?to={to}"), 0, FAST)
    assert result.error is not None and result.error.kind == ErrorKind.REDIRECT_LOOP
    assert (result.status_code, not result.ok) == (302, True)


async def test_self_pointing_location_is_a_loop(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/self"), 0, FAST)
    assert result.error is not None and result.error.kind == ErrorKind.REDIRECT_LOOP
    assert [h.url for h in result.redirects] == [target.url("/self")]


CREDENTIALS = {"Authorization": "Bearer s3cret", "Cookie": "sid=1", "Proxy-Authorization": "Basic eA=="}


async def test_credentials_are_dropped_when_a_redirect_leaves_the_origin(
    engine: Engine, target: Target
) -> None:
    token = uuid.uuid4().hex
    away = target.url(f"/headers/{token}", host="127.0.0.2")  # another host, same server
    options = ProbeOptions(retries=0, headers={**CREDENTIALS, "X-Trace": "kept"})
    result = await engine.probe(target.url(f"/redirect-to?url={away}"), 0, options)
    assert result.ok and result.final_url == away
    seen = target.headers[token]
    assert not set(CREDENTIALS) & set(seen) and seen["X-Trace"] == "kept"


async def test_credentials_follow_a_redirect_within_the_origin(engine: Engine, target: Target) -> None:
    token = uuid.uuid4().hex
    options = ProbeOptions(retries=0, headers=CREDENTIALS)
    result = await engine.probe(target.url(f"/redirect-to?url=/headers/{token}"), 0, options)
    assert result.ok
    assert {name: target.headers[token][name] for name in CREDENTIALS} == CREDENTIALS


@pytest.mark.parametrize("field", ["user_agent", "header"])
@pytest.mark.parametrize("bad", ["a\r\nX-Injected: 1", "a\nb", "a\0b", "a\x7fb"])
def test_control_characters_in_header_values_are_refused(field: str, bad: str) -> None:
    with pytest.raises(OptionError, match="control characters"):
        ProbeOptions(user_agent=bad) if field == "user_agent" else ProbeOptions(headers={"X-A": bad})


def test_tab_in_a_header_value_is_allowed() -> None:
    assert ProbeOptions(user_agent="a\tb", headers={"X-A": "1\t2"}).user_agent == "a\tb"


async def test_queue_wait_is_recorded_apart_and_checked_at_is_the_answer(target: Target) -> None:
    async with Engine(EngineConfig(allow_private=True, per_host=1)) as one_at_a_time:
        urls = [target.url("/slow?s=0.3")] * 3
        results = sorted([r async for r in one_at_a_time.run(urls, FAST)], key=lambda r: r.queue_ms)
    assert all(r.ok for r in results)
    assert results[0].queue_ms == 0 < results[1].queue_ms < results[2].queue_ms  # waited for the one slot
    # One slot: each answer comes at least one server sleep (0.3 s) after the previous one. All three
    # results were created at the same moment, so a checked_at taken then would not be spread so.
    gaps = [(b.checked_at - a.checked_at).total_seconds() for a, b in itertools.pairwise(results)]
    assert all(gap >= 0.3 for gap in gaps), gaps


async def test_tls_handshake_is_timed_apart_from_connect(target: Target) -> None:
    async with Engine(EngineConfig(allow_private=True)) as fresh:  # no pooled connection
        result = await fresh.probe(
            target.tls_url("/status/200"), 0, ProbeOptions(retries=0, verify_tls=False)
        )
    assert result.ok and result.tls_ms is not None and result.tls_ms > 0
    assert result.connect_ms is not None and result.connect_ms >= 0


async def test_plain_http_has_no_tls_time(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/status/200", host="127.0.0.9"), 0, FAST)
    assert result.ok and result.tls_ms is None


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1 << 16)  # takes the TLS ClientHello, never answers it
    await asyncio.sleep(30)


async def test_stalled_tls_handshake_is_tls_and_not_retried(
    engine: Engine, raw_server: Callable[[Handler], Awaitable[int]]
) -> None:
    port = await raw_server(_silent)
    options = ProbeOptions(retries=2, timeout=10, connect_timeout=0.5, retry_backoff=0)
    result = await engine.probe(f"https://127.0.0.1:{port}/", 0, options)
    assert result.error is not None and result.error.kind == ErrorKind.TLS, result.error
    assert "handshake" in result.error.message and result.attempts == 1


async def test_refusal_by_the_allowed_address_beats_blocked(closed_port: int) -> None:
    # localhost resolves to 127.0.0.1 (blocked here) and ::1 (allowed, nothing listens)
    async with Engine(EngineConfig(allow_cidrs=("::1/128",))) as partly:
        result = await partly.probe(f"http://localhost:{closed_port}/", 0, FAST)
    assert result.error is not None and result.error.kind == ErrorKind.CONNECT_REFUSED, result.error
    assert "blocked" in result.error.message  # the blocked address is still named


async def test_all_addresses_blocked_is_blocked(closed_port: int) -> None:
    async with Engine(EngineConfig()) as guarded:
        result = await guarded.probe(f"http://localhost:{closed_port}/", 0, FAST)
    assert result.error is not None and result.error.kind == ErrorKind.BLOCKED


def test_a_refused_header_never_shows_its_value_in_the_error() -> None:
    """An option error is logged (a worker's chunk) and shown (the CLI): header values are secrets."""
    with pytest.raises(OptionError) as refused:
        ProbeOptions.of({"headers": {"Authorization": "Bearer tok-9f2e\n", "Cookie": "c=tok-77ab"}})
    assert "Authorization" in str(refused.value) and "control characters" in str(refused.value)
    assert "tok-9f2e" not in str(refused.value) and "tok-77ab" not in str(refused.value)
    assert "tok-" not in repr(refused.value)


async def test_redirects_to_one_host_wait_for_its_slot_without_spending_their_deadline(
    target: Target,
) -> None:
    """Six hosts redirect to one slow host allowed one request at a time: each hop waits for that
    host's slot (queue_ms), not inside libcurl against its timeout, and the host sees one at a time."""
    slow = target.url("/slow?s=0.3", host="127.0.0.99")
    urls = [target.url(f"/redirect-to?url={slow}&n={n}", host=f"127.0.0.{n + 10}") for n in range(6)]
    target.peak = 0
    async with Engine(EngineConfig(allow_private=True, per_host=1)) as engine:
        results = [r async for r in engine.run(urls, ProbeOptions(retries=0, timeout=1.0))]
    assert all(r.ok for r in results), [r.error for r in results]
    assert max(r.queue_ms for r in results) >= 1000  # the last waited for five others
    assert target.peak == 1


async def test_a_hang_on_a_reused_connection_is_a_timeout_not_a_connect_timeout(target: Target) -> None:
    """A keep-alive connection has no connect phase of its own: a server that then never answers
    is a deadline `timeout` (not retried), not a `connect_timeout` retried as if it never answered
    the TCP handshake."""
    options = ProbeOptions(timeout=1, connect_timeout=0.5, retries=2, retry_backoff=0)
    async with Engine(EngineConfig(allow_private=True, per_host=1)) as engine:
        warm = await engine.probe(target.url("/status/200"), 0, options)
        hung = await engine.probe(target.url("/hang"), 1, options)
    assert warm.ok and hung.error is not None
    assert (hung.error.kind, hung.attempts) == (ErrorKind.TIMEOUT, 1), hung.error
