"""Sitemaps (sitemaps.org): `<urlset>` and `<sitemapindex>`, plain or gzip-compressed.

Parsed by lxml with entity resolution, DTD loading and network access off: a hostile sitemap
cannot expand entities or make the parser fetch anything. A gzip body is inflated up to a cap.

The XML is fed to a pull parser block by block (inflated as it goes) and each `<url>` or
`<sitemap>` entry is dropped once its `<loc>` is read, so memory does not grow with the tree: a
366 KB gzip that inflates to 64 MiB used to build 1.1 GB of elements. What is kept grows with the
links found.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import lxml.etree

from linkprobe.extract.document import Extracted, Link, resolve
from linkprobe.extract.html import line_of

MAX_INFLATED = 64 << 20  # the protocol allows 50 MB uncompressed; anything larger is cut here
BLOCK = 1 << 20  # bytes of XML fed to the parser at once


def _parser() -> lxml.etree.XMLPullParser:
    return lxml.etree.XMLPullParser(
        events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False,
        huge_tree=False, recover=True,
    )  # fmt: skip


def xml_blocks(data: bytes) -> Iterator[bytes]:
    """The body as XML in blocks: gunzipped as it is read when it starts with the gzip magic, at
    most MAX_INFLATED bytes (a corrupt gzip ends where it breaks)."""
    if not data.startswith(b"\x1f\x8b"):
        for start in range(0, len(data), BLOCK):
            yield data[start : start + BLOCK]
        return
    inflater, pending, left = zlib.decompressobj(16 + zlib.MAX_WBITS), data, MAX_INFLATED
    try:
        while left > 0 and (block := inflater.decompress(pending, min(BLOCK, left))):
            pending, left = inflater.unconsumed_tail, left - len(block)
            yield block
    except zlib.error:
        return


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


class _Locs:
    """The `<loc>` of each entry, from the parser's events; an entry is dropped once read."""

    def __init__(self, base: str | None) -> None:
        self.base = base
        self.found = Extracted()
        self.root: lxml.etree._Element | None = None
        self.is_index = False

    def take(self, events: Iterator[tuple[str, Any]]) -> None:  # ("start" | "end", element)
        for event, element in events:
            if event == "start":
                if self.root is None:
                    self.root, self.is_index = element, _local(element.tag) == "sitemapindex"
                continue
            if _local(element.tag) == "loc" and (element.text or "").strip():
                self._add(element)
            if element.getparent() is self.root and element is not self.root:
                element.clear()  # an entry, read: drop it and the entries before it
                while element.getprevious() is not None:
                    del self.root[0]

    def _add(self, loc: lxml.etree._Element) -> None:
        url = resolve(self.base, loc.text or "")
        if url is not None:
            self.found.links.append(Link(url, line_of(loc)))
            if self.is_index:
                self.found.sitemaps.append(url)


def extract_sitemap(data: bytes, base: str | None) -> Extracted:
    """Every `<loc>`; those of a sitemap index are also listed as child sitemaps."""
    parser, locs = _parser(), _Locs(base)
    try:
        for block in xml_blocks(data):
            parser.feed(block)
            locs.take(parser.read_events())
        parser.close()
        locs.take(parser.read_events())
    except lxml.etree.XMLSyntaxError:
        pass  # not XML (or broken past repair): the links read so far
    return locs.found
