"""The connection pool is bounded: however many hosts a run has, the connections open at once
(idle keep-alive ones included) never pass the pool's bound, twice the engine's concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from linkprobe.engine import Engine, EngineConfig, ProbeOptions
from linkprobe.engine.handle import POOL_PER_SLOT
from tests.conftest import free_port

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Counted:
    port: int
    open: int = 0
    peak: int = 0
    made: int = 0  # connections accepted in all


class KeepAlive(asyncio.Protocol):
    """Answers every request and keeps the connection: only the client decides when it closes."""

    def __init__(self, state: Counted) -> None:
        self.state = state
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.state.open += 1
        self.state.made += 1
        self.state.peak = max(self.state.peak, self.state.open)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.open -= 1

    def data_received(self, data: bytes) -> None:
        self.pending += data
        while b"\r\n\r\n" in self.pending:
            _, _, self.pending = self.pending.partition(b"\r\n\r\n")
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


@pytest.fixture
async def counted() -> AsyncIterator[Counted]:
    state = Counted(free_port())
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: KeepAlive(state), "0.0.0.0", state.port, backlog=1024)
    yield state
    server.close()


CONCURRENCY = 8
CAP = CONCURRENCY * POOL_PER_SLOT


async def test_open_connections_never_pass_the_cap_over_many_hosts(counted: Counted) -> None:
    hosts = [f"127.0.{n // 200}.{n % 200 + 1}" for n in range(400)]  # 25x more hosts than the pool holds
    urls = [f"http://{host}:{counted.port}/{i}" for i in range(2) for host in hosts]
    config = EngineConfig(allow_private=True, concurrency=CONCURRENCY, per_host=2)
    async with Engine(config) as engine:
        results = [r async for r in engine.run(urls, ProbeOptions(retries=0, concurrency=64))]
        assert all(r.ok for r in results) and len(results) == len(urls)
        assert counted.open <= CAP  # idle connections kept after the run: bounded too
    assert 0 < counted.peak <= CAP


@pytest.mark.parametrize(("window", "connections"), [(None, 80), (80, 40)])
async def test_a_run_that_holds_a_hosts_next_url_reuses_its_connection_within_the_bound(
    counted: Counted, window: int | None, connections: int
) -> None:
    """Each of 40 hosts twice, 40 URLs apart, through a pool of 16: in a window of 2 a host's
    connection is gone when it comes round; with the whole list waiting for the engine's slots,
    the slot a host's probe frees goes to that host's next URL, on the same connection."""
    hosts = [f"127.0.9.{n + 1}" for n in range(40)]
    urls = [f"http://{host}:{counted.port}/{i}" for i in range(2) for host in hosts]
    config = EngineConfig(allow_private=True, concurrency=CONCURRENCY, per_host=2)
    async with Engine(config) as engine:
        options = ProbeOptions(retries=0, concurrency=2)
        results = [r async for r in engine.run(urls, options, window=window)]
    assert all(r.ok for r in results) and sorted(r.index for r in results) == list(range(80))
    assert counted.made == connections and counted.peak <= CAP
