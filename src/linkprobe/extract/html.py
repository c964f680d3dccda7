"""HTML: every attribute a person expects to hold a link, with `<base href>` and source lines.

Parser: lxml (libxml2). Measured on a 450 KB page (bench/extract.py): selectolax (lexbor) is
about 2x faster but exposes no source positions; lxml is about 3x faster than the standard
library's html.parser and gives each element's line, which every result's `sources` needs.

A whole tree costs 13 to 30 times the document (26 MB of the Python docs: +350 MB), so a
document above STREAM_ABOVE is fed to a pull parser in blocks: after each block, its links and
anchors are taken and every finished element is dropped; only the open elements stay. Measured
(bench/extract.py, same run): the same CPU time (0.9-1.5x, noisy) and +50-80 MB, about twice
the document: libxml2's push parser keeps every byte fed in its input buffer, growing by
doubling. Smaller documents, most crawled pages among them, keep the whole-tree parse with a
parser per thread, the path measured for the crawler's threads.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import lxml.etree

from linkprobe.extract.document import MAX_PLACES, Extracted, Link, Linked, Page, resolve

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
STREAM_ABOVE = 4 << 20  # bytes; smaller documents are parsed whole (at most ~120 MB of tree)
BLOCK = 256 << 10  # bytes fed to the pull parser at once


def _parser() -> lxml.etree.HTMLParser:
    """This thread's parser: lxml releases the GIL while parsing only with a parser per thread.
    The plain etree parser: lxml.html's element classes cost a Python lookup per element."""
    parser: lxml.etree.HTMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = lxml.etree.HTMLParser(no_network=True, huge_tree=False, collect_ids=False)
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
    if len(data) > STREAM_ABOVE:
        return _Stream(base, line_offset, anchors).run(data)
    found = Extracted()
    root = parse(data)
    if root is None:
        return found
    base = base_of(root, base)
    for element, raw in _raws(root):
        url = resolve(base, raw)
        if url is not None:
            found.links.append(Link(url, line_of(element) + line_offset))
    if anchors:
        found.anchors = anchors_of(root)
    return found


def _raws(root: lxml.etree._Element) -> Iterator[tuple[lxml.etree._Element, str]]:
    """Every link of the tree as written, with its element, in document order."""
    for element in root.iter(TAGS):
        if element.tag == "a":  # most links: one attribute and nothing else to look at
            href = element.get("href")
            if href is not None:
                yield element, href
            continue
        for raw in _element_urls(element):
            yield element, raw


def page_links(data: bytes, base: str, *, fragments: bool) -> Page:
    """A crawled page's links grouped by URL (Page), as Page.of(extract_html(...)) groups them,
    with each link resolved once per page and its fragment kept only when `fragments` are
    checked: measured on the Python docs (175,000 links, 31,000 per page and URL), half the
    CPU of extracting every link and counting it in the crawler."""
    if len(data) > STREAM_ABOVE:
        return Page.of(extract_html(data, base, anchors=fragments), fragments)
    page = Page()
    root = parse(data)
    if root is None:
        return page
    base = base_of(root, base) or base
    targets: dict[str, str] = {}  # a link's part before `#` -> its URL without the fragment
    links = page.links
    for element, raw in _raws(root):
        written = raw.strip()
        if not written:
            continue  # href="": the document itself, as extract_html skips it
        if fragments:
            url = resolve(base, written) or written
        else:
            head = written.partition("#")[0]
            target = targets.get(head)
            if target is None:
                target = targets[head] = _target(base, written)
            url = target
        linked = links.get(url)
        if linked is None:
            links[url] = Linked([line_of(element)])
            continue
        linked.total += 1  # Linked.add, with the line read only when it is kept
        if len(linked.lines) < MAX_PLACES:
            linked.lines.append(line_of(element))
    if fragments:
        page.anchors = anchors_of(root)
    return page


def _target(base: str, written: str) -> str:
    """A link's URL without its fragment, resolved as extract_html resolves it (whitespace inside
    the link, before its `#`, is kept): the same for every link with the same part before `#`."""
    return (resolve(base, written) or written).partition("#")[0]


def anchors_of(root: lxml.etree._Element) -> set[str]:
    """What a fragment may name: every element id, and the name of an `<a>`."""
    names = {str(element.get("id")) for element in root.iterfind(".//*[@id]")}
    names.update(str(element.get("name")) for element in root.iterfind(".//a[@name]"))
    return names


