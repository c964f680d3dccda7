"""Plain text: URLs anywhere, without the punctuation around them; include/exclude filters."""

from __future__ import annotations

import pytest

from linkprobe.engine import ConfigError
from linkprobe.extract import Kind, Link, LinkFilter, extract, probe_target, supported


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
