"""Why lxml parses HTML here: links of one large page with lexbor (selectolax), lxml and html.parser.

Run: `.venv/bin/python bench/extract.py` (selectolax is installed on the fly only for this
comparison; it is not a dependency). Prints ms per parse and the ratio to html.parser.
"""

from __future__ import annotations

import html.parser
import subprocess
import sys
import time
from collections.abc import Callable

from linkprobe.extract import Kind, extract
from linkprobe.extract.document import _join
from linkprobe.extract.html import TAGS, _element_urls, line_of, parse

ROWS = 3000


def page() -> bytes:
    head = "<!doctype html><html><head><link rel=stylesheet href='/s.css'></head><body>"
    rows = "".join(
        f'<p id={i}>Text <a href=/page{i}.html#s>link</a> <img src=i/{i}.png srcset="a.png 1x, b.png 2x">'
        " more <em>text</em>.</p>\n"
        for i in range(ROWS)
    )
    return (head + rows + "</body></html>").encode()


class _Stdlib(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "img", "link", "script"):
            self.found += len([value for name, value in attrs if name in ("href", "src", "srcset")])
            self.getpos()


def stdlib(data: bytes) -> int:
    parser = _Stdlib()
    parser.feed(data.decode())
    parser.close()
    return parser.found


def lexbor(data: bytes) -> int:
    from selectolax.lexbor import LexborHTMLParser  # type: ignore[import-not-found, unused-ignore]

    tree = LexborHTMLParser(data)
    return len(tree.css("a[href], img[src], img[srcset], link[href], script[src]"))


def lxml_raw(data: bytes) -> int:
    root = parse(data)
    assert root is not None
    return sum(len(_element_urls(element)) + 0 * line_of(element) for element in root.iter(TAGS))


def linkprobe_lxml(data: bytes) -> int:
    _join.cache_clear()  # every link of the page is new, as on a first visit
    return len(extract(data, Kind.HTML, "https://bench.example/").links)


def best_ms(parse: Callable[[bytes], int], data: bytes, rounds: int = 10) -> float:
    parse(data)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        parse(data)
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def main() -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "selectolax"], check=False)
    data = page()
    baseline = 0.0
    print(f"{len(data) // 1024} KiB page, {ROWS} rows; best of 10")
    contenders = (
        ("html.parser", stdlib),
        ("lxml", lxml_raw),
        ("lexbor", lexbor),
        ("extract() (lxml + resolving every link)", linkprobe_lxml),
    )
    for name, run in contenders:
        try:
            ms = best_ms(run, data)
            baseline = baseline or ms  # the first contender, html.parser, is the baseline
        except ImportError:
            print(f"{name:40} not installed")
            continue
        print(f"{name:40} {ms:7.1f} ms  {baseline / ms:4.1f}x html.parser  (lines: {name != 'lexbor'})")


if __name__ == "__main__":
    main()
