from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkprobe.engine.errors import InvalidURL, ProbeFailure, Unsupported
from linkprobe.engine.urls import (
    Target,
    _parsed,
    _plain,
    count_url_lines,
    normalise,
    other_scheme,
    parse_ipv4_host,
    url_lines,
)


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
        "http://[::1]@",  # yarl itself fails on it with an IndexError
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


# URL pieces where yarl's canonical form differs from the text as written: case, default and odd
# ports, percent-escapes (of unreserved characters too), dot segments, empty queries, fragments,
# spaces and non-ASCII, IPv6 and numeric IPv4 hosts, IDNA names.
URL_HEADS = ["http://", "https://", "HTTP://", "hTtps://"]
URL_HOSTS = ["a.example", "A.example", "127.0.0.1", "127.1", "[::1]", "[::FFFF:7f00:1]", "bücher.de",
             "xn--bcher-kva.de", "a_b.example", "a.example.", "localhost"]  # fmt: skip
URL_PORTS = ["", ":80", ":443", ":8080", ":080", ":65535", ":65536", ":0", ":"]
URL_PIECES = ["/", "a", "Z", "~", "-", ".", "..", "/./", "/../", "%41", "%2f", "%2F", "%20", "%zz", "%",
              "?", "??", "&", "=", ";", "+", ":", "@", "!", "$", "'", "(", "*", ",", " ", "#", "#f",
              "é", "\u00a0", "[", "]", "|", "^", "`", "{", '"', "\\", "\t"]  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(URL_HEADS),
    st.sampled_from(URL_HOSTS),
    st.sampled_from(URL_PORTS),
    st.lists(st.sampled_from(URL_PIECES), max_size=8),
)
def test_urls_written_canonically_are_taken_as_yarl_would_make_them(
    head: str, host: str, port: str, pieces: list[str]
) -> None:
    """The shortcut past yarl (a URL already canonical) gives what yarl gives, or leaves it to yarl."""
    text = head + host + port + "".join(pieces)
    try:
        expected: Target | ProbeFailure = normalise_with_yarl(text)
    except ProbeFailure as failure:
        expected = failure
    plain = _plain(text)
    if plain is not None:
        assert plain == expected
        # a redirect's Location written in full: what yarl's join makes of it is the same
        assert normalise_with_yarl(text, normalise("https://q.example/a/b?c=1")) == plain
    taken = normalise(text) if not isinstance(expected, ProbeFailure) else expected
    assert taken == expected


def normalise_with_yarl(text: str, base: Target | None = None) -> Target:
    url = _parsed(text.strip(), base)
    assert url.port is not None and url.raw_host is not None
    return Target(url.scheme, url.raw_host, url.port, str(url))


@pytest.mark.parametrize(
    ("raw", "canonical", "host", "port"),
    [
        ("http://a.example", "http://a.example", "a.example", 80),
        ("http://a.example:80/x", "http://a.example/x", "a.example", 80),
        ("https://a.example:8443/x?y=1&z", "https://a.example:8443/x?y=1&z", "a.example", 8443),
        ("http://a.example/%7euser/%41%2f?q=%41", "http://a.example/~user/A%2F?q=A", "a.example", 80),
        ("http://a.example/a/./b/../c", "http://a.example/a/c", "a.example", 80),
        ("http://a.example/x?", "http://a.example/x", "a.example", 80),
        ("http://[::1]:8080/", "http://[::1]:8080/", "::1", 8080),
        ("http://0x7f.1/", "http://127.0.0.1/", "127.0.0.1", 80),
        ("https://Bücher.DE/ä", "https://xn--bcher-kva.de/%C3%A4", "xn--bcher-kva.de", 443),
    ],
)
def test_canonical_forms(raw: str, canonical: str, host: str, port: int) -> None:
    assert normalise(raw) == Target(canonical.split(":", maxsplit=1)[0], host, port, canonical)
