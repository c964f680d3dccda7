"""SSRF guard: every vector against a canary that must see zero connections."""

from __future__ import annotations

import ipaddress
import random
import socket
from collections.abc import AsyncIterator
from typing import NamedTuple

import pycurl
import pytest

from linkprobe.engine import EgressPolicy, Engine, EngineConfig, ErrorKind, ProbeOptions
from linkprobe.engine.egress import NEVER_ALLOWED, NON_GLOBAL, classify, numeric
from linkprobe.engine.handle import Handle
from tests.conftest import Canary, Target

OPTIONS = ProbeOptions(retries=0, timeout=3)


class CurlSockAddr(NamedTuple):
    """The address libcurl hands OPENSOCKETFUNCTION."""

    family: int
    socktype: int
    protocol: int
    addr: tuple[str, int]


@pytest.fixture
async def guarded() -> AsyncIterator[Engine]:
    async with Engine() as running:  # the default policy
        yield running


def vectors(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",
        f"http://2130706433:{port}/",
        f"http://0x7f.1:{port}/",
        f"http://0x7f000001:{port}/",
        f"http://0177.0.0.1:{port}/",
        f"http://127.1:{port}/",
        f"http://127.0.0.1.:{port}/",
        f"http://１２７.０.０.１:{port}/",  # noqa: RUF001 (fullwidth digits are the attack)
        f"http://127.9.8.7:{port}/",
        f"http://localhost:{port}/",
        f"http://LOCALHOST:{port}/",
        f"http://[::1]:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://[0:0:0:0:0:ffff:7f00:1]:{port}/",
        f"http://0.0.0.0:{port}/",
        f"http://0:{port}/",
        f"http://[::]:{port}/",
    ]


async def test_no_vector_reaches_the_canary(guarded: Engine, canary: Canary) -> None:
    urls = vectors(canary.port)
    results = [r async for r in guarded.run(urls, OPTIONS)]
    assert len(results) == len(urls)
    for result in results:
        assert result.error is not None and result.error.kind == ErrorKind.BLOCKED, result
    assert canary.connections == 0


async def test_redirect_hops_are_checked(canary: Canary, target: Target) -> None:
    # The target is allowed explicitly; the hop to the canary (other loopback address) is not.
    async with Engine(EngineConfig(allow_cidrs=("127.0.0.1/32",))) as engine:
        to_canary = target.url(f"/redirect-to?url=http://127.0.0.2:{canary.port}/")
        to_metadata = target.url("/redirect-to?url=http://169.254.169.254/latest/meta-data/")
        results = [await engine.probe(u, 0, OPTIONS) for u in (to_canary, to_metadata)]
    for result in results:
        assert result.error is not None and result.error.kind == ErrorKind.BLOCKED
        assert result.status_code == 302 and len(result.redirects) == 1
    assert canary.connections == 0


async def test_allow_private_reaches_loopback(canary: Canary) -> None:
    async with Engine(EngineConfig(allow_private=True)) as engine:
        result = await engine.probe(f"http://127.0.0.1:{canary.port}/", 0, OPTIONS)
    assert result.ok and canary.connections == 1


async def test_allow_list_is_narrow(canary: Canary) -> None:
    async with Engine(EngineConfig(allow_cidrs=("127.0.0.5/32",))) as engine:
        allowed = await engine.probe(f"http://127.0.0.5:{canary.port}/", 0, OPTIONS)
        refused = await engine.probe(f"http://127.0.0.6:{canary.port}/", 0, OPTIONS)
    assert allowed.ok
    assert refused.error is not None and refused.error.kind == ErrorKind.BLOCKED
    assert canary.connections == 1


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "240.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:8.8.8.8",
        "64:ff9b::a00:1",
        "2002:7f00:1::",
        "2001:0:4136:e378::1",
        "2001:db8::1",
        "::127.0.0.1",
        "fec0::1",
        "100::1",
    ],
)
def test_non_global_addresses_are_classified(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "2a00:1450::1"]
)
def test_global_addresses_pass(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None


def test_the_dialled_address_is_checked_where_libcurl_opens_its_socket() -> None:
    """What a rebinding DNS answer looks like at dial time: a name resolved to a private address.
    The handle's OPENSOCKETFUNCTION refuses it (SOCKET_BAD, the reason kept) and opens the rest."""
    handle = Handle(EgressPolicy(), None)
    tcp = (socket.AF_INET, socket.SOCK_STREAM, 6)
    assert handle._open_socket(0, CurlSockAddr(*tcp, ("10.0.0.1", 80))) == pycurl.SOCKET_BAD
    assert handle.blocked == ["10.0.0.1 is not globally routable"] and handle.dialled == 0
    made = handle._open_socket(0, CurlSockAddr(*tcp, ("8.8.8.8", 80)))
    assert made.fileno() >= 0 and made.family == socket.AF_INET and handle.dialled == 1  # a socket, open
    handle.close_made()
    assert made.fileno() == -1


def test_allow_private_still_refuses_multicast_and_unspecified() -> None:
    policy = EgressPolicy(allow_private=True)
    assert policy.reason("224.0.0.1") is not None and policy.reason("0.0.0.0") is not None
    assert policy.reason("10.0.0.1") is None


def _listed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, cidrs: tuple[str, ...]) -> bool:
    return any(ip in ipaddress.ip_network(c) for c in cidrs if ipaddress.ip_network(c).version == ip.version)


def test_interval_lookup_agrees_with_the_cidr_lists() -> None:
    # Random addresses plus every block's edges: the bisection must answer as a plain scan would.
    rng = random.Random(7)
    samples: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
    samples = [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(3000)]
    samples += [ipaddress.IPv6Address(rng.getrandbits(128)) for _ in range(3000)]
    for cidr in NON_GLOBAL + NEVER_ALLOWED:
        net = ipaddress.ip_network(cidr)
        first, last, size = int(net.network_address), int(net.broadcast_address), 2**net.max_prefixlen
        kind = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
        samples += [kind(edge % size) for edge in (first - 1, first, last, last + 1)]
    for ip in samples:
        expected = _listed(ip, NEVER_ALLOWED + NON_GLOBAL) or (
            ip.version == 6 and ip not in ipaddress.ip_network("2000::/3")
        )
        assert (classify(ip) is not None) == expected, ip


@pytest.mark.parametrize("text", ["127.1", "0177.0.0.1", "1.2.3.04", "example.com", ""])
def test_only_canonical_numeric_addresses_are_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        numeric(text)
    assert numeric("fe80::1%eth0") == (6, int(ipaddress.IPv6Address("fe80::1")))
