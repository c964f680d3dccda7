"""Plain text: URLs found anywhere in it, with their lines."""

from __future__ import annotations

import re

from linkprobe.extract.document import Extracted, Link

# A URL runs to whitespace, quotes or angle brackets; trailing sentence punctuation is not part of it.
URL = re.compile(r"""\b(?:https?://|mailto:|file://)[^\s<>"'`]+""", re.IGNORECASE)
TRAILING = ".,;:!?'\""
PAIRS = {")": "(", "]": "[", "}": "{"}


def _trim(url: str) -> str:
    while url:
        last = url[-1]
        if last in TRAILING or (last in PAIRS and url.count(PAIRS[last]) < url.count(last)):
            url = url[:-1]
        else:
            break
    return url


# What str.splitlines() ends a line at (with "\r\n" one break); a URL holds none of them.
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def _breaks(text: str, start: int, end: int) -> int:
    """Line breaks in text[start:end], counted in place (no list of lines, no list of breaks)."""
    count = sum(text.count(mark, start, end) for mark in LINE_BREAKS)
    return count - text.count("\r\n", start, end)


def extract_text(text: str, base: str | None) -> Extracted:
    """Each URL with its line, counted between matches: memory for the links found, not a list
    of every line (short lines cost some 25 times their size as line objects)."""
    found = Extracted()
    number, counted = 1, 0
    for match in URL.finditer(text):
        number += _breaks(text, counted, match.start())
        counted = match.start()
        url = _trim(match.group(0))
        if url:
            found.links.append(Link(url, number))
    return found
