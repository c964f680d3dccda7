"""The crawl frontier: what a crawl is (CrawlSpec), what a link found on a page asks for (Found),
and the one plan of how a page's links join the crawl (plan_discovery) and each URL's sources
(merge_sources).

Library code, with no storage in it: `linkprobe crawl` runs the plan over its dictionaries, the
SQLite store in a transaction, the Redis store in Python too, its DISCOVER script then only
checking that the state the plan was made from is still current and writing it. A rule of the
crawl (which URL is new, which kind it gets, max_pages, max_urls, the owner's daily quota, the
places kept per URL) is written here and nowhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urldefrag

from linkprobe.engine.errors import ConfigError, InvalidURL, Unsupported
from linkprobe.engine.options import rule, rule_of
from linkprobe.engine.urls import normalise
from linkprobe.extract.document import Linked, Sources
from linkprobe.extract.filters import LinkFilter


class ChunkKind(StrEnum):
    """What a worker does with a chunk's URLs. URL lists and documents only have `links` chunks;
    a crawl task also has `pages` (fetched, their links discovered) and `fragments` chunks."""

    LINKS = "links"  # probe each URL
    PAGES = "pages"  # fetch each page, discover its links (Store.discover), then store its result
    FRAGMENTS = "fragments"  # each URL is page#fragment: fetch the page, judge by its anchors


# The order of a page's new URLs: pages first, so the crawl's frontier is claimed before its links.
GROUPS = (ChunkKind.PAGES, ChunkKind.LINKS, ChunkKind.FRAGMENTS)


class Scope(StrEnum):
    """What a crawl checks: the site's links only, or every link on its pages (the default)."""

    ALL = "all"  # links to other sites are checked too (never followed)
    SITE = "site"  # only the site's own URLs (and what --include adds) are checked


PAGE_BYTES = 16 << 20  # a page's body read at most by default: the Python docs' indexes are 2.5 MB
MAX_PATTERNS = 100  # include or exclude patterns of one crawl at most
MAX_PATTERN_LENGTH = 1000  # characters of one pattern at most


def check_start(value: str) -> None:
    try:
        normalise(value)
    except (InvalidURL, Unsupported) as exc:
        raise ValueError(f"not an http(s) URL: {exc}") from None


def check_patterns(name: str) -> Callable[[list[str]], None]:
    """The check of one pattern list: each no longer than MAX_PATTERN_LENGTH, each compiles
    (errors name it as the API does: `linkprobe crawl` compiles its flags first, naming them)."""

    def check(value: list[str]) -> None:
        for pattern in value:
            if len(pattern) > MAX_PATTERN_LENGTH:
                raise ValueError(f"a pattern longer than {MAX_PATTERN_LENGTH} characters")
        try:
            LinkFilter(value, names=(f"crawl.{name}", ""))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    return check


@dataclass(slots=True)
class CrawlSpec:
    """A site to crawl: its pages are fetched and followed, every link found on them is checked."""

    # The one declaration of a crawl's settings: `linkprobe crawl`'s flags (help, types, checks),
    # the API's `crawl` objects (OpenAPI schema, 422s) and the stores' JSON derive from these
    # fields and their Rules; SERVICE_SET's are set by the service, never by a client. Stored with
    # the task and handed to workers with each of its chunks. The start URL is the task's only URL
    # at creation (index 0, a `pages` chunk at depth 0); the rest is found by the workers and added
    # with Store.discover, each new URL charged to the owner's daily quota (`urls_per_day`).

    start: str = field(
        metadata=rule(
            "The first page (http or https); its scheme, host and port are the site.",
            max_length=8000, check=check_start,
        )
    )  # fmt: skip
    max_depth: int | None = field(
        default=None,
        metadata=rule("Follow pages at most this many links from the start (the start page is depth 0; "
                      "links on the deepest pages are checked, not followed).", ge=0),
    )  # fmt: skip
    max_pages: int | None = field(
        default=None, metadata=rule("Fetch at most this many pages (links beyond are checked).", ge=1)
    )
    include: list[str] = field(
        default_factory=list,
        metadata=rule("Regular expressions: matching URLs are checked and followed (they widen the site).",
                      max_length=MAX_PATTERNS, check=check_patterns("include")),
    )  # fmt: skip
    exclude: list[str] = field(
        default_factory=list,
        metadata=rule("Regular expressions: matching URLs are skipped (an include wins).",
                      max_length=MAX_PATTERNS, check=check_patterns("exclude")),
    )  # fmt: skip
    ignore_robots: bool = field(default=False, metadata=rule("Fetch pages robots.txt disallows."))
    check_fragments: bool = field(
        default=False, metadata=rule("Check each page#fragment link of the site against the page's anchors.")
    )
    max_urls: int | None = field(default=None, metadata=rule("URLs the crawl may discover at most.", ge=0))
    max_page_bytes: int | None = field(
        default=None,
        metadata=rule(f"Bytes of a page read at most (default {PAGE_BYTES >> 20} MiB; links are probed "
                      "under max_body_bytes); a longer page is cut, its result's body `truncated`.", ge=1),
    )  # fmt: skip
    urls_per_day: int | None = field(
        default=None,
        metadata=rule("The owner's daily URL quota, charged with every URL the crawl discovers (it stops "
                      "where the quota does); null when the owner is not limited.", ge=0),
    )  # fmt: skip
    scope: Scope = field(
        default=Scope.ALL,
        metadata=rule("`all`: the site's pages and every link on them, other sites' too (checked, never "
                      "followed); `site`: only the site's own URLs, links elsewhere are not checked."),
    )  # fmt: skip

    def __post_init__(self) -> None:
        self.start = urldefrag(self.start.strip()).url  # the page, whatever fragment it was given with
        self.scope = Scope(self.scope)  # given as its value by the flags and stored JSON

    @property
    def page_bytes(self) -> int:
        return PAGE_BYTES if self.max_page_bytes is None else self.max_page_bytes

    @property
    def filter(self) -> LinkFilter:
        return LinkFilter(self.include, self.exclude)

    def violations(self) -> list[tuple[str, str]]:
        """(field, reason) for each value its Rule refuses (a field left None is not limited)."""
        return [
            (item.name, reason)
            for item in dataclasses.fields(self)
            if (value := getattr(self, item.name)) is not None
            and (reason := rule_of(item).violation(value)) is not None
        ]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CrawlSpec:
        """A stored spec (one stored before `scope` has none: all)."""
        return cls(**data)


