from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkprobe.engine.errors import InvalidURL, Unsupported
from linkprobe.engine.urls import count_url_lines, normalise, other_scheme, parse_ipv4_host, url_lines


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
        "example.com:80/x",
        "localhost:8080/",
        "127.0.0.1:80/",
        "/about",
        "#top",
        "http://u:p@x.example/",
        "http://exa mple.com/",
        "http:///p",
        "http://x:99999/",
    ],
)
def test_unprobeable_urls(raw: str) -> None:
    with pytest.raises(InvalidURL):
        normalise(raw)


OTHERS = ["mailto:a@b", " TEL:+1", "javascript:void(0)", "data:,x", "ftp://x/", "file:///etc/passwd"]


def test_other_schemes_as_the_service_sees_them() -> None:
    """What the engine reports `unsupported` without probing: any scheme but http(s), file: too
    (the service reads no disk); not a relative link, nor a host and port written without a scheme."""
    assert [other_scheme(url) for url in OTHERS] == ["mailto", "tel", "javascript", "data", "ftp", "file"]
    kept = ["https://a.example/", "HTTP://a.example/", "/about", "../a.html", "#top", "example.com:80/x",
            "localhost:8080/", "127.0.0.1:80/", ""]  # fmt: skip
    assert [other_scheme(url) for url in kept] == [None] * len(kept)


@pytest.mark.parametrize("raw", [*OTHERS, "ftp://[zz]/"])  # the last one even unparsable
def test_input_of_other_scheme_is_unsupported_with_one_message(raw: str) -> None:
    with pytest.raises(Unsupported) as refused:
        normalise(raw)
    assert str(refused.value) == f"{raw.strip().split(':')[0].lower()}: links are not checked"
    assert other_scheme(raw) is not None  # the intake's rule says the same


def test_redirect_to_other_scheme_is_unsupported() -> None:
    with pytest.raises(Unsupported):
        normalise("file:///etc/passwd", base=normalise("http://a.example/"))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(["http://a/", "#c", " ", "\t", "x#y", "a #b", "\r", "\n", "\r\n", "\u00a0", "é"])
    )
)
def test_counting_url_lines_agrees_with_reading_them(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert count_url_lines(text) == sum(1 for _ in url_lines([text]))
