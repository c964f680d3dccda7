"""Markdown extraction with a CommonMark parser: what is a link and what only looks like one."""

from __future__ import annotations

from pathlib import Path

import pytest

from linkprobe.extract import Kind, Link, extract
from tests.conftest import extraction_growth

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


TRICKY = """Intro with [a late reference][late] and <https://auto.example/1>.

```python
[not a link](https://fenced.example/) padding padding padding padding padding padding padding

still code
```

<!-- a comment padding padding padding padding padding padding padding padding padding padding

[hidden](https://comment.example/) across a blank line -->

- a loose list item with [a link](https://list.example/1)

  a continuation paragraph with [another](https://list.example/2)

<pre>
text padding padding padding padding padding padding padding padding padding padding

<a href="https://pre.example/">in pre</a>
</pre>

# A heading

~~~~
~~~ padding padding padding padding padding padding padding padding padding padding

[still fenced](https://fenced.example/2)
~~~~

Text after: ![img](https://img.example/x.png)
"""


def test_a_document_parsed_in_sections_gives_what_one_parse_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    from linkprobe.extract import markdown

    text = (
        "".join(TRICKY.replace("example/", f"example/{n}/") for n in range(40))
        + "\n[late]: https://late.example/\n"
    )
    whole = extract(text.encode(), Kind.MARKDOWN, None)
    monkeypatch.setattr(markdown, "SECTION_CHARS", 64)  # a cut wherever one is allowed
    assert len(list(markdown.sections(text))) > 40
    parted = extract(text.encode(), Kind.MARKDOWN, None)
    assert parted.links == whole.links and parted.anchors == whole.anchors
    assert all("fenced" not in link.url and "comment" not in link.url for link in parted.links)


def test_a_large_markdown_document_is_parsed_within_its_memory_bound(tmp_path: Path) -> None:
    """Peak growth under 8x the document (the API's documented factor), in a child process: the
    whole token stream cost some 70 times its size."""
    rows = b"".join(
        b"A line with [a link](https://example.com/p/%d) and more words.\n\n" % i for i in range(60_000)
    )
    path = tmp_path / "big.md"
    path.write_bytes(rows)
    found, grown = extraction_growth(path, "markdown")
    assert found == 60_000 and grown <= 8 * len(rows), f"{grown / len(rows):.1f}x"
