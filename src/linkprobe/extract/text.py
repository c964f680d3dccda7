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


def extract_text(text: str, base: str | None) -> Extracted:
    found = Extracted()
    for number, line in enumerate(text.splitlines(), 1):
        for match in URL.finditer(line):
            url = _trim(match.group(0))
            if url:
                found.links.append(Link(url, number))
    return found
