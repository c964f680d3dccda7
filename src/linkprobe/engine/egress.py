"""Egress policy: the SSRF guard.

The check runs in libcurl's OPENSOCKETFUNCTION (engine/handle.py), i.e. on the address that is
actually dialled, after DNS, for every redirect hop, retry and address family. A resolver-only
check would be bypassed by IP literals (no resolution) and by DNS rebinding.

Python's ipaddress flags (is_private, is_global) miss several ranges, notably the IPv6 forms
that embed an IPv4 address, so the blocked ranges are listed explicitly.
"""

from __future__ import annotations

import ipaddress
from _socket import AF_INET, AF_INET6, inet_pton  # not socket.py: its enums cost a one-URL check 0.4 MiB
from bisect import bisect_right
from collections.abc import Iterable
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Not dialable in any mode: unspecified, multicast, broadcast.
NEVER_ALLOWED = ("0.0.0.0/32", "224.0.0.0/4", "255.255.255.255/32", "::/128", "ff00::/8")

# Not globally routable (RFC 6890 and the IANA special-purpose registries).
NON_GLOBAL = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",
    "100.64.0.0/10",  # CGNAT
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
    "172.16.0.0/12",
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # TEST-NET-1
    "192.88.99.0/24",  # 6to4 relay anycast
    "192.168.0.0/16",
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # TEST-NET-2
    "203.0.113.0/24",  # TEST-NET-3
    "240.0.0.0/4",  # reserved
    "::1/128",
    "::/96",  # IPv4-compatible (deprecated)
    "::ffff:0:0/96",  # IPv4-mapped
    "64:ff9b::/96",  # NAT64
    "64:ff9b:1::/48",  # local-use NAT64
    "100::/64",  # discard-only
    "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) included
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4
    "fc00::/7",  # unique-local
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated)
)

# Everything in IPv6 outside 2000::/3 is unallocated or special: not a public destination.
OUTSIDE_GLOBAL_UNICAST_V6 = ("::/3", "4000::/2", "8000::/1")


class Ranges:
    """CIDR blocks as sorted, disjoint integer intervals per IP version.

    Membership is one bisection on integers: the first connection to every host runs this,
    and a scan over ipaddress network objects cost several times the rest of the dial.
    """

    def __init__(self, cidrs: Iterable[str]) -> None:
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            spans[net.version].append((int(net.network_address), int(net.broadcast_address)))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, found in spans.items():
            merged = _merge(sorted(found))
            self._starts[version] = [lo for lo, _ in merged]
            self._ends[version] = [hi for _, hi in merged]

    def contains(self, version: int, value: int) -> bool:
        i = bisect_right(self._starts[version], value) - 1
        return i >= 0 and value <= self._ends[version][i]


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


_NEVER = Ranges(NEVER_ALLOWED)
_NON_GLOBAL = Ranges(NON_GLOBAL)
_OUTSIDE_V6 = Ranges(OUTSIDE_GLOBAL_UNICAST_V6)


def numeric(address: str) -> tuple[int, int]:
    """(version, integer value) of a numeric address as a socket reports it; ValueError otherwise.

    inet_pton accepts canonical forms only (no `127.1`, no octal): socket addresses and the
    engine's normalised hosts are canonical, anything else is not an address here.
    """
    text = address.split("%", 1)[0]  # drop an IPv6 zone id
    for version, family in ((4, AF_INET), (6, AF_INET6)):
        try:
            return version, int.from_bytes(inet_pton(family, text))
        except OSError:
            continue
    raise ValueError(f"not a numeric IP address: {address!r}")


NEVER_REASON = "unspecified, multicast or broadcast"


def _classify(version: int, value: int) -> str | None:
    if _NEVER.contains(version, value):
        return NEVER_REASON
    if _NON_GLOBAL.contains(version, value):
        return "not globally routable"
    if version == 6 and _OUTSIDE_V6.contains(6, value):
        return "outside IPv6 global unicast"
    return None


def classify(ip: IPAddress) -> str | None:
    """Why `ip` is not a public destination, or None when it is globally routable unicast."""
    return _classify(ip.version, int(ip))


class EgressPolicy:
    """Decides which addresses the engine may connect to."""

    def __init__(self, allow_private: bool = False, allow_cidrs: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        self.allow_cidrs = Ranges(allow_cidrs)
        self.reason = lru_cache(maxsize=65536)(self._reason)

    def _reason(self, address: str) -> str | None:
        version, value = numeric(address)
        why = _classify(version, value)
        if why is None or why == NEVER_REASON:  # never-dialable stays refused whatever is allowed
            return why
        return None if self.allow_private or self.allow_cidrs.contains(version, value) else why
