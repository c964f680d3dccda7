"""HTML extraction: every attribute that holds a link, <base href>, lines, anchors."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from urllib.parse import urljoin

import pytest

from linkprobe.extract import Kind, Link, Linked, Page, Sources, extract, html
from linkprobe.extract.document import MAX_PLACES
from linkprobe.extract.html import _parser, extract_html, page_links

PAGE = b"""<!doctype html>
<html><head>
<base href="https://docs.example/guide/">
<link rel="stylesheet" href="style.css">
<link rel="preconnect" href="https://fonts.example">
<script src="/app.js"></script>
<meta http-equiv="refresh" content="5; URL='moved.html'">
</head><body>
<a href="intro.html#start">intro</a> <a name="legacy"></a>
<img src="logo.png" srcset="logo-1x.png 1x,
  logo-2x.png 2x" alt="">
<picture><source srcset="wide.webp 800w, narrow.webp 400w" media="(min-width: 800px)"></picture>
<video src="clip.mp4" poster="poster.jpg"><track src="subs.vtt"></video>
<iframe src="https://embed.example/frame"></iframe>
<map><area href="region.html"></map>
<object data="doc.pdf"></object>
<blockquote cite="https://quote.example/">q</blockquote>
<!-- <a href="commented-out.html">no</a> -->
<a href="">self</a> <a href="   ">blank</a>
<a href="mailto:team@example.org">mail</a> <a href="javascript:void(0)">js</a>
<h2 id="usage">Usage</h2>
</body></html>
"""


def urls(page: bytes, base: str | None = None) -> list[str]:
    return [link.url for link in extract(page, Kind.HTML, base).links]


def test_every_link_attribute_is_found_and_resolved_against_base_href() -> None:
    assert urls(PAGE, "file:///site/page.html") == [
        "https://docs.example/guide/style.css",
        "https://docs.example/app.js",
        "https://docs.example/guide/moved.html",
        "https://docs.example/guide/intro.html#start",
        "https://docs.example/guide/logo.png",
        "https://docs.example/guide/logo-1x.png",
        "https://docs.example/guide/logo-2x.png",
        "https://docs.example/guide/wide.webp",
        "https://docs.example/guide/narrow.webp",
        "https://docs.example/guide/clip.mp4",
        "https://docs.example/guide/poster.jpg",
        "https://docs.example/guide/subs.vtt",
        "https://embed.example/frame",
        "https://docs.example/guide/region.html",
        "https://docs.example/guide/doc.pdf",
        "https://quote.example/",
        "mailto:team@example.org",
        "javascript:void(0)",
    ]


def test_links_carry_the_line_of_their_element() -> None:
    links = extract(PAGE, Kind.HTML, "https://x.example/").links
    by_url = {link.url: link.line for link in links}
    assert by_url["https://docs.example/guide/style.css"] == 4
    assert by_url["https://docs.example/guide/intro.html#start"] == 9
    assert by_url["https://docs.example/guide/logo-2x.png"] == 11  # libxml2: where the start tag ends
    assert by_url["mailto:team@example.org"] == 20


def test_relative_base_href_resolves_against_the_page() -> None:
    page = b'<base href="sub/"><a href="x.html">x</a>'
    assert urls(page, "https://site.example/docs/index.html") == ["https://site.example/docs/sub/x.html"]


def test_without_base_the_page_url_is_the_base() -> None:
    assert urls(b'<p><a href="../up.html">u</a>', "https://s.example/a/b/c.html") == [
        "https://s.example/a/up.html"
    ]


def test_anchors_are_ids_and_a_names() -> None:
    assert extract(PAGE, Kind.HTML).anchors == {"legacy", "usage"}


def test_anchors_are_left_out_when_not_asked_for() -> None:
    found = extract(PAGE, Kind.HTML, anchors=False)
    assert found.anchors == set()
    assert [link.url for link in found.links] == urls(PAGE)


def test_links_with_fragments_resolve_as_urljoin_resolves_them() -> None:
    raws = ["#", "#top", "a.html#b#c", "?q#f", "../x.html#", "sub/y.html#%20z"]
    page = "".join(f'<a href="{raw}">x</a>' for raw in raws).encode()
    for base in ("https://s.example/d/p.html?v=1", "https://s.example/d/p.html#here", "file:///site/p.html"):
        assert urls(page, base) == [urljoin(base, raw) for raw in raws]


def test_relative_paths_resolve_against_the_folder_of_the_base_as_urljoin_resolves_them() -> None:
    raws = ["x.html", "../x.html", "./", "..", "g;x?y#s", "?q", ";p", "/abs", "//h/p", "http:rel", "a//b"]
    page = "".join(f'<a href="{raw}">x</a>' for raw in raws).encode()
    bases = ["http://a/b/c/d;p?q", "http://a", "http://a?q", "http://a/b//c/./d.html?x=1#f", "file:///"]
    for base in bases:
        assert urls(page, base) == [urljoin(base, raw) for raw in raws], base


def test_threads_parse_with_their_own_parser_and_find_the_same_links() -> None:
    """lxml lets go of the GIL only for a parser per thread (the crawler parses pages in threads)."""
    pages = [PAGE.replace(b"intro.html", f"intro-{n}.html".encode()) for n in range(8)]
    together = Barrier(4)  # four tasks in four threads at once

    def parser_of_this_thread(_: int) -> int:
        together.wait(timeout=10)
        return id(_parser())

    with ThreadPoolExecutor(4) as pool:
        parsers = set(pool.map(parser_of_this_thread, range(4)))
        threaded = list(pool.map(lambda page: urls(page, "https://s.example/"), pages))
    assert _parser() is _parser()
    assert len(parsers) == 4 and id(_parser()) not in parsers
    assert threaded == [urls(page, "https://s.example/") for page in pages]


def test_empty_and_broken_markup_give_no_error() -> None:
    assert extract(b"", Kind.HTML).links == []
    assert urls(b"<a href='x.html'<p><img src=y.png>>>", "https://s.example/") == [
        "https://s.example/x.html",
        "https://s.example/y.png",
    ]


def test_declared_charset_is_honoured() -> None:
    page = '<meta charset="iso-8859-1"><a href="/caf\u00e9.html">c</a>'.encode("latin-1")
    assert extract(page, Kind.HTML, "https://s.example/").links == [
        Link("https://s.example/caf\u00e9.html", 1)
    ]


LATE_BASE = (  # the links before the first <base href> resolve against it too
    b'<!-- first --><head><link rel=icon href="a.png">\n'
    + b'<link rel=stylesheet href="s.css"><script src="/app.js"></script>\n' * 300
    + b'<base href="https://late.example/dir/"><base href="https://second.example/">\n'
    + b'</head><body><a href="  ">blank</a><a href="z.html">z</a><span id="end"></span>\n'
    + b'<div id="d"><p><a name="n" href="#top">t</a> <img srcset="s1.png 1x, s2.png 2x"></p>\n' * 300
)


@pytest.mark.parametrize("block", [7, 100, 4096])
@pytest.mark.parametrize("page", [PAGE, LATE_BASE], ids=["page", "late-base"])
def test_a_document_read_in_blocks_gives_what_the_whole_tree_gives(
    monkeypatch: pytest.MonkeyPatch, page: bytes, block: int
) -> None:
    """Above STREAM_ABOVE a document is fed in blocks, its finished elements dropped: the same
    links (a `<base href>` found late still resolves the links before it), lines and anchors."""
    whole = extract_html(page, "https://s.example/a/", 3)
    monkeypatch.setattr(html, "STREAM_ABOVE", 0)
    monkeypatch.setattr(html, "BLOCK", block)
    streamed = extract_html(page, "https://s.example/a/", 3)
    assert streamed.links == whole.links and streamed.anchors == whole.anchors
    assert len(whole.links) > 10 and len(whole.anchors) > 1
    if page is LATE_BASE:
        assert whole.links[0] == Link("https://late.example/dir/a.png", 4)
        assert whole.links[-1].url == "https://late.example/dir/s2.png"
    assert extract_html(b"", None).links == extract_html(b"   ", None).links == []


# A child extracts links from a large generated page (one line per section: lines past the first
# blocks fed are checked too) and reports the rise of its peak RSS (VmHWM, reset by clear_refs
# once the page is built) during extraction, as tests/engine/test_hostile.py does.
LARGE_PAGE_CHILD = """
import json, sys
from linkprobe.extract import Kind, extract

