"""Markdown: a CommonMark parser (markdown-it-py), never regular expressions.

Links, images and autolinks come from the token stream (lines from each block's map, plus the
line breaks before the token inside its paragraph); reference definitions from the parser's
environment (unused ones too); raw HTML blocks and inline HTML through the HTML extractor.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from linkprobe.extract.document import Extracted, Link, resolve
from linkprobe.extract.html import extract_html

PARSER = MarkdownIt("commonmark")
BREAKS = frozenset({"softbreak", "hardbreak"})
SLUG_DROP = re.compile(r"[^\w\- ]")


def slug(text: str) -> str:
    """A heading's anchor as GitHub and most renderers make it: lower case, punctuation gone,
    spaces turned into hyphens."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    return SLUG_DROP.sub("", text).replace(" ", "-")


def _inline_links(token: Token, base: str | None, found: Extracted, seen: set[str]) -> None:
    line = (token.map[0] if token.map else 0) + 1
    for child in token.children or ():
        if child.type in BREAKS:
            line += 1
        elif child.type in ("link_open", "image"):
            raw = str(child.attrs.get("href" if child.type == "link_open" else "src", ""))
            seen.add(raw)
            if (url := resolve(base, raw)) is not None:
                found.links.append(Link(url, line))
        elif child.type == "html_inline":
            found.links.extend(extract_html(child.content.encode(), base, line - 1).links)


def _heading_text(token: Token) -> str:
    return "".join(child.content for child in token.children or () if child.type in ("text", "code_inline"))


def _add_heading(token: Token, found: Extracted, counts: dict[str, int]) -> None:
    anchor = slug(_heading_text(token))
    number = counts.get(anchor, 0)
    counts[anchor] = number + 1
    found.anchors.add(anchor if number == 0 else f"{anchor}-{number}")  # duplicates: -1, -2...


def _unused_references(env: dict[str, Any], base: str | None, found: Extracted, seen: set[str]) -> None:
    for reference in env.get("references", {}).values():
        raw = reference["href"]
        if raw not in seen and (url := resolve(base, raw)) is not None:
            found.links.append(Link(url, reference["map"][0] + 1 if reference.get("map") else 1))


def extract_markdown(text: str, base: str | None) -> Extracted:
    found = Extracted()
    env: dict[str, Any] = {}
    tokens = PARSER.parse(text, env)
    seen: set[str] = set()
    counts: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if token.type == "inline":
            _inline_links(token, base, found, seen)
            if index and tokens[index - 1].type == "heading_open":
                _add_heading(token, found, counts)
        elif token.type == "html_block":
            offset = token.map[0] if token.map else 0
            block = extract_html(token.content.encode(), base, offset)
            found.links.extend(block.links)
            found.anchors |= block.anchors
    _unused_references(env, base, found, seen)
    found.links.sort(key=lambda link: link.line)
    return found
