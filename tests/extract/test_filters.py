"""LinkFilter on RE2: what a pattern means, and what it refuses, naming the pattern."""

from __future__ import annotations

import pytest

from linkprobe.engine.errors import ConfigError
from linkprobe.extract import LinkFilter


def test_patterns_keep_their_own_flags_when_searched_together() -> None:
    keep = LinkFilter(include=["(?i)DOCS", "^https://"], exclude=["(?i)PDF$", "Z"])
    assert keep("http://x.example/docs/") and keep("https://a.example/page")
    assert not keep("HTTPS://a.example/page")  # (?i) of the first include is not the second's
    exclude = LinkFilter(exclude=["(?i)PDF$", "Z"])
    assert not exclude("http://x.example/f.pdf") and exclude("http://x.example/zz")  # Z stays case-sensitive


def test_a_quote_stays_in_its_pattern() -> None:
    exclude = LinkFilter(exclude=["\\Qa.b", "\\Qx?\\E"])  # the first \Q runs to the end of its pattern
    assert not exclude("http://x.example/a.b") and exclude("http://x.example/axb")
    assert not exclude("http://x.example/x?y") and exclude("http://x.example/x")


def test_any_url_is_matched_even_one_python_cannot_encode() -> None:
    assert LinkFilter(include=["caf.$"])("http://x.example/caf\udce9")  # a lone surrogate
    assert LinkFilter(include=["caf.$"])("http://x.example/café")


@pytest.mark.parametrize(
    ("include", "message"),
    [
        (["(a)\\1"], "--include '(a)\\\\1' is not supported: invalid escape sequence: \\1 (RE2 syntax"),
        (["ok", "(?=x)y"], "--include '(?=x)y' is not supported: invalid perl operator: (?="),
        (["(?<!x)y"], "--include '(?<!x)y' is not supported"),
        (["a\\Z"], "--include 'a\\\\Z' is not supported: invalid escape sequence: \\Z"),
        (["(unclosed"], "--include '(unclosed' is not a regular expression: missing )"),
        (["a{1001}"], "--include 'a{1001}' is not supported: invalid repetition size"),
    ],
)
def test_refused_patterns_are_named(include: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        LinkFilter(include=include)
    assert message in str(refused.value)
