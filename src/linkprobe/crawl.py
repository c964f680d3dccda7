"""Crawl a site: fetch its pages through the engine, extract their links, check every link once.

Pages of the start URL's site (same scheme, host and port, or matching an include) are fetched
and followed, up to a depth and a page count; every other link is checked and never followed.
Each page is read once: the engine's fetch() probes it and hands back its body (capped at
max_page_bytes, not at the links' max_body_bytes: a large index page holds links to its end).
robots.txt is honoured for the pages fetched, read through the same engine.

The rules (`SiteRule`: what is in the site and what each link becomes; `Robots`; the fragment
verdict) are shared by the CLI's in-memory `Crawler` and the service's worker, whose frontier
and seen-set live in the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urldefrag, urlsplit
from urllib.robotparser import RobotFileParser

from linkprobe.engine import Engine, ErrorKind, ProbeOptions, ProbeResult, failed
from linkprobe.engine.limits import cpus
from linkprobe.engine.outcome import BodyState, ProbeError
from linkprobe.extract import (
    Extracted,
    Kind,
    Page,
    Sources,
    extract,
    kind_for_content_type,
    kind_for_name,
    supported,
)
from linkprobe.extract.html import page_links
from linkprobe.extract.processes import ParserGone, ParserProcesses
from linkprobe.frontier import ChunkKind, CrawlSpec, Found, Scope, plan_discovery

ROBOTS_ORIGINS = 1024  # robots.txt files kept at once (a worker serves many crawls)
ROBOTS_MAX_AGE_S = 300.0  # then read again: a long-running worker sees a site's new rules
EXTRACTORS = 2  # pages parsed at once (Extractor)
UNCUT = 1 << 62  # the CLI's new URLs in one group per kind: it queues no chunks


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def page_options(options: ProbeOptions, crawl: CrawlSpec) -> ProbeOptions:
    """How pages are fetched: read (GET, whatever the task's method: their links are in the body)
    up to max_page_bytes; the links found on them are probed under the task's own options."""
    if options.method == "GET" and options.max_body_bytes == crawl.page_bytes:
        return options
    return dataclasses.replace(options, method="GET", max_body_bytes=crawl.page_bytes)


def cut(result: ProbeResult) -> bool:
    """Whether a fetched page was cut at max_page_bytes: the links past the cut were not found."""
    return result.body is BodyState.TRUNCATED


def disallowed(url: str, index: int) -> ProbeResult:
    return failed(url, index, ErrorKind.UNSUPPORTED, "robots.txt disallows fetching it")


def fragment_verdict(url: str, index: int, anchors: set[str], page: ProbeResult) -> ProbeResult:
    """page#fragment judged by the anchors of the page (read as HTML); the page's answer (status,
    timings) is the fragment's, so it counts under the page's status when the anchor is there."""
    fragment = urldefrag(url).fragment
    judged = dataclasses.replace(page, url=url, index=index)
    if fragment in anchors or unquote(fragment) in anchors:
        return judged
    missing = ProbeError(ErrorKind.MISSING_FRAGMENT, f"the page has no anchor #{fragment}")
    return dataclasses.replace(judged, ok=False, error=missing)


def html_at(result: ProbeResult, url: str) -> str | None:
    """The final URL of a fetched page that answered ok with HTML (its links resolve against it)."""
    final = result.final_url or url
    kind = kind_for_content_type(result.content_type) or kind_for_name(final)
    return final if result.ok and kind is Kind.HTML else None


class Extractor:
    """HTML pages parsed off the event loop, `limit` at once: in threads (lxml parses without the
    GIL, pages are fetched meanwhile; measured on a 527-page site, 1.5-2x faster than parsing on
    the event loop), or by forked processes (forked()). Each page in flight holds one parsed page
    in memory."""

    def __init__(self, limit: int = EXTRACTORS, processes: ParserProcesses | None = None) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._processes = processes

    async def __call__(self, body: bytes, base: str, anchors: bool) -> Extracted:
        async with self._slots:
            return await asyncio.to_thread(extract, body, Kind.HTML, base, anchors=anchors)

    async def page(self, body: bytes, base: str, fragments: bool) -> Page:
        """The page's links grouped by URL (with their fragments and its anchors when `fragments`)."""
        async with self._slots:
            if self._processes is not None:
                try:
                    return await self._processes.page_links(body, base, fragments)
                except ParserGone:
                    pass  # parsed here instead: a process that failed costs speed, not links
            return await asyncio.to_thread(page_links, body, base, fragments=fragments)

    @classmethod
    def forked(cls, processes: int | None = None) -> Extractor:
        """Pages parsed by forked processes (extract.processes), one per CPU (`processes`), each
        with one more page waiting for it; in threads with one CPU. Call it while the process
        has a single thread, before any event loop starts.

        A page's link walk is Python and holds the GIL: with threads, on 2 cores, a crawl of the
        Python docs kept the parsing threads waiting for it and for the event loop (bench/crawl.py,
        same runs: 1.6-1.8x linkinator's speed in threads, 2.0-2.2x in 2 processes)."""
        processes = processes or cpus()
        if processes < 2:
            return cls()
        return cls(2 * processes, ParserProcesses(processes))

    def close(self) -> None:
        if self._processes is not None:
            self._processes.close()


class SiteRule:
    """What is in the crawl's site, and what becomes of each link found on one of its pages."""

    def __init__(self, crawl: CrawlSpec) -> None:
        self.crawl = crawl
        self.filter = crawl.filter  # compiled once: it runs on every link found
        self.site = origin(crawl.start)
        parts = urlsplit(crawl.start)
        self._prefix = f"{parts.scheme}://{parts.netloc}/"  # a URL starting so is in the site

    def in_site(self, url: str) -> bool:
        if url.startswith(self._prefix):
            return True  # no urlsplit: most links of a site are written as its start URL is
        return origin(url) == self.site or self.filter.included(url)

    def classify(self, url: str, depth: int, seen: bool = False) -> Iterator[tuple[str, ChunkKind]]:
        """The URLs a link found on a depth-`depth` page asks for, and their kinds: none when
        excluded; `page#fragment` in the site (with check_fragments) as FRAGMENTS, and the page
        itself (defragmented) as PAGES when it may be followed, else LINKS. max_pages is the
        caller's (the budget is the crawl's, not the link's). A page already `seen` passed the
        filter then. Runs once per link of every page: no urldefrag (it parses the URL again)."""
        target, _, fragment = url.partition("#")
        if not (seen or self.filter(target)):
            return
        in_site = supported(target) and self.in_site(target)
        if not in_site and self.crawl.scope is Scope.SITE:
            return
        if fragment and in_site and self.crawl.check_fragments:
            yield url, ChunkKind.FRAGMENTS
        max_depth = self.crawl.max_depth
        follow = in_site and (max_depth is None or depth + 1 <= max_depth)
        yield target, ChunkKind.PAGES if follow else ChunkKind.LINKS

    def followed(self, url: str, result: ProbeResult) -> str | None:
        """The final URL of a fetched page whose links are followed: it answered ok with HTML and,
        after redirects, is still in the site; else None."""
        final = html_at(result, url)
        return final if final is not None and self.in_site(final) else None

    def found(self, page: Page, depth: int) -> list[Found]:
        """The links of a followed page at `depth` (grouped by URL), as the frontier takes them."""
        return [
            Found.grouped(target, kind, linked)
            for url, linked in page.links.items()
            for target, kind in self.classify(url, depth)
        ]


class Robots:
    """robots.txt per origin, read through the engine (egress policy, limits and deadlines apply)
    once per origin, shared by concurrent askers; at most `size` origins are kept, each for
    `max_age` seconds. A worker shares them between tasks, so one task's headers (credentials)
    are never sent for it, and TLS verified or not are kept apart."""

    def __init__(self, engine: Engine, size: int = ROBOTS_ORIGINS, max_age: float = ROBOTS_MAX_AGE_S) -> None:
        self.engine, self.size, self.max_age = engine, size, max_age
        self._read: OrderedDict[tuple[object, ...], tuple[float, asyncio.Task[RobotFileParser | None]]]
        self._read = OrderedDict()

    async def allowed(self, url: str, options: ProbeOptions) -> bool:
        robots = await asyncio.shield(self._reading(url, options))
        return robots is None or robots.can_fetch(options.user_agent, url)

    def _reading(self, url: str, options: ProbeOptions) -> asyncio.Task[RobotFileParser | None]:
        key, now = (*origin(url), options.verify_tls), time.monotonic()
        cached = self._read.get(key)
        if cached is not None and now - cached[0] < self.max_age:
            self._read.move_to_end(key)
            return cached[1]
        reading = asyncio.create_task(self._fetch(url, options))
        self._read[key] = (now, reading)
        self._read.move_to_end(key)
        while len(self._read) > self.size:
            self._read.popitem(last=False)  # a task still being read finishes for its askers
        return reading

    async def _fetch(self, url: str, options: ProbeOptions) -> RobotFileParser | None:
        """The origin's robots.txt; None (everything allowed) when it has none or it cannot be read."""
        scheme, _, _ = origin(url)
        robots_url = f"{scheme}://{urlsplit(url).netloc}/robots.txt"
        plain = dataclasses.replace(options, method="GET", headers={})
        result, body = await self.engine.fetch(robots_url, 0, plain)
        if not result.ok:
            return None
        robots = RobotFileParser()
        robots.parse(body.decode("utf-8", errors="replace").splitlines())
        return robots

    def close(self) -> None:
        for _, reading in self._read.values():
            reading.cancel()
        self._read.clear()


@dataclass(slots=True)
class _Job:
    url: str
    index: int
    depth: int
    page: bool  # fetched and followed; else only checked


class Crawler:
    """One crawl in memory (the CLI). `run()` yields one result per unique URL found; `sources`
    says where each was. Its frontier is frontier.plan_discovery over its dictionaries, the
    stores' own plan."""

    def __init__(
        self,
        engine: Engine,
        crawl: CrawlSpec,
        options: ProbeOptions,
        extract: Extractor | None = None,
    ) -> None:
        self.engine, self.options, self.crawl = engine, options, crawl
        self.page_options = page_options(options, crawl)
        self.start = crawl.start
        self.rule = SiteRule(crawl)
        self.robots = Robots(engine)
        self.index: dict[str, int] = {}  # every URL found (page#fragment too) -> its input index
        self.sources: dict[str, Sources] = {}  # the same URLs -> where they were found
        self._places: list[Sources] = []  # the same Sources by input index
        self.pages = 0  # pages scheduled for fetching (the --max-pages budget, as the stores count)
        self.fetched = 0
        self.cut: list[str] = []  # pages cut at max_page_bytes (their links past the cut are missed)
        # page -> its result and anchors (with --check-fragments)
        self.anchors: dict[str, tuple[ProbeResult, set[str]]] = {}
        self.fragments: dict[str, int] = {}  # page#fragment -> its input index, judged at the end
        self.excluded: set[str] = set()  # links found that --include/--exclude leave out
        self._jobs: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._out: asyncio.Queue[ProbeResult] = asyncio.Queue()
        self._pending = 0
        self.extract = extract or Extractor()

    @property
    def discovered(self) -> int:
        return len(self.index)

    def in_site(self, url: str) -> bool:
        return self.rule.in_site(url)

    async def run(self) -> AsyncIterator[ProbeResult]:
        self._add(self.start)
        self.pages = 1
        await self._schedule(_Job(self.start, 0, 0, page=True))
        workers = [asyncio.create_task(self._worker()) for _ in range(max(1, self.options.concurrency))]
        try:
            while self._pending or not self._out.empty():
                yield await self._out.get()
            for result in self._fragment_results():
                yield result
        finally:
            for worker in workers:
                worker.cancel()
            self.robots.close()

    def _add(self, url: str) -> Sources:
        self.index[url] = len(self._places)
        self.sources[url] = sources = Sources()
        self._places.append(sources)
        return sources

    async def _schedule(self, job: _Job) -> None:
        self._pending += 1
        if job.page and not (self.crawl.ignore_robots or await self.robots.allowed(job.url, self.options)):
            self._emit(disallowed(job.url, job.index))
            return
        self._jobs.put_nowait(job)

    def _emit(self, result: ProbeResult) -> None:
        self._out.put_nowait(result)
        self._pending -= 1

    async def _worker(self) -> None:
        while (job := await self._jobs.get()) is not None:
            if not job.page:
                self._emit(await self.engine.probe(job.url, job.index, self.options))
                continue
            result, body = await self.engine.fetch(job.url, job.index, self.page_options)
            self.fetched += 1
            if cut(result) and self.rule.followed(job.url, result) is not None:
                self.cut.append(job.url)
            try:
                await self._follow(job, result, body)
            finally:
                self._emit(result)  # after its links are scheduled: the crawl is never seen as empty early

    async def _follow(self, job: _Job, result: ProbeResult, body: bytes) -> None:
        fragments = self.crawl.check_fragments
        final = self.rule.followed(job.url, result)
        if final is None:
            return
        page = await self.extract.page(body, final, fragments)
        if fragments:
            self.anchors[job.url] = (result, page.anchors)
        total = len(self.index)
        plan = plan_discovery(self._found(page, job.depth), self.index, total, self.pages, self.crawl, UNCUT)
        self.pages = plan.scheduled  # before any await: concurrent pages cannot overshoot the limit
        for url in plan.new:
            self._add(url)
        for idx, linked in plan.places.items():
            for links in linked:
                self._places[idx].merge(job.url, links)
        for kind, start, stop in plan.chunks:
            for idx, url in enumerate(plan.new[start - total : stop - total], start):
                if kind is ChunkKind.FRAGMENTS:
                    self.fragments[url] = idx
                else:
                    await self._schedule(_Job(url, idx, job.depth + 1, kind is ChunkKind.PAGES))

    def _found(self, page: Page, depth: int) -> list[Found]:
        """The page's links as the frontier takes them (SiteRule.found), with the crawl's memory:
        a URL seen before is not classified again (its kind no longer matters), a link the
        filter left out once is not matched again."""
        found = []
        for url, linked in page.links.items():
            target, _, fragment = url.partition("#")
            if not fragment and target in self.index:
                found.append(Found.grouped(target, ChunkKind.LINKS, linked))  # most links of a site
            elif target in self.index or self._wanted(target):
                classified = self.rule.classify(url, depth, seen=True)
                found += [Found.grouped(link, kind, linked) for link, kind in classified]
        return found

    def _wanted(self, target: str) -> bool:
        """Whether a link not seen yet passes --include/--exclude; a site's pages repeat the
        links it excludes (its external links, with an include of the site), so those are kept."""
        if target in self.excluded:
            return False
        if self.rule.filter(target):
            return True
        self.excluded.add(target)
        return False

    def _fragment_results(self) -> list[ProbeResult]:
        """With --check-fragments: each page#fragment linked on the site, judged by the page's
        anchors; one whose page was not read as HTML (not HTML, broken, beyond a limit) has no
        result of its own: the page's says it."""
        results = []
        for url, index in self.fragments.items():
            read = self.anchors.get(urldefrag(url).url)
            if read is None:
                self.sources.pop(url)
                continue
            results.append(fragment_verdict(url, index, read[1], read[0]))
        return results
