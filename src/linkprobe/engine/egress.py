"""Egress policy: the SSRF guard.

The check runs in the socket factory handed to aiohttp's connector, i.e. on the address that
is actually dialled, after DNS, for every redirect hop and every retry. A resolver-only check
would be bypassed by IP literals (aiohttp skips the resolver for them) and by DNS rebinding.

Python's ipaddress flags (is_private, is_global) miss several ranges, notably the IPv6 forms
that embed an IPv4 address, so the blocked ranges are listed explicitly.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from linkprobe.engine.errors import BLOCKED_MARK

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not dialable in any mode: unspecified, multicast, broadcast.
NEVER_ALLOWED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n) for n in ("0.0.0.0/32", "224.0.0.0/4", "255.255.255.255/32", "::/128", "ff00::/8")
)

# Not globally routable (RFC 6890 and the IANA special-purpose registries).
NON_GLOBAL: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
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
)
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


class EgressBlocked(OSError):
    """Raised by the socket factory; aiohttp wraps it, errors.map_client_error unwraps it."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(errno.EACCES, f"{BLOCKED_MARK}: {address} is {reason}")


def _in_any(ip: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def classify(ip: IPAddress) -> str | None:
    """Why `ip` is not a public destination, or None when it is globally routable unicast."""
    if _in_any(ip, NEVER_ALLOWED):
        return "unspecified, multicast or broadcast"
    if _in_any(ip, NON_GLOBAL):
        return "not globally routable"
    if ip.version == 6 and ip not in GLOBAL_UNICAST_V6:
        return "outside IPv6 global unicast"
    return None


class EgressPolicy:
    """Decides which addresses the engine may connect to."""

    def __init__(self, allow_private: bool = False, allow_cidrs: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        self.allow_cidrs: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(c, strict=False) for c in allow_cidrs
        )
        self.reason = lru_cache(maxsize=65536)(self._reason)

    def _reason(self, address: str) -> str | None:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        if _in_any(ip, NEVER_ALLOWED):
            return "unspecified, multicast or broadcast"
        if self.allow_private or _in_any(ip, self.allow_cidrs):
            return None
        return classify(ip)

    def check_literal(self, host: str) -> str | None:
        """The block reason for an IP-literal host, None for names and allowed addresses."""
        # Normalised IP hosts are dotted quads or contain ':'; a name would make ip_address raise
        # on every request (lru_cache keeps no exceptions), so names skip the parse.
        if ":" not in host and not host[-1:].isdigit():
            return None  # a host name: checked at connect time, after DNS
        try:
            return self.reason(host)
        except ValueError:
            return None

    def socket_factory(self, addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        address = str(sockaddr[0])
        why = self.reason(address)
        if why is not None:
            raise EgressBlocked(address, why)
        return socket.socket(family=family, type=type_, proto=proto)
