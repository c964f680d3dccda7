"""HTML extraction: every attribute that holds a link, <base href>, lines, anchors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from urllib.parse import urljoin

from linkprobe.extract import Kind, Link, extract
from linkprobe.extract.html import _parser

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
