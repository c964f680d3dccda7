"""The runner: one result per input, bounded concurrency, per-host limits, stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from linkprobe.engine import Engine, EngineConfig, ErrorKind, ProbeOptions
from tests.conftest import Target, wait_for


async def test_one_result_per_input_with_indexes(target: Target) -> None:
    urls = [target.url("/status/200", host=f"127.0.{i % 7}.{1 + i % 50}") for i in range(300)]
    urls += ["nonsense", target.url("/status/404")]
    async with Engine(EngineConfig(allow_private=True)) as engine:
        results = [r async for r in engine.run(urls, ProbeOptions(retries=0, concurrency=32), start_index=10)]
    assert sorted(r.index for r in results) == list(range(10, 10 + len(urls)))
    by_index = {r.index: r for r in results}
    assert all(by_index[10 + i].url == url for i, url in enumerate(urls))
    assert sum(r.ok for r in results) == 300
    assert by_index[10 + 300].error is not None


async def test_async_input_is_consumed_lazily(target: Target) -> None:
    pulled = 0

    async def source() -> AsyncIterator[str]:
        nonlocal pulled
        for _ in range(200):
            pulled += 1
            yield target.url("/status/200")

    async with Engine(EngineConfig(allow_private=True)) as engine:
        stream = engine.run(source(), ProbeOptions(retries=0, concurrency=4))
        first = await anext(stream)
        assert first.ok and pulled < 20  # the window, not the input, bounds what is read ahead
        rest = [r async for r in stream]
    assert len(rest) == 199


async def test_per_host_limit_holds(target: Target) -> None:
    target.peak = 0
    async with Engine(EngineConfig(allow_private=True, per_host=2)) as engine:
        urls = [target.url("/slow?s=0.1")] * 8
        results = [r async for r in engine.run(urls, ProbeOptions(retries=0, concurrency=8))]
    assert all(r.ok for r in results)
    assert target.peak == 2


async def test_run_window_and_global_limit_hold(target: Target) -> None:
    urls = [target.url("/slow?s=0.1", host=f"127.0.0.{i + 1}") for i in range(12)]  # distinct hosts
    for config, options, expected in [
        (EngineConfig(allow_private=True), ProbeOptions(retries=0, concurrency=3), 3),
        (EngineConfig(allow_private=True, concurrency=4), ProbeOptions(retries=0, concurrency=12), 4),
    ]:
        target.peak = 0
        async with Engine(config) as engine:
            assert all([r.ok async for r in engine.run(urls, options)])
        assert target.peak == expected


@pytest.mark.parametrize(("shared", "expected"), [(True, 30), (False, 32)])
async def test_an_engine_of_one_list_runs_it_at_its_whole_concurrency(
    target: Target, shared: bool, expected: int
) -> None:
    """`check` runs one list per engine: no slot is held back for other lanes (serve's tasks)."""
    urls = [target.url("/slow?s=0.5", host=f"127.0.0.{i + 1}") for i in range(40)]  # distinct hosts
    target.peak = 0
    async with Engine(EngineConfig(allow_private=True, concurrency=32), shared=shared) as engine:
        assert all([r.ok async for r in engine.run(urls, ProbeOptions(retries=0, concurrency=32))])
    assert target.peak == expected


async def test_stop_yields_cancelled_for_in_flight_and_unstarted(target: Target) -> None:
    stop = asyncio.Event()
    urls = [target.url("/hang")] * 3 + [target.url("/status/200")] * 50
    async with Engine(EngineConfig(allow_private=True)) as engine:
        stream = engine.run(urls, ProbeOptions(retries=0, timeout=30, concurrency=3), stop=stop)
        asyncio.get_running_loop().call_later(0.3, stop.set)
        results = [r async for r in stream]
    assert len(results) == len(urls)
    assert all(r.error is not None and r.error.kind == ErrorKind.CANCELLED for r in results)


async def test_a_consumer_that_leaves_early_ends_the_probes_in_flight_cleanly(target: Target) -> None:
    """Leaving `engine.run` early cancels what is in flight before the engine closes: no probe is
    left on a closed transport (its handles would be lost and its results turned `internal`)."""
    urls = [target.url("/status/200")] + [
        target.url(f"/slow?s=30&n={n}", host=f"127.0.2.{n + 1}") for n in range(4)
    ]
    async with Engine(EngineConfig(allow_private=True)) as engine:
        async with contextlib.aclosing(engine.run(urls, ProbeOptions(retries=0, timeout=60))) as results:
            async for result in results:
                assert result.ok
                break
        transport = engine._transport
        assert transport is not None and not transport._busy and transport._active == 0
        again = await engine.probe(target.url("/status/200"))
        left = engine.run(urls[1:], ProbeOptions(retries=0, timeout=60))
        started = asyncio.ensure_future(anext(left))
        await wait_for(lambda: bool(transport._busy), "probes in flight")
    # The engine closed under them: their transfers end, no handle is left on the multi handle.
    assert again.ok and not transport._busy
    started.cancel()
