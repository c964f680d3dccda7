"""HTML: every attribute a person expects to hold a link, with `<base href>` and source lines.

Parser: lxml (libxml2). Measured on a 450 KB page (bench/extract.py): selectolax (lexbor) is
about 2x faster but exposes no source positions; lxml is about 3x faster than the standard
library's html.parser and gives each element's line, which every result's `sources` needs.
"""

from __future__ import annotations

import re
import threading

import lxml.etree

from linkprobe.extract.document import Extracted, Link, resolve

# tag -> attributes holding one URL. srcset (several) and meta refresh are handled apart.
URL_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "a": ("href",), "area": ("href",), "link": ("href",), "img": ("src",), "script": ("src",),
    "iframe": ("src",), "frame": ("src",), "embed": ("src",), "source": ("src",),
    "video": ("src", "poster"), "audio": ("src",), "track": ("src",), "object": ("data",),
    "input": ("src",), "blockquote": ("cite",), "q": ("cite",), "ins": ("cite",), "del": ("cite",),
}  # fmt: skip
SRCSET_TAGS = ("img", "source")
LINK_RELS_SKIPPED = frozenset({"preconnect", "dns-prefetch"})  # name an origin, not a resource
REFRESH_URL = re.compile(r"url\s*=\s*['\"]?([^'\"]+)", re.IGNORECASE)
_local = threading.local()


def _parser() -> lxml.etree.HTMLParser:
    """This thread's parser: lxml releases the GIL while parsing only with a parser per thread.
    The plain etree parser: lxml.html's element classes cost a Python lookup per element."""
    parser: lxml.etree.HTMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = lxml.etree.HTMLParser(no_network=True, huge_tree=False)
    return parser


def parse(data: bytes) -> lxml.etree._Element | None:
    """The document's root element; None when there is nothing to parse."""
    if not data or data.isspace():
        return None
    try:
        return lxml.etree.fromstring(data, parser=_parser())
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError):
        return None


def srcset_urls(value: str) -> list[str]:
    """URLs of a srcset: comma-separated candidates, each a URL and an optional descriptor."""
    return [part.split()[0] for part in value.split(",") if part.strip()]


def _element_urls(element: lxml.etree._Element) -> list[str]:
    tag = element.tag
    if tag == "a":  # most links: one attribute and nothing else to look at
        href = element.get("href")
        return [] if href is None else [href]
    if tag == "link" and LINK_RELS_SKIPPED.intersection((element.get("rel") or "").lower().split()):
        return []
    urls = [value for name in URL_ATTRIBUTES.get(tag, ()) if (value := element.get(name)) is not None]
    if tag in SRCSET_TAGS and (srcset := element.get("srcset")):
        urls.extend(srcset_urls(srcset))
    if tag == "meta" and (element.get("http-equiv") or "").lower() == "refresh":
        match = REFRESH_URL.search(element.get("content") or "")
        if match:
            urls.append(match.group(1))
    return urls


def base_of(root: lxml.etree._Element, base: str | None) -> str | None:
    """The base links resolve against: the first `<base href>`, itself resolved against `base`."""
    for element in root.iter("base"):
        href = element.get("href")
        if href and href.strip():
            return resolve(base, href)
    return base


TAGS = (*URL_ATTRIBUTES, "meta")


def extract_html(data: bytes, base: str | None, line_offset: int = 0, *, anchors: bool = True) -> Extracted:
    """Links and anchors (unless `anchors` is false) of an HTML document (or fragment); lines
    shifted by `line_offset`."""
    found = Extracted()
    root = parse(data)
    if root is None:
        return found
    base = base_of(root, base)
    for element in root.iter(TAGS):
        line = line_of(element) + line_offset
        for raw in _element_urls(element):
            url = resolve(base, raw)
            if url is not None:
                found.links.append(Link(url, line))
    if anchors:
        found.anchors = anchors_of(root)
    return found


def anchors_of(root: lxml.etree._Element) -> set[str]:
    """What a fragment may name: every element id, and the name of an `<a>`."""
    names = {str(element.get("id")) for element in root.iterfind(".//*[@id]")}
    names.update(str(element.get("name")) for element in root.iterfind(".//a[@name]"))
    return names


def line_of(element: lxml.etree._Element) -> int:
    """The element's 1-based source line (1 when the parser did not record one)."""
    line = element.sourceline
    return line if isinstance(line, int) else 1
