"""One URL against the real loopback target server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from linkprobe import __version__
from linkprobe.engine import Engine, EngineConfig, ErrorKind, ProbeOptions
from linkprobe.engine.outcome import BodyState, Outcome
from tests.conftest import Target

FAST = ProbeOptions(retries=0, timeout=3, connect_timeout=2)


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[Engine]:
    async with Engine(EngineConfig(allow_private=True)) as running:
        yield running


async def test_ok_200_has_status_timings_and_metadata(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/status/200"), 7, FAST)
    assert (result.ok, result.status_code, result.error, result.index) == (True, 200, None, 7)
    assert result.final_url == target.url("/status/200")
    assert result.content_type is not None and result.content_type.startswith("text/plain")
    assert result.content_length == len("status")
    assert result.ttfb_ms is not None and 0 < result.ttfb_ms <= result.elapsed_ms
    assert result.attempts == 1 and result.checked_at.tzinfo is not None


@pytest.mark.parametrize("code", [404, 500])
async def test_error_statuses_are_broken_without_error(engine: Engine, target: Target, code: int) -> None:
    result = await engine.probe(target.url(f"/status/{code}"), 0, FAST)
    assert (result.ok, result.status_code, result.error) == (False, code, None)


async def test_accept_rule_decides_ok(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/status/404"), 0, ProbeOptions(retries=0, accept="200-299,404"))
    assert result.ok


async def test_redirect_chain_is_recorded_hop_by_hop(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/redirect/3"), 0, FAST)
    assert result.ok and result.status_code == 200
    assert [(h.status_code, h.url) for h in result.redirects] == [
        (302, target.url("/redirect/2")),
        (302, target.url("/redirect/1")),
        (302, target.url("/status/200")),
    ]
    assert result.final_url == target.url("/status/200")


async def test_redirect_loop(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/loop/a"), 0, FAST)
    assert result.error is not None and result.error.kind == ErrorKind.REDIRECT_LOOP
    assert [h.url for h in result.redirects] == [target.url("/loop/b"), target.url("/loop/a")]
    assert not result.ok


async def test_too_many_redirects(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/redirect/5"), 0, ProbeOptions(retries=0, max_redirects=3))
    assert result.error is not None and result.error.kind == ErrorKind.TOO_MANY_REDIRECTS
    assert len(result.redirects) == 4


@pytest.mark.parametrize("location", ["file:///etc/passwd", "mailto:a@b.example", "ftp://ftp.example/x"])
async def test_redirect_to_other_scheme_is_unsupported(engine: Engine, target: Target, location: str) -> None:
    result = await engine.probe(target.url(f"/redirect-to?url={location}"), 0, FAST)
    assert result.error is not None and result.error.kind == ErrorKind.UNSUPPORTED
    assert result.outcome == Outcome.UNSUPPORTED and not result.ok
    assert result.status_code == 302 and [h.url for h in result.redirects] == [location]


async def test_trickle_is_cut_at_the_deadline_and_keeps_its_status(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/trickle"), 0, ProbeOptions(retries=0, timeout=1.5))
    assert (result.ok, result.error, result.status_code) == (True, None, 200)  # the server answered
    assert result.body == BodyState.TIMEOUT  # the body never finished
    assert 1400 <= result.elapsed_ms < 5000


async def test_hang_frees_its_slot_at_the_deadline(target: Target) -> None:
    async with Engine(EngineConfig(allow_private=True, concurrency=1, per_host=1)) as one_slot:
        result = await one_slot.probe(target.url("/hang"), 0, ProbeOptions(retries=2, timeout=1))
        assert result.error is not None and result.error.kind == ErrorKind.TIMEOUT
        assert result.attempts == 1  # a total-deadline timeout is not retried
        slots = one_slot.prober.slots
        assert slots.hosts_tracked() == 0 and slots.total.try_acquire()  # the one slot is free again
        slots.total.release()
        after = await asyncio.wait_for(one_slot.probe(target.url("/status/200"), 1, FAST), 30)
    assert after.ok and after.queue_ms == 0  # the next probe on that host did not wait for a slot


async def test_huge_chunked_body_is_truncated_and_keeps_its_status(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/huge"), 0, ProbeOptions(retries=0, max_body_bytes=100_000))
    assert (result.ok, result.error, result.status_code) == (True, None, 200)
    assert result.body == BodyState.TRUNCATED


async def test_gzip_bomb_counts_decoded_bytes(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/gzip-bomb"), 0, FAST)
    assert (result.ok, result.error, result.body) == (True, None, BodyState.TRUNCATED)
    assert result.content_length is not None and result.content_length < 1 << 20  # compressed size fits


async def test_declared_large_file_is_judged_by_status(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/bigfile"), 0, FAST)
    assert result.ok and result.content_length == 4 << 20 and result.body == BodyState.TRUNCATED


async def test_small_body_is_complete(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/status/200"), 0, FAST)
    assert result.body == BodyState.COMPLETE
    head = await engine.probe(target.url("/status/200"), 0, ProbeOptions(retries=0, method="HEAD"))
    assert head.ok and head.body is None


async def test_body_over_cap_with_broken_status_keeps_the_status(engine: Engine, target: Target) -> None:
    options = ProbeOptions(retries=0, max_body_bytes=2)
    result = await engine.probe(target.url("/status/404"), 0, options)
    assert (result.status_code, result.error, result.body) == (404, None, BodyState.TRUNCATED)


async def test_429_retry_after_is_honoured(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url(f"/retry-after/{uuid.uuid4()}"), 0, ProbeOptions(retries=2))
    assert result.ok and result.attempts == 2
    assert result.elapsed_ms >= 900  # waited for Retry-After: 1


async def test_503_is_retried(engine: Engine, target: Target) -> None:
    result = await engine.probe(
        target.url(f"/flaky/{uuid.uuid4()}"), 0, ProbeOptions(retries=1, retry_backoff=0.01)
    )
    assert result.ok and result.attempts == 2


async def test_retries_exhausted_keep_the_last_status(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/status/503"), 0, ProbeOptions(retries=2, retry_backoff=0.01))
    assert (result.ok, result.status_code, result.attempts) == (False, 503, 3)


async def test_head_falls_back_to_get_on_405(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.url("/no-head"), 0, ProbeOptions(method="HEAD", retries=0))
    assert result.ok and result.status_code == 200


async def test_headers_and_user_agent_are_sent(engine: Engine, target: Target) -> None:
    token = str(uuid.uuid4())
    options = ProbeOptions(retries=0, user_agent="probe-test/1", headers={"X-Trace": "abc"})
    result = await engine.probe(target.url(f"/headers/{token}"), 0, options)
    assert result.ok
    assert target.headers[token]["User-Agent"] == "probe-test/1"
    assert target.headers[token]["X-Trace"] == "abc"


async def test_self_signed_tls_is_a_tls_error(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.tls_url("/status/200"), 0, FAST)
    assert result.error is not None and result.error.kind == ErrorKind.TLS


async def test_tls_verification_can_be_disabled(engine: Engine, target: Target) -> None:
    result = await engine.probe(target.tls_url("/status/200"), 0, ProbeOptions(retries=0, verify_tls=False))
    assert result.ok and result.status_code == 200


async def test_closed_port_is_connect_refused(engine: Engine, closed_port: int) -> None:
    result = await engine.probe(f"http://127.0.0.1:{closed_port}/", 0, FAST)
    assert result.error is not None and result.error.kind == ErrorKind.CONNECT_REFUSED


async def test_unresolvable_name_is_dns(engine: Engine) -> None:
    result = await engine.probe("http://no-such-host.invalid/", 0, FAST)
    assert result.error is not None and result.error.kind == ErrorKind.DNS


async def test_malformed_response_is_protocol(engine: Engine, garbage_port: int) -> None:
    result = await engine.probe(f"http://127.0.0.1:{garbage_port}/", 0, FAST)
    assert result.error is not None and result.error.kind == ErrorKind.PROTOCOL


@pytest.mark.parametrize(
    "url", ["", "not a url", "example.com:80/x", "http://user:pw@127.0.0.1/", "http://[zz]/"]
)
async def test_invalid_urls_are_results(engine: Engine, url: str) -> None:
    result = await engine.probe(url, 3, FAST)
    assert result.error is not None and result.error.kind == ErrorKind.INVALID_URL
    assert (result.url, result.index, result.ok) == (url, 3, False)


@pytest.mark.parametrize("url", ["mailto:a@b.c", "tel:+1555", "javascript:void(0)", "file:///etc/passwd"])
async def test_input_urls_of_another_scheme_are_unsupported_results(engine: Engine, url: str) -> None:
    result = await engine.probe(url, 3, FAST)
    assert result.error is not None and result.error.kind == ErrorKind.UNSUPPORTED
    assert result.error.message == f"{url.partition(':')[0]}: links are not checked"
    assert (result.url, result.index, result.status_code) == (url, 3, None)
    assert result.outcome == Outcome.UNSUPPORTED


async def test_result_round_trips_through_dict(engine: Engine, target: Target) -> None:
    from linkprobe.engine import ProbeResult

    result = await engine.probe(target.url("/redirect/2"), 1, FAST)
    assert ProbeResult.from_dict(result.to_dict()) == result


async def test_result_json_is_its_dict_as_json(engine: Engine, target: Target) -> None:
    """to_json() writes the dataclass directly; it must say what to_dict() says, every field set."""
    import orjson

    from linkprobe.engine import ProbeError

    result = await engine.probe(target.url("/redirect/2"), 1, FAST)
    result.error = ProbeError(ErrorKind.TIMEOUT, "late")
    result.dns_ms, result.connect_ms, result.tls_ms = 0.25, 1.5, 3.0
    assert result.redirects and result.body is not None and result.content_type is not None
    assert all(value is not None for value in result.to_dict().values())
    assert result.to_json() == orjson.dumps(result.to_dict()).decode()
    result.checked_at = result.checked_at.replace(microsecond=0)  # isoformat leaves them out
    assert result.to_json() == orjson.dumps(result.to_dict()).decode()


async def test_phase_timings_on_a_new_connection(target: Target) -> None:
    async with Engine(EngineConfig(allow_private=True)) as fresh:  # empty DNS cache and pool
        first = await fresh.probe(f"http://localhost:{target.port}/status/200", 0, FAST)
        again = await fresh.probe(f"http://localhost:{target.port}/status/200", 0, FAST)
    assert first.ok and first.dns_ms is not None and first.connect_ms is not None
    assert again.ok and again.dns_ms is None and again.connect_ms is None  # reused keep-alive connection


async def test_default_user_agent_is_linkprobe(engine: Engine, target: Target) -> None:

    token = str(uuid.uuid4())
    result = await engine.probe(target.url(f"/headers/{token}"), 0, FAST)
    assert result.ok and target.headers[token]["User-Agent"] == f"linkprobe/{__version__}"


async def test_custom_headers_keep_the_default_user_agent(engine: Engine, target: Target) -> None:
    token = uuid.uuid4().hex
    options = ProbeOptions(retries=0, headers={"X-Trace": "abc"})
    result = await engine.probe(target.url(f"/headers/{token}"), 0, options)
    assert result.ok
    assert target.headers[token]["User-Agent"] == f"linkprobe/{__version__}"
    assert target.headers[token]["X-Trace"] == "abc"
