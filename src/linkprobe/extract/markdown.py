"""Markdown: a CommonMark parser (markdown-it-py), never regular expressions.

Links, images and autolinks come from the token stream (lines from each block's map, plus the
line breaks before the token inside its paragraph); reference definitions from the parser's
environment (unused ones too); raw HTML blocks and inline HTML through the HTML extractor.

A document is parsed a section at a time (`sections`: at least SECTION_CHARS, cut only at a
blank line before a line at the margin, never inside a fenced code block or a multi-line HTML
block), after one pass of the block parser alone over every section has gathered the reference
definitions, so a link may use a definition of any section. The whole token stream of a 16 MB
document cost about 70 times its size; a section's tokens are dropped before the next is parsed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from linkprobe.extract.document import Extracted, Link, resolve
from linkprobe.extract.html import extract_html

PARSER = MarkdownIt("commonmark")
BLOCKS = MarkdownIt("commonmark").disable("inline")  # the block parse alone: reference definitions
SECTION_CHARS = 32 * 1024
LINE = re.compile(r"[^\r\n]*(?:\r\n|[\r\n])|[^\r\n]+$")
MARGIN = ("", " ", "\t", "\r", "\n")  # a line starting so may continue the block before it
FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
# HTML blocks a blank line does not end (CommonMark types 1 to 5), and what ends each.
HTML_OPEN = re.compile(r" {0,3}(<(?:script|pre|style|textarea)[\s>]|<!--|<\?|<![A-Za-z]|<!\[CDATA\[)", re.I)
HTML_END = {"<!--": "-->", "<?": "?>", "<![CDATA[": "]]>"}
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


def _html_end(line: str) -> str | None:
    """What closes the multi-line HTML block `line` opens, unless it closes on this line."""
    opened = HTML_OPEN.match(line)
    if opened is None:
        return None
    start = opened.group(1).lower()
    end = HTML_END.get(start) or (">" if start.startswith("<!") else f"</{start[1:].rstrip('> ').strip()}>")
    return None if end in line.lower()[opened.end() :] else end


def sections(text: str) -> Iterator[tuple[int, str]]:
    """(first line, text) of each section of the document, in order, together the whole of it.
    Lines are counted as the parser counts them (`\r\n`, `\r` and `\n` end one)."""
    if len(text) <= SECTION_CHARS:
        yield 0, text
        return
    start = line_of_start = 0
    fence: str | None = None
    html: str | None = None
    blank = False
    for number, match in enumerate(LINE.finditer(text)):
        line = match.group(0)
        at = match.start()
        if (
            blank
            and fence is None
            and html is None
            and at - start >= SECTION_CHARS
            and line[:1] not in MARGIN
        ):
            yield line_of_start, text[start:at]  # a blank line, then a line at the margin
            start, line_of_start = at, number
        blank = not line.strip()
        fence, html = _track(line, fence, html)
    yield line_of_start, text[start:]


def _track(line: str, fence: str | None, html: str | None) -> tuple[str | None, str | None]:
    """The fence and the HTML block still open after `line`."""
    if html is not None:
        return fence, None if html in line.lower() else html
    marker = FENCE.match(line)
    if fence is None:
        return (marker.group(1), None) if marker is not None else (None, _html_end(line))
    if marker is not None and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
        return (None if not line[marker.end() :].strip() else fence), None
    return fence, None


def _references(parts: Iterator[tuple[int, str]]) -> dict[str, Any]:
    """Every reference definition of the document, the first of a label winning, with its lines."""
    found: dict[str, Any] = {}
    for offset, part in parts:
        env: dict[str, Any] = {}
        BLOCKS.parse(part, env)
        for label, reference in env.get("references", {}).items():
            if label not in found:
                where = reference.get("map")
                found[label] = {**reference, "map": [where[0] + offset, where[1] + offset] if where else None}
    return found


def extract_markdown(text: str, base: str | None) -> Extracted:
    found = Extracted()
    references = _references(sections(text))  # sections are cut twice rather than all held
    seen: set[str] = set()
    counts: dict[str, int] = {}
    for offset, part in sections(text):
        _extract_section(
            PARSER.parse(part, {"references": dict(references)}), offset, base, found, seen, counts
        )
    _unused_references({"references": references}, base, found, seen)
    found.links.sort(key=lambda link: link.line)
    return found


def _extract_section(
    tokens: list[Token],
    offset: int,
    base: str | None,
    found: Extracted,
    seen: set[str],
    counts: dict[str, int],
) -> None:
    for index, token in enumerate(tokens):
        if token.map is not None:
            token.map = [token.map[0] + offset, token.map[1] + offset]
        if token.type == "inline":
            _inline_links(token, base, found, seen)
            if index and tokens[index - 1].type == "heading_open":
                _add_heading(token, found, counts)
        elif token.type == "html_block":
            block = extract_html(token.content.encode(), base, token.map[0] if token.map else 0)
            found.links.extend(block.links)
            found.anchors |= block.anchors
