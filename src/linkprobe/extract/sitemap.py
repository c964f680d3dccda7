"""Sitemaps (sitemaps.org): `<urlset>` and `<sitemapindex>`, plain or gzip-compressed.

Parsed by lxml with entity resolution, DTD loading and network access off: a hostile sitemap
cannot expand entities or make the parser fetch anything. A gzip body is inflated up to a cap.
"""

from __future__ import annotations

import zlib

import lxml.etree

from linkprobe.extract.document import Extracted, Link, resolve
from linkprobe.extract.html import line_of

MAX_INFLATED = 64 << 20  # the protocol allows 50 MB uncompressed; anything larger is cut here
PARSER = lxml.etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=True
)


def inflate(data: bytes) -> bytes:
    """The body as XML: gunzipped when it starts with the gzip magic, at most MAX_INFLATED bytes."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        return inflater.decompress(data, MAX_INFLATED)
    except zlib.error:
        return b""


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def extract_sitemap(data: bytes, base: str | None) -> Extracted:
    """Every `<loc>`; those of a sitemap index are also listed as child sitemaps."""
    found = Extracted()
    xml = inflate(data)
    if not xml.strip():
        return found
    try:
        root = lxml.etree.fromstring(xml, parser=PARSER)
    except lxml.etree.XMLSyntaxError:
        return found
    if root is None:
        return found
    is_index = _local(root.tag) == "sitemapindex"
    for element in root.iter():
        if _local(element.tag) != "loc" or not (element.text or "").strip():
            continue
        url = resolve(base, element.text or "")
        if url is not None:
            found.links.append(Link(url, line_of(element)))
            if is_index:
                found.sitemaps.append(url)
    return found
