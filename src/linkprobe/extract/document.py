"""The shared vocabulary of extraction and the dispatch to one module per document kind."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

CHECKED_SCHEMES = frozenset({"http", "https", "file"})


class Kind(StrEnum):
    """What a document is; it decides the parser."""

    HTML = "html"
    MARKDOWN = "markdown"
    SITEMAP = "sitemap"
    TEXT = "text"


@dataclass(slots=True, frozen=True)
class Link:
    """One place a link was found: the URL (resolved against the document's base) and its line."""

    url: str
    line: int  # 1-based line of the element, token or text that holds the link


@dataclass(slots=True)
class Extracted:
    links: list[Link] = field(default_factory=list)
    anchors: set[str] = field(default_factory=set)  # ids, names and heading slugs a fragment may name
    sitemaps: list[str] = field(default_factory=list)  # child sitemaps named by a sitemap index


MAX_PLACES = 10  # places listed per URL; the total is always counted


@dataclass(slots=True)
class Linked:
    """How often one document links one URL, and the lines of the first MAX_PLACES of those links."""

    lines: list[int]
    total: int = 1

    def add(self, line: int) -> None:
        self.total += 1
        if len(self.lines) < MAX_PLACES:
            self.lines.append(line)


@dataclass(slots=True)
class Page:
    """A crawled page's links grouped by URL (in the order each first appears), defragmented
    unless fragments are checked, and its anchors when they are. A site's pages repeat the same
    links (navigation, indexes): grouped, each URL costs the crawler once per page, not per link.
    With fragments kept, a page's places for one document come group by group (`p#a`, then
    `p#b`), not strictly in line order."""

    links: dict[str, Linked] = field(default_factory=dict)
    anchors: set[str] = field(default_factory=set)

    def add(self, url: str, line: int) -> None:
        linked = self.links.get(url)
        if linked is None:
            self.links[url] = Linked([line])
        else:
            linked.add(line)

    def __reduce__(self) -> tuple[Callable[..., Page], tuple[object, ...]]:
        """Pickled as rows of plain values (the crawler parses pages in other processes): a third
        of the time of pickling the Linked objects, measured on the Python docs' pages."""
        rows = [(url, linked.total, linked.lines) for url, linked in self.links.items()]
        return _unpickle_page, (rows, self.anchors)

    @classmethod
    def of(cls, found: Extracted, fragments: bool) -> Page:
        """The links of any document, grouped."""
        page = cls(anchors=found.anchors)
        for link in found.links:
            page.add(link.url if fragments else link.url.partition("#")[0], link.line)
        return page


@dataclass(slots=True)
class Sources:
    """Where one URL was found: up to MAX_PLACES (document, line) pairs, and how often in all."""

    places: list[tuple[str, int]] = field(default_factory=list)
    total: int = 0

    def add(self, document: str, line: int) -> None:
        self.total += 1
        if len(self.places) < MAX_PLACES:
            self.places.append((document, line))

    def merge(self, document: str, linked: Linked) -> None:
        """All the links to this URL on one document at once (as many add() calls)."""
        self.total += linked.total
        room = MAX_PLACES - len(self.places)
        if room > 0:
            self.places.extend((document, line) for line in linked.lines[:room])

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Sources:
        """Sources as to_dict() wrote them (a store's JSON)."""
        return cls([(place["document"], place["line"]) for place in data["places"]], data["total"])

    def to_dict(self) -> dict[str, object]:
        return {"total": self.total, "places": [{"document": d, "line": n} for d, n in self.places]}

    def text(self) -> str:
        shown = ", ".join(f"{document}:{line}" for document, line in self.places)
        more = self.total - len(self.places)
        return f"{shown} (+{more} more)" if more > 0 else shown


def _unpickle_page(rows: list[tuple[str, int, list[int]]], anchors: set[str]) -> Page:
    return Page({url: Linked(lines, total) for url, total, lines in rows}, anchors)


SUFFIXES = {
    ".html": Kind.HTML, ".htm": Kind.HTML, ".xhtml": Kind.HTML, ".shtml": Kind.HTML,
    ".md": Kind.MARKDOWN, ".markdown": Kind.MARKDOWN, ".mdown": Kind.MARKDOWN, ".mkd": Kind.MARKDOWN,
    ".xml": Kind.SITEMAP, ".xml.gz": Kind.SITEMAP,
}  # fmt: skip

CONTENT_TYPES = {
    "text/html": Kind.HTML, "application/xhtml+xml": Kind.HTML,
    "text/markdown": Kind.MARKDOWN, "text/x-markdown": Kind.MARKDOWN,
    "application/xml": Kind.SITEMAP, "text/xml": Kind.SITEMAP, "application/gzip": Kind.SITEMAP,
    "application/x-gzip": Kind.SITEMAP, "text/plain": Kind.TEXT,
}  # fmt: skip


def kind_for_name(name: str) -> Kind | None:
    """The kind a file or URL path names by its extension; None when it names none."""
    lower = urlsplit(name).path.lower() if "://" in name else name.lower()
    for suffix, kind in SUFFIXES.items():
        if lower.endswith(suffix):
            return kind
    return None


def kind_for_content_type(content_type: str | None) -> Kind | None:
    if not content_type:
        return None
    return CONTENT_TYPES.get(content_type.partition(";")[0].strip().lower())


SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")


def resolve(base: str | None, raw: str) -> str | None:
    """`raw` made absolute against `base`; None for an empty reference (the document itself)."""
    raw = raw.strip()
    if not raw:
        return None
    if base is None or (SCHEME.match(raw) and "://" in raw[:40]) or raw.startswith(("mailto:", "tel:")):
        return raw  # already absolute: urljoin is the cost of extraction, skip it when it changes nothing
    # The cache below holds `page.html` once per folder of the site, not once per page and per
    # `#anchor` (an index page names thousands): the fragment is split off (urljoin passes it
    # through as is), and a reference with a path resolves against the base's folder alone.
    head, _, fragment = raw.partition("#")
    if not head:
        return f"{base.partition('#')[0]}#{fragment}" if fragment else base.partition("#")[0]
    joined = _join(base if head[0] in "?;" else _folder(base), head)
    return f"{joined}#{fragment}" if fragment else joined


@lru_cache(maxsize=256)
def _folder(base: str) -> str:
    """`base` up to its path's last '/': all of the base that urljoin uses to resolve a reference
    that has a path (it drops the last segment, the query and the fragment)."""
    try:
        scheme, netloc, path, _, _ = urlsplit(base)
    except ValueError:
        return base
    if "/" not in path:
        return base
    return urlunsplit((scheme, netloc, path[: path.rfind("/") + 1], "", ""))


@lru_cache(maxsize=8192)  # navigation links repeat on every page of a site
def _join(base: str, raw: str) -> str:
    try:
        return urljoin(base, raw)
    except ValueError:  # e.g. a malformed IPv6 literal: kept as written, judged invalid_url later
        return raw


def supported(url: str) -> bool:
    """Whether a link can be checked: http(s) and local files; mailto:, tel:, javascript:... cannot."""
    scheme, sep, _ = url.partition(":")
    return not sep or scheme.lower() in CHECKED_SCHEMES


def probe_target(url: str) -> str:
    """The URL without its fragment: what is fetched (a fragment never reaches the server)."""
    return urldefrag(url).url


def extract(data: bytes, kind: Kind, base: str | None = None, *, anchors: bool = True) -> Extracted:
    """Links and anchors of one document. `base` is the document's own URL (file:// for local files).
    `anchors=False` skips collecting the anchors of HTML (only fragment checks need them)."""
    if kind is Kind.HTML:
        from linkprobe.extract.html import extract_html

        return extract_html(data, base, anchors=anchors)
    if kind is Kind.MARKDOWN:
        from linkprobe.extract.markdown import extract_markdown

        return extract_markdown(data.decode("utf-8", errors="replace"), base)
    if kind is Kind.SITEMAP:
        from linkprobe.extract.sitemap import extract_sitemap

        return extract_sitemap(data, base)
    from linkprobe.extract.text import extract_text

    return extract_text(data.decode("utf-8", errors="replace"), base)