row = "<p>lorem <em>ipsum</em> <b>dolor</b> sit <i>amet</i>, consectetur.</p>" * 60
sections = int(sys.argv[1]) // (len(row) + 60)
page = "".join(
    f'<div id="s{n}"><a href="page{n}.html#s">link</a>{row}</div>\\n' for n in range(sections)
).encode()

def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(field + ":")) * 1024

with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # VmHWM := VmRSS
before = status("VmHWM")
found = extract(page, Kind.HTML, "https://s.example/")
rise = status("VmHWM") - before
lines = [link.line for link in found.links]
print(json.dumps({"bytes": len(page), "sections": sections, "links": len(found.links),
                  "lines_in_order": lines == list(range(1, sections + 1)),
                  "last": found.links[-1].url, "anchors": len(found.anchors), "rise": rise}))
"""


def test_a_large_document_is_read_in_memory_bounded_by_its_size() -> None:
    """Parsed whole, a 24 MiB page would cost ~20 times its size (the tree); read in blocks with
    the finished elements dropped, the rise stays below its size (libxml2 keeps the bytes fed)."""
    child = subprocess.run(
        [sys.executable, "-c", LARGE_PAGE_CHILD, str(24 << 20)], capture_output=True, text=True, check=True
    )
    report = json.loads(child.stdout)
    sections = report["sections"]
    assert report["links"] == report["anchors"] == sections > 1000 and report["lines_in_order"]
    assert report["last"] == f"https://s.example/page{sections - 1}.html#s"
    assert report["rise"] < 3 * report["bytes"], report


REPEATED = (
    b"".join(  # one page linked 12 times (6 with fragments), the page itself, an empty link
        b'<p><a href="guide.html#s%d">s</a> <a href=" guide.html ">g</a></p>\n' % n for n in range(6)
    )
    + b'<a href="#top">top</a><a href="">self</a><a href="https://other.example/x#y">x</a>\n'
)
ODD = (  # whitespace inside a link before its `#`, empty fragments, the same part before `#`
    b'<a href="page.html #x">1</a><a href="page.html#x">2</a><a href="http://x.example/y #f">3</a>'
    b'<a href="http://x.example/y#">4</a><a href="a.html#">5</a><a href=" #">6</a><a href="#">7</a>'
)


@pytest.mark.parametrize("fragments", [False, True], ids=["defragmented", "fragments"])
@pytest.mark.parametrize(
    "page", [PAGE, LATE_BASE, REPEATED, ODD], ids=["page", "late-base", "repeated", "odd"]
)
def test_a_crawled_page_groups_its_links_as_every_link_counted_one_by_one(
    page: bytes, fragments: bool
) -> None:
    """page_links (the crawler's) resolves each link once per page and counts the repeats: the
    same URLs, first-seen order, totals, lines and anchors as every link extracted and counted."""
    for base in ("https://s.example/a/p.html", "https://s.example/a/p.html?v=1#here"):
        grouped = page_links(page, base, fragments=fragments)
        assert grouped == Page.of(extract_html(page, base, anchors=fragments), fragments)
        assert list(grouped.links) == list(Page.of(extract_html(page, base), fragments).links)


def test_a_crawled_page_counts_every_link_and_keeps_the_lines_of_the_first() -> None:
    base = "https://s.example/a/p.html"
    whole = page_links(REPEATED, base, fragments=False).links
    assert list(whole) == ["https://s.example/a/guide.html", base, "https://other.example/x"]
    assert whole["https://s.example/a/guide.html"] == Linked([1, 1, 2, 2, 3, 3, 4, 4, 5, 5], total=12)
    assert whole[base] == Linked([7])  # `#top`; `href=""` is no link
    checked = page_links(REPEATED, base, fragments=True).links
    assert checked["https://s.example/a/guide.html"] == Linked([1, 2, 3, 4, 5, 6], total=6)
    assert checked["https://s.example/a/guide.html#s5"] == Linked([6])
    assert checked[f"{base}#top"] == Linked([7]) and "https://other.example/x#y" in checked


@pytest.mark.parametrize("fragments", [False, True], ids=["defragmented", "fragments"])
def test_a_large_crawled_page_read_in_blocks_is_grouped_the_same(
    monkeypatch: pytest.MonkeyPatch, fragments: bool
) -> None:
    whole = page_links(LATE_BASE, "https://s.example/a/", fragments=fragments)
    monkeypatch.setattr(html, "STREAM_ABOVE", 0)
    assert page_links(LATE_BASE, "https://s.example/a/", fragments=fragments) == whole
    assert whole.links["https://late.example/dir/s.css"].total == 300


def test_sources_merge_a_document_s_links_as_adding_them_one_by_one() -> None:
    one_by_one, merged = Sources(), Sources()
    for document, lines in (("a.html", [3, 3, 9]), ("b.html", list(range(1, 13)))):
        for line in lines:
            one_by_one.add(document, line)
        linked = Linked(lines[:MAX_PLACES], total=len(lines))
        merged.merge(document, linked)
    assert merged == one_by_one and merged.total == 15 and len(merged.places) == MAX_PLACES
