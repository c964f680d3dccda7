"""`linkprobe crawl START_URL`: check a whole site; same formats, exit codes and progress as check."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from typing import TYPE_CHECKING, TextIO

import uvloop

from linkprobe.cli import checked_jobs, settle_heap
from linkprobe.cli.check import Progress, engine_config, exit_code, probe_options, say_interrupted, ticking
from linkprobe.crawl import Crawler, Extractor
from linkprobe.engine import ConfigError, Engine, EngineConfig, ProbeOptions, ProbeResult
from linkprobe.extract import LinkFilter, Sources
from linkprobe.frontier import CLIENT_SET, CrawlSpec
from linkprobe.report import ndjson_line, render, wanted

if TYPE_CHECKING:
    from linkprobe.settings import Settings


def crawl_spec(args: argparse.Namespace) -> CrawlSpec:
    """The crawl the flags ask for, checked by its declaration's rules (as the API checks it)."""
    checked_jobs(args.jobs)
    LinkFilter(args.include, args.exclude)  # a bad pattern is named by its flag
    spec = CrawlSpec(**{name: getattr(args, name) for name in CLIENT_SET})
    for name, reason in spec.violations():
        flag = "START_URL" if name == "start" else "--" + name.replace("_", "-")
        raise ConfigError(f"invalid value for {flag}: {reason} (got {getattr(spec, name)!r})")
    return spec


async def crawl_all(
    args: argparse.Namespace,
    config: EngineConfig,
    options: ProbeOptions,
    progress: Progress,
    stream: TextIO | None,
    extract: Extractor,
) -> tuple[list[ProbeResult], dict[str, Sources], bool]:
    """The results (unless streamed), where each URL was found, and whether Ctrl-C stopped it."""
    results: list[ProbeResult] = []
    interrupted = False
    loop = asyncio.get_running_loop()
    async with Engine(config, shared=False) as engine:  # one crawl: no other lane to reserve for
        crawler = Crawler(engine, crawl_spec(args), options, extract)
        crawling = asyncio.current_task()
        assert crawling is not None
        loop.add_signal_handler(signal.SIGINT, crawling.cancel)  # Ctrl-C: report what was checked
        ticker = asyncio.create_task(ticking(progress))
        keep = wanted(args.only)
        try:
            async for result in crawler.run():
                progress.total = crawler.discovered
                progress.add(result)
                if stream is not None and keep(result):
                    stream.write(ndjson_line(result, crawler.sources.get(result.url)))
                else:
                    results.append(result)
        except asyncio.CancelledError:
            interrupted = True
        finally:
            ticker.cancel()
            loop.remove_signal_handler(signal.SIGINT)
            extract.close()  # while the loop runs: the pipes' transports close with it
    if progress.enabled:
        sys.stderr.write(f"\n{crawler.fetched} pages fetched\n")
    warn_cut(crawler.cut, crawler.crawl.page_bytes)
    return results, crawler.sources, interrupted


def warn_cut(pages: list[str], max_page_bytes: int) -> None:
    """A page cut at --max-page-bytes is said, not silently missing the links past the cut."""
    for page in pages:
        sys.stderr.write(
            f"warning: {page} is longer than --max-page-bytes {max_page_bytes}: "
            "links past the cut were not found\n"
        )


def run_crawl(args: argparse.Namespace, settings: Settings | None) -> int:
    options = probe_options(args)
    if options.method != "GET":
        options = dataclasses.replace(options, method="GET")  # pages are read: the links on them
    config = engine_config(args, settings)
    crawl_spec(args)  # bad flags fail before any request
    progress = Progress(1, enabled=not args.quiet and sys.stderr.isatty())
    out: TextIO = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        streaming = out if args.format == "ndjson" else None
        settle_heap()
        extract = Extractor.forked(args.jobs)  # before the event loop: its processes are forked
        try:
            crawled = crawl_all(args, config, options, progress, streaming, extract)
            results, sources, interrupted = uvloop.run(crawled)
        finally:
            extract.close()
        if streaming is None:
            out.write(render(results, args.format, sources, interrupted=interrupted, only=args.only))
    finally:
        if out is not sys.stdout:
            out.close()
    say_interrupted(interrupted, progress, args.format)
    return exit_code(progress, interrupted, fail_unsupported=False)
