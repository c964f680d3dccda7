"""Markdown extraction with a CommonMark parser: what is a link and what only looks like one."""

from __future__ import annotations

from linkprobe.extract import Kind, Link, extract

DOC = """# Getting started

Read the [guide](guide.md#install "Guide") and the [API][api], or
visit <https://auto.example/path> and ![logo](img/logo.png).
A [collapsed][] reference and a [shortcut] one.

    [not a link](https://indented-code.example/)

```
[also not](https://fenced-code.example/)
```

Inline `[code](https://code-span.example/)` is text, and so is \\[escaped](https://escaped.example/).
Raw <a href="https://inline-html.example/">inline html</a> counts.

<div class="note">
<a href="https://html-block.example/">block</a>
<span id="custom-anchor"></span>
</div>

## Getting started

[api]: https://api.example/v1
[collapsed]: https://collapsed.example/
[shortcut]: <https://shortcut.example/with space>
[unused]: https://unused.example/
"""


def links(text: str = DOC, base: str | None = "https://docs.example/book/README.md") -> list[Link]:
    return extract(text.encode(), Kind.MARKDOWN, base).links


def test_links_images_autolinks_references_and_html_are_found_with_lines() -> None:
    assert links() == [
        Link("https://docs.example/book/guide.md#install", 3),
        Link("https://api.example/v1", 3),
        Link("https://auto.example/path", 4),
        Link("https://docs.example/book/img/logo.png", 4),
        Link("https://collapsed.example/", 5),
        Link("https://shortcut.example/with%20space", 5),
        Link("https://inline-html.example/", 14),
        Link("https://html-block.example/", 17),
        Link("https://unused.example/", 26),
    ]


def test_code_and_escapes_are_not_links() -> None:
    found = {link.url for link in links()}
    for fake in ("indented-code", "fenced-code", "code-span", "escaped"):
        assert not any(fake in url for url in found), fake


def test_heading_slugs_and_html_ids_are_anchors() -> None:
    anchors = extract(DOC.encode(), Kind.MARKDOWN).anchors
    assert anchors == {"getting-started", "getting-started-1", "custom-anchor"}


def test_relative_links_stay_relative_without_a_base() -> None:
    assert links("[a](docs/a.md)\n", None) == [Link("docs/a.md", 1)]
