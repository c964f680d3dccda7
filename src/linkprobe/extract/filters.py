"""`--include` / `--exclude`: regular expressions on URLs.

They come from users (the CLI, crawl tasks, uploads) and are matched against every link, so they
run on RE2, which matches in time linear in the URL whatever the pattern: `(a+)+$` cannot hang a
worker the way it would with a backtracking engine. RE2 refuses what needs backtracking
(backreferences, lookaround); such a pattern is a ConfigError naming it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from linkprobe.engine.errors import ConfigError

Matcher = Any  # re2's compiled pattern (the package has no type hints)


@cache
def _re2() -> tuple[Any, Any]:
    """RE2 and its options, loaded with the first pattern (3 MiB a check without one need not hold)."""
    import re2

    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported to the user, not logged by RE2
    options.never_capture = True  # only whether a pattern matches counts: no groups to track
    return re2, options


def _refusal(pattern: str, flag: str, exc: Exception) -> ConfigError:
    reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
    try:
        re.compile(pattern)
    except re.error:
        return ConfigError(f"{flag} {pattern!r} is not a regular expression: {reason}")
    return ConfigError(
        f"{flag} {pattern!r} is not supported: {reason} (RE2 syntax: no backreferences or lookaround, "
        "repetitions up to {1000}, \\z for \\Z)"
    )


def _compile(pattern: str, flag: str) -> Matcher:
    re2, options = _re2()
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raise _refusal(pattern, flag, exc) from None


def _matchers(patterns: Sequence[str], flag: str) -> tuple[Matcher, ...]:
    """Each pattern compiled alone (so an error names it), then, for speed, all in one alternation:
    one search per URL instead of one per pattern. Each alone when the alternation cannot be had
    (too large for RE2's memory budget, or a \\Q quote that would swallow the parts after it)."""
    singles = tuple(_compile(pattern, flag) for pattern in patterns)
    if len(singles) < 2 or any("\\Q" in pattern for pattern in patterns):
        return singles
    re2, options = _re2()
    try:
        return (re2.compile("|".join(f"(?:{pattern})" for pattern in patterns), options),)
    except re2.error:
        return singles


def _utf8(url: str) -> bytes:
    return url.encode("utf-8", "surrogatepass")  # re2 searches bytes without mapping offsets back


def _search(matchers: tuple[Matcher, ...], text: bytes) -> bool:
    return any(matcher.search(text) is not None for matcher in matchers)


class LinkFilter:
    """A URL is kept when it matches no exclude and, if any include is given, some include.

    An include also wins over an exclude, so `--exclude . --include example.org` checks only
    example.org.
    """

    def __init__(
        self,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        names: tuple[str, str] = ("--include", "--exclude"),  # as errors name them: flags or fields
    ) -> None:
        self.include = _matchers(include, names[0])
        self.exclude = _matchers(exclude, names[1])

    def included(self, url: str) -> bool:
        return _search(self.include, _utf8(url))

    def __call__(self, url: str) -> bool:
        text = _utf8(url)
        if self.include and _search(self.include, text):
            return True
        if _search(self.exclude, text):
            return False
        return not self.include
