"""`linkprobe check`: probe URLs once, report, exit 0 (all ok) or 2 (some not ok)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

import uvloop

from linkprobe.cli import settle_heap
from linkprobe.engine import ConfigError, Engine, EngineConfig, ProbeOptions, ProbeResult
from linkprobe.engine.urls import url_lines
from linkprobe.report import ndjson_line, render
from linkprobe.settings import Settings

PROBE_FLAGS = (
    "method", "user_agent", "accept", "timeout", "connect_timeout", "retries", "max_redirects",
    "max_body_bytes", "concurrency",
)  # fmt: skip


def collect_urls(inputs: list[str], stdin: TextIO) -> list[str]:
    urls: list[str] = []
    for item in inputs:
        if item == "-":
            urls.extend(url_lines(stdin))
        elif "://" not in item and Path(item).is_file():
            with open(item, encoding="utf-8", errors="replace") as handle:
                urls.extend(url_lines(handle))
        else:
            urls.append(item)  # not a file: a URL, judged (maybe invalid_url) like any other
    return urls


def parse_headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"header {value!r} is not 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def probe_options(args: argparse.Namespace) -> ProbeOptions:
    values = {flag: getattr(args, flag) for flag in PROBE_FLAGS if getattr(args, flag) is not None}
    values["headers"] = parse_headers(args.header)
    if args.insecure:
        values["verify_tls"] = False
    return ProbeOptions.model_validate(values)


def engine_config(args: argparse.Namespace, settings: Settings) -> EngineConfig:
    return settings.engine_config(
        concurrency=args.concurrency,
        per_host=args.per_host,
        dns_timeout=args.dns_timeout,
        allow_private=args.allow_private,
        allow_cidrs=None if args.allow_cidr is None else tuple(settings.allow_cidrs) + tuple(args.allow_cidr),
    )


class Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.done = self.ok = 0
        self.started = self.drawn = time.monotonic()

    def add(self, result: ProbeResult) -> None:
        self.done += 1
        self.ok += result.ok
        now = time.monotonic()
        if self.enabled and (now - self.drawn >= 0.1 or self.done == self.total):
            self.drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        width = 30
        filled = width * self.done // max(self.total, 1)
        rate = self.done / max(now - self.started, 1e-6)
        line = f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
        sys.stderr.write(f"{line} ok {self.ok} broken {self.done - self.ok} {rate:.0f}/s ")
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def probe_all(
    urls: list[str], config: EngineConfig, options: ProbeOptions, progress: Progress, stream: TextIO | None
) -> list[ProbeResult]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)  # Ctrl-C: report what is left as cancelled
    results: list[ProbeResult] = []
    async with Engine(config) as engine:
        async for result in engine.run(urls, options, stop=stop):
            progress.add(result)
            if stream is not None:
                stream.write(ndjson_line(result))
            else:
                results.append(result)
    loop.remove_signal_handler(signal.SIGINT)
    return results


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    options = probe_options(args)
    config = engine_config(args, settings)
    urls = collect_urls(args.inputs, sys.stdin)
    if not urls:
        raise ConfigError("no URLs given")
    progress = Progress(len(urls), enabled=not args.quiet and sys.stderr.isatty())
    out: TextIO = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        streaming = out if args.format == "ndjson" else None
        settle_heap()
        results = uvloop.run(probe_all(urls, config, options, progress, streaming))
        if streaming is None:
            out.write(render(results, args.format))
    finally:
        if out is not sys.stdout:
            out.close()
    broken = progress.done - progress.ok
    return 2 if broken else 0
