"""Link extraction from documents: HTML, Markdown, sitemaps and plain text.

A library like the engine: it knows nothing of the API, the store or the CLI. `extract()` turns
a document's bytes into the links it holds (resolved against the document's base, each with its
line) and the anchors it defines (for `#fragment` checks).
"""

from linkprobe.extract.document import (
    Extracted,
    Kind,
    Link,
    Linked,
    Page,
    Sources,
    extract,
    kind_for_content_type,
    kind_for_name,
    probe_target,
    supported,
)
from linkprobe.extract.filters import LinkFilter

__all__ = [
    "Extracted",
    "Kind",
    "Link",
    "LinkFilter",
    "Linked",
    "Page",
    "Sources",
    "extract",
    "kind_for_content_type",
    "kind_for_name",
    "probe_target",
    "supported",
]
