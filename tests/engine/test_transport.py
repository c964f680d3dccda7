"""The transport on the event loop: what it asks of libcurl per transfer."""

from __future__ import annotations

import pytest

from linkprobe.engine import transport as transport_module
from linkprobe.engine.egress import EgressPolicy
from linkprobe.engine.handle import DNS_CACHE_SECONDS, DNS_UNCHECKED, Limits
from linkprobe.engine.transport import Transport
from tests.conftest import Target


async def dns_timeouts(target: Target, transfers: int) -> list[int]:
    """The DNS_CACHE_TIMEOUT each of `transfers` requests in a row ran with."""
    transport = Transport(EgressPolicy(True, ()), Limits(1, 1))
    seen = []
    try:
        for _ in range(transfers):
            handle = transport.handle()
            handle.start(target.url("/status/200"), False, [], 5.0, 5.0, True, 1024, None)
            assert await transport.send(handle) == (0, "")
            seen.append(handle.dns_timeout)
            transport.release(handle)
    finally:
        transport.close()
    return seen


async def test_only_the_first_transfer_of_an_interval_is_set_a_dns_cache_timeout(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libcurl walks its whole DNS cache after each transfer with a cache timeout, so only the first
    transfer of each interval is set one (DNS_CACHE_TIMEOUT, as the handle records it); libcurl's
    pruning itself is not observed here (its resolves happen in C, out of a test's sight)."""
    monkeypatch.setattr(transport_module, "DNS_PRUNE_SECONDS", 3600.0)
    assert await dns_timeouts(target, 3) == [DNS_CACHE_SECONDS, DNS_UNCHECKED, DNS_UNCHECKED]


async def test_a_transfer_after_the_interval_is_set_the_timeout_again(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_module, "DNS_PRUNE_SECONDS", 0.0)
    assert await dns_timeouts(target, 3) == [DNS_CACHE_SECONDS] * 3


@pytest.mark.parametrize("epoll", [True, False], ids=["epoll", "selector"])
async def test_transfers_complete_whatever_watches_their_sockets(
    target: Target, monkeypatch: pytest.MonkeyPatch, epoll: bool
) -> None:
    """libcurl's sockets are watched by epoll where the system has it, by a selector elsewhere
    (macOS: kqueue); both drive concurrent requests to the end of their bodies."""
    import asyncio
    import select

    if not epoll:
        monkeypatch.delattr(select, "epoll", raising=False)
    transport = Transport(EgressPolicy(True, ()), Limits(4, 4))
    try:
        handles = [transport.handle() for _ in range(4)]
        for number, handle in enumerate(handles):
            handle.start(target.url(f"/huge?n={number}"), False, [], 5.0, 5.0, True, 8 << 20, None)
        codes = await asyncio.gather(*(transport.send(handle) for handle in handles))
        assert codes == [(0, "")] * 4
        assert [(h.status, h.read) for h in handles] == [(200, 64 * 65536)] * 4  # 4 MiB: many reads
    finally:
        transport.close()
