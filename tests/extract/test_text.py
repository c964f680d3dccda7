"""Plain text: URLs anywhere, without the punctuation around them; include/exclude filters."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkprobe.engine import ConfigError
from linkprobe.extract import Kind, Link, LinkFilter, extract, probe_target, supported
from tests.conftest import extraction_growth


def test_urls_anywhere_with_their_lines() -> None:
    text = (
        "See https://a.example/x. Also (https://b.example/wiki/Foo_(bar)) and\n"
        "<https://c.example/>, 'https://d.example/q?x=1', mailto:me@e.example.\n"
        "no url here: example.org\n"
    )
    assert extract(text.encode(), Kind.TEXT).links == [
        Link("https://a.example/x", 1),
        Link("https://b.example/wiki/Foo_(bar)", 1),
        Link("https://c.example/", 2),
        Link("https://d.example/q?x=1", 2),
        Link("mailto:me@e.example", 2),
    ]


def test_unsupported_schemes() -> None:
    assert supported("https://a.example/") and supported("file:///tmp/x") and supported("not-a-url")
    assert not any(supported(url) for url in ("mailto:a@b", "tel:+1", "javascript:void(0)", "data:,x"))
    assert probe_target("https://a.example/p#frag") == "https://a.example/p"


def test_include_and_exclude() -> None:
    keep = LinkFilter(exclude=[r"^https://skip\."])
    assert keep("https://a.example/") and not keep("https://skip.example/")
    only = LinkFilter(include=["docs"], exclude=["."])
    assert only("https://docs.example/") and not only("https://other.example/")


def test_a_bad_regular_expression_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--exclude"):
        LinkFilter(exclude=["("])


def _by_lines(text: str) -> list[Link]:
    """The URLs of each line of str.splitlines(), with its number: what extract_text must give."""
    from linkprobe.extract.text import URL, _trim

    found = []
    for number, line in enumerate(text.splitlines(), 1):
        found += [Link(url, number) for match in URL.finditer(line) if (url := _trim(match.group(0)))]
    return found


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["https://a.example/x", " ", "\n", "\r\n", "\r", "\v", "\u2028", "x", "(", ")"]))
)
def test_lines_are_counted_as_splitlines_counts_them(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert extract(text.encode(), Kind.TEXT).links == _by_lines(text)


def test_a_text_of_many_lines_is_read_within_its_memory_bound(tmp_path: Path) -> None:
    """Peak growth of the extraction (the decoded text and the links) under 3x an ASCII document,
    in a child process: a list of its lines cost 5x (and the API's whole bound is 8x)."""
    # Short lines cost the most as line objects (about 50 bytes each): 4 million of them here.
    lines = b"x\n" * 4_000_000 + b"".join(b"see https://example.com/p/%d\n" % i for i in range(20_000))
    path = tmp_path / "big.txt"
    path.write_bytes(lines)
    found, grown = extraction_growth(path, "text")
    assert found == 20_000 and grown <= 3 * len(lines), f"{grown / len(lines):.1f}x"