SERVICE_SET = ("max_urls", "urls_per_day")  # CrawlSpec fields the API sets (limits, quota)
CLIENT_SET = tuple(item.name for item in dataclasses.fields(CrawlSpec) if item.name not in SERVICE_SET)


@dataclass(slots=True, frozen=True)
class Found:
    """A link found on a crawled page: its URL (defragmented unless its kind is FRAGMENTS), the
    line it is on, and what the crawler wants done with it. `linked` is every link of the page to
    that URL at once (page_links groups them: their lines and count); None: this one link. The
    plan may demote a PAGES link to LINKS when the crawl's max_pages is used up; the kind of a URL
    already seen does not matter."""

    url: str
    line: int
    kind: ChunkKind = ChunkKind.LINKS
    linked: Linked | None = None

    @classmethod
    def grouped(cls, url: str, kind: ChunkKind, linked: Linked) -> Found:
        return cls(url, linked.lines[0] if linked.lines else 0, kind, linked)

    @property
    def links(self) -> Linked:
        return self.linked if self.linked is not None else Linked([self.line])


@dataclass(slots=True)
class Discovery:
    """What one page's links add to a crawl: its new URLs, their chunks, every URL's new places."""

    new: list[str] = field(default_factory=list)  # new URLs, at input indexes total, total + 1, ...
    chunks: list[tuple[ChunkKind, int, int]] = field(default_factory=list)  # (kind, start, stop)
    places: dict[int, list[Linked]] = field(default_factory=dict)  # input index -> its links on the page
    scheduled: int = 0  # pages scheduled for fetching after this page, the start page included


def plan_discovery(
    found: Iterable[Found], known: Mapping[str, int], total: int, scheduled: int, spec: CrawlSpec,
    chunk_size: int, quota_left: int | None = None,
) -> Discovery:  # fmt: skip
    """How a page's links join a crawl that has `total` URLs (`known`: those of them the links
    name, URL -> input index) and `scheduled` pages: a seen URL only gains places; a new one
    (bounded by max_urls and `quota_left`, the new URLs the owner's daily quota still allows)
    gets its kind, a PAGES link becoming LINKS past max_pages, then the next indexes, grouped by
    kind and cut into chunks of `chunk_size`."""
    kinds: dict[str, ChunkKind] = {}
    places: dict[str, list[Linked]] = {}
    room = None if spec.max_urls is None else max(0, spec.max_urls - total)
    if quota_left is not None:
        room = quota_left if room is None else min(room, quota_left)
    for link in found:
        url = link.url
        if url in known or url in kinds:
            places.setdefault(url, []).append(link.links)
        elif room is None or len(kinds) < room:
            kind = link.kind
            if kind is ChunkKind.PAGES:
                if spec.max_pages is not None and scheduled >= spec.max_pages:
                    kind = ChunkKind.LINKS
                else:
                    scheduled += 1
            kinds[url] = kind
            places[url] = [link.links]
    plan = Discovery(scheduled=scheduled)
    for kind in GROUPS:
        group = [url for url, k in kinds.items() if k is kind]
        for first in range(0, len(group), chunk_size):
            start = total + len(plan.new)
            plan.new += group[first : first + chunk_size]
            plan.chunks.append((kind, start, total + len(plan.new)))
    fresh = {url: total + i for i, url in enumerate(plan.new)}
    plan.places = {known[url] if url in known else fresh[url]: linked for url, linked in places.items()}
    return plan


def merge_sources(old: dict[str, Any] | None, page_url: str, added: list[Linked]) -> dict[str, Any]:
    """A URL's sources (as stored: Sources.to_dict()) with its links on one more page: every link
    counted, up to MAX_PLACES places listed (the rule is Sources.merge's, the CLI's own)."""
    sources = Sources() if old is None else Sources.of(old)
    for linked in added:
        sources.merge(page_url, linked)
    return sources.to_dict()
