from __future__ import annotations

import pytest

from linkprobe.engine.errors import InvalidURL, Unsupported
from linkprobe.engine.urls import normalise, parse_ipv4_host


@pytest.mark.parametrize(
    ("host", "dotted"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"),
        ("8.8.8.8", "8.8.8.8"),
        ("0", "0.0.0.0"),
        ("example.com", None),
        ("1.2.3.com", None),
    ],
)
def test_whatwg_ipv4_hosts(host: str, dotted: str | None) -> None:
    assert parse_ipv4_host(host) == dotted


@pytest.mark.parametrize("host", ["1.2.3.256", "256.1", "09.1.1.1", "1.2.3.4.5"])
def test_bad_numeric_hosts(host: str) -> None:
    with pytest.raises(InvalidURL):
        parse_ipv4_host(host)


def test_normalisation() -> None:
    assert str(normalise("  HTTP://ExAmple.COM:80/a b?q=1#frag ")) == "http://example.com/a%20b?q=1"
    assert str(normalise("https://bücher.de/x")) == "https://xn--bcher-kva.de/x"
    assert str(normalise("/next", base=normalise("http://a.example/b/c"))) == "http://a.example/next"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "example.com",
        "ftp://x/",
        "http://u:p@x.example/",
        "http://exa mple.com/",
        "http:///p",
        "http://x:99999/",
    ],
)
def test_unprobeable_urls(raw: str) -> None:
    with pytest.raises(InvalidURL):
        normalise(raw)


def test_redirect_to_other_scheme_is_unsupported() -> None:
    with pytest.raises(Unsupported):
        normalise("file:///etc/passwd", base=normalise("http://a.example/"))
