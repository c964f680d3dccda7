"""A run split over processes: by host, every URL once, re-indexed to the whole input."""

from __future__ import annotations

import pickle
import zlib

import pytest

from linkprobe.engine.outcome import BodyState, ErrorKind, Hop, ProbeError, ProbeResult, utcnow
from linkprobe.engine.shards import MIN_SHARE, host_of, processes_for, split


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://Example.COM/a", "example.com"),
        ("https://example.com:8443/a?b#c", "example.com"),
        ("http://user@example.com/", "example.com"),
        ("http://[::1]:80/x", "[::1]"),
        ("http://example.com?q=1", "example.com"),
        ("not a url", ""),
    ],
)
def test_host_of(url: str, host: str) -> None:
    assert host_of(url) == host


def test_every_url_in_exactly_one_share_and_each_host_in_one() -> None:
    urls = [f"http://h{i % 37}.example:{80 + i % 2}/{i}" for i in range(1000)]
    shares = split(urls, 3)
    assert sorted(i for share in shares for i in share) == list(range(1000))
    for share in shares:
        assert share == sorted(share)  # input order within a share
    owner = {host_of(urls[i]): n for n, share in enumerate(shares) for i in share}
    assert all(owner[host_of(url)] == zlib.crc32(host_of(url).encode()) % 3 for url in urls)


def test_a_short_input_is_not_split() -> None:
    assert processes_for(8, 1) == 1
    assert processes_for(8, MIN_SHARE * 2 - 1) == 1
    assert processes_for(2, MIN_SHARE * 100) == 2


def test_a_result_crosses_between_processes_whole() -> None:
    """Every field survives the pickling that carries a child's results to the parent."""
    result = ProbeResult(
        "http://a.example/x", 7, False, "http://b.example/", 503, ProbeError(ErrorKind.TIMEOUT, "slow"),
        (Hop(301, "http://b.example/"),), BodyState.TRUNCATED, 12.5, 1.25, 0.5, 0.75, None, 3.0,
        "text/html", 1024, utcnow(), 2,
    )  # fmt: skip
    assert pickle.loads(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)) == result