def line_of(element: lxml.etree._Element) -> int:
    """The element's 1-based source line (1 when the parser did not record one)."""
    line = element.sourceline
    return line if isinstance(line, int) else 1


def _pull_parser() -> lxml.etree.HTMLPullParser:
    """This thread's pull parser (as _parser): its one event is the root element, `html`, which
    libxml2 opens even when the document does not."""
    parser: lxml.etree.HTMLPullParser | None = getattr(_local, "pull", None)
    if parser is None:
        parser = _local.pull = lxml.etree.HTMLPullParser(
            events=("start",), tag="html", no_network=True, huge_tree=False, collect_ids=False
        )
    return parser


class _Stream:
    """One document fed in blocks, with the links, base and anchors extract_html gives.

    After each block, every element in the tree not yet read is read, then each element's
    finished children are deleted: libxml2 only appends to the open elements, which are the
    ancestors of the last element, so those ancestors (`kept`) are all that stays. Links found
    before the first `<base href>` stay as written until it is known (it may come late)."""

    def __init__(self, base: str | None, line_offset: int, anchors: bool) -> None:
        self.base, self.line_offset, self.anchors = base, line_offset, anchors
        self.found = Extracted()
        self.based = False  # the first <base href> was seen: self.base is final
        self.raw_from = 0  # found.links[raw_from:] are as written, not yet resolved
        self.kept: list[lxml.etree._Element] = []  # open elements, already read

    def run(self, data: bytes) -> Extracted:
        parser = _pull_parser()
        root: lxml.etree._Element | None = None
        try:
            for start in range(0, len(data), BLOCK):
                parser.feed(data[start : start + BLOCK])
                root = root if root is not None else _root_of(parser)
                if root is not None:
                    self._read(root)
        finally:
            root = self._close(parser, root)
        if root is not None:
            self._read(root)
        self._resolve(self.base)
        return self.found

    @staticmethod
    def _close(
        parser: lxml.etree.HTMLPullParser, root: lxml.etree._Element | None
    ) -> lxml.etree._Element | None:
        """The root, once the parser has read its last bytes (always closed: it is reused)."""
        try:
            closed: lxml.etree._Element = parser.close()
        except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError):
            return root
        return closed

    def _read(self, root: lxml.etree._Element) -> None:
        """The links and anchors of the elements parsed since the last block; then those that
        are finished are dropped."""
        self._take(root)
        if self.anchors:
            self.found.anchors.update(anchors_of(root))
        self.kept = _drop_finished(root)

    def _take(self, root: lxml.etree._Element) -> None:
        """The links of the elements not read yet (its own frame: no element outlives it)."""
        kept = {id(element) for element in self.kept}
        links, line_offset = self.found.links, self.line_offset
        for element in root.iter(STREAM_TAGS):
            if id(element) in kept:
                continue
            if element.tag == "base":
                self._base(element)
                continue
            line = line_of(element) + line_offset
            for raw in _element_urls(element):
                url = resolve(self.base, raw) if self.based else (raw if raw.strip() else None)
                if url is not None:
                    links.append(Link(url, line))

    def _base(self, element: lxml.etree._Element) -> None:
        href = element.get("href")
        if not self.based and href and href.strip():
            self._resolve(resolve(self.base, href))
            self.based = True

    def _resolve(self, base: str | None) -> None:
        """The links kept as written, resolved against `base` (now known)."""
        links = self.found.links
        for index in range(self.raw_from, len(links)):
            link = links[index]
            links[index] = Link(resolve(base, link.url) or link.url, link.line)
        self.raw_from, self.base = len(links), base


STREAM_TAGS = (*TAGS, "base")


def _root_of(parser: lxml.etree.HTMLPullParser) -> lxml.etree._Element | None:
    """The root element, once its start is parsed (the parser's only event)."""
    for _, element in parser.read_events():
        return element if isinstance(element, lxml.etree._Element) else None
    return None


def _drop_finished(root: lxml.etree._Element) -> list[lxml.etree._Element]:
    """Deletes every child but the last of `root` and of each last descendant: all finished
    (libxml2 appends only to open elements, all on that path). The path is returned."""
    path, node = [root], root
    while len(node):
        if len(node) > 1:
            del node[:-1]
        node = node[-1]
        path.append(node)
    return path
