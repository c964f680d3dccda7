"""Why lxml parses HTML here: links of one large page with lexbor (selectolax), lxml and html.parser.

Run: `.venv/bin/python bench/extract.py` (selectolax is installed on the fly only for this
comparison; it is not a dependency). Prints ms per parse and the ratio to html.parser.

Then, for documents above STREAM_ABOVE: the whole tree against blocks fed to a pull parser, on
~26 MB made of real pages (the Debian python3-doc HTML, when installed): CPU time (best of 3,
in the same run) and the rise of peak RSS, each in its own child process.
"""

from __future__ import annotations

import glob
import html.parser
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

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


DOCS = "/usr/share/doc/python3.11-doc/html"
BODY = re.compile(rb"<body[^>]*>(.*)</body>", re.DOTALL)
LARGE = 26 << 20
CHILD = """
import json, sys, time
from linkprobe.extract import html
from linkprobe.extract.document import _join

data = open(sys.argv[1], "rb").read()
if sys.argv[2] == "whole":
    html.STREAM_ABOVE = 1 << 62

def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(field + ":")) // 1024

with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")
before = status("VmHWM")
times = []
for _ in range(3):
    _join.cache_clear()
    started = time.process_time()
    links = len(html.extract_html(data, "https://bench.example/docs/").links)
    times.append(time.process_time() - started)
print(json.dumps({"ms": min(times) * 1000, "rise_mb": (status("VmHWM") - before), "links": links}))
"""


def large_documents(folder: str) -> dict[str, bytes]:
    """~LARGE bytes of real pages: every page's body in one document, and the link-dense index."""
    bodies = [m.group(1) for name in sorted(glob.glob(f"{folder}/**/*.html", recursive=True))
              if (m := BODY.search(Path(name).read_bytes()))]  # fmt: skip
    index = BODY.search(Path(folder, "genindex-all.html").read_bytes())
    assert index is not None
    documents = {
        "all pages": bodies,
        "genindex-all x N": [index.group(1)] * (LARGE // len(index.group(1)) + 1),
    }
    return {name: _joined(parts) for name, parts in documents.items()}


def _joined(parts: list[bytes]) -> bytes:
    body, size = [], 0
    for part in parts:
        body.append(part)
        size += len(part)
        if size >= LARGE:
            break
    return (
        b"<!doctype html><html><head><title>large</title></head><body>\n"
        + b"\n".join(body)
        + b"</body></html>"
    )


def large(tmp: str = "/tmp/linkprobe-bench-extract.html") -> None:
    try:
        documents = large_documents(DOCS)
    except (OSError, AssertionError):
        print(f"no {DOCS} (apt-get install python3.11-doc): large documents skipped")
        return
    for name, data in documents.items():
        with open(tmp, "wb") as out:
            out.write(data)
        runs = {mode: _child(tmp, mode) for mode in ("whole", "stream")}
        whole, stream = runs["whole"], runs["stream"]
        assert whole["links"] == stream["links"]
        print(
            f"{name}: {len(data) >> 20} MiB, {whole['links']} links | whole tree {whole['ms']:.0f} ms, "
            f"+{whole['rise_mb']} MB | blocks {stream['ms']:.0f} ms ({stream['ms'] / whole['ms']:.2f}x), "
            f"+{stream['rise_mb']} MB ({stream['rise_mb'] / whole['rise_mb']:.2f}x)"
        )


def _child(path: str, mode: str) -> dict[str, float]:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, path, mode], capture_output=True, text=True, check=True
    )
    report: dict[str, float] = json.loads(child.stdout)
    return report


if __name__ == "__main__":
    main()
    large()
