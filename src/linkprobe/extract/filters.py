"""`--include` / `--exclude`: regular expressions on URLs."""

from __future__ import annotations

import re
from collections.abc import Sequence

from linkprobe.engine.errors import ConfigError


def _compile(patterns: Sequence[str], flag: str) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ConfigError(f"{flag} {pattern!r} is not a regular expression: {exc}") from None
    return tuple(compiled)


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
        self.include = _compile(include, names[0])
        self.exclude = _compile(exclude, names[1])

    def included(self, url: str) -> bool:
        return any(pattern.search(url) for pattern in self.include)

    def __call__(self, url: str) -> bool:
        if self.include and self.included(url):
            return True
        if any(pattern.search(url) for pattern in self.exclude):
            return False
        return not self.include
