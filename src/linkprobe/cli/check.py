"""`linkprobe check`: probe URLs once, report, exit 0 (all ok), 2 (some broken) or 130 (Ctrl-C)."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from linkprobe.cli import FLAG_OF, UsageError, checked_jobs, settle_heap
from linkprobe.cli.baseline import EVERY_BROKEN, Baseline, failing
from linkprobe.cli.documents import Collected, DocumentOptions, collect, known_results
from linkprobe.cli.exits import ExitCode
from linkprobe.engine import EngineConfig, ErrorKind, ProbeOptions, ProbeResult, failed
from linkprobe.engine.outcome import Outcome
from linkprobe.extract import Kind, LinkFilter, Sources
from linkprobe.outcomes import Redirect, redirect_of
from linkprobe.report import Notes, changes_summary, gone_line, ndjson_line, render, wanted

if TYPE_CHECKING:
    from linkprobe.cli.cache import Cache
    from linkprobe.engine.shards import Shards
    from linkprobe.settings import Settings

# The options set by a flag of their own name (cli._engine_flags); -H and --insecure are read apart.
PROBE_FLAGS = tuple(item.name for item in dataclasses.fields(ProbeOptions) if item.name not in FLAG_OF)


# A run of this many URLs or more gets uvloop and a settled heap (faster per URL: make bench). A
# shorter one gets neither: for a few URLs, uvloop's import and thread pool and the heap's full
# collection cost more than they save (measured on a one-URL check: 2.3 MiB of peak RSS, the same
# instruction count).
LONG_RUN = 100
T = TypeVar("T")

BLOCKED_HINT = (
    "blocked by the egress policy (not globally routable addresses); "
    "to allow them: --allow-private or --allow-cidr CIDR"
)


def open_output(name: str | None) -> TextIO:
    if name is None:
        return sys.stdout
    try:
        return open(name, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write --output {name}: {exc.strerror or exc}") from None


def document_options(args: argparse.Namespace) -> DocumentOptions:
    root = None if args.root_dir is None else Path(args.root_dir)
    if root is not None and not root.is_dir():
        raise UsageError(f"invalid value for --root-dir: {args.root_dir} is not a folder")
    return DocumentOptions(
        input_format=Kind(args.input_format) if args.input_format else None,
        base_url=args.base_url,
        root_dir=None if root is None else root.resolve(),
        check_fragments=args.check_fragments,
        filter=LinkFilter(args.include, args.exclude),
    )


def parse_headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"invalid value for -H/--header: {value!r} is not 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def probe_options(args: argparse.Namespace) -> ProbeOptions:
    values = {flag: getattr(args, flag) for flag in PROBE_FLAGS if getattr(args, flag) is not None}
    values["headers"] = parse_headers(args.header)
    if args.insecure:
        values["verify_tls"] = False
    return ProbeOptions.of(values)


def engine_config(args: argparse.Namespace, settings: Settings | None) -> EngineConfig:
    """The engine's settings (EngineConfig's defaults when no Settings were read), then the flags."""
    base = EngineConfig() if settings is None else settings.engine_config()
    overrides = {
        "concurrency": args.concurrency,
        "per_host": args.per_host,
        "allow_private": args.allow_private,
        "allow_cidrs": None if args.allow_cidr is None else (*base.allow_cidrs, *args.allow_cidr),
    }
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


class Progress:
    """Counts by outcome (ProbeResult.outcome), and a one-line progress bar on stderr.

    The bar is redrawn when results come (at most ten times a second) and by a ticker every
    TICK_S while the run waits (`tick`), so it shows what is true now: the rate over the last
    RATE_WINDOW_S, and the time left only when that rate says something (else what is waited on).
    """

    TICK_S = 0.5
    RATE_WINDOW_S = 5.0

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.done = self.ok = self.unsupported = self.cancelled = self.blocked = 0
        self.redirected = self.permanent = 0
        self.started = time.monotonic()
        self.drawn = -1.0  # the first result is drawn at once
        self.samples: collections.deque[tuple[float, int]] = collections.deque([(self.started, 0)])

    @property
    def broken(self) -> int:
        return self.done - self.ok - self.unsupported - self.cancelled

    def add(self, result: ProbeResult) -> None:
        self.done += 1
        outcome = result.outcome
        self.ok += outcome is Outcome.OK
        self.unsupported += outcome is Outcome.UNSUPPORTED
        self.cancelled += outcome is Outcome.CANCELLED
        self.blocked += result.error is not None and result.error.kind is ErrorKind.BLOCKED
        if result.redirects and (redirect := redirect_of(result)) is not None:  # none: most URLs
            self.redirected += 1
            self.permanent += redirect is Redirect.PERMANENT
        if self.enabled and ((now := time.monotonic()) - self.drawn >= 0.1 or self.done == self.total):
            self._draw(now)

    def tick(self) -> None:
        """Redraw with the time as it is (called every TICK_S while the run is waiting)."""
        if self.enabled and self.done < self.total:
            self._draw(time.monotonic())

    def rate(self, now: float) -> float:
        """URLs a second over the last RATE_WINDOW_S (0 when none finished in it)."""
        samples = self.samples
        samples.append((now, self.done))
        while len(samples) > 2 and now - samples[1][0] >= self.RATE_WINDOW_S:
            samples.popleft()
        since, done_then = samples[0]
        return (self.done - done_then) / max(now - since, 1e-6)

    def status(self, now: float) -> str:
        """`12/s, 3 s left`; or what the run waits for when nothing finished lately."""
        rate = self.rate(now)
        left = self.total - self.done
        if left <= 0:
            return f"{self.done / max(now - self.started, 1e-6):.0f}/s"
        if rate <= 0:
            return f"waiting on {left} URL{'s' if left != 1 else ''}"
        return f"{rate:.0f}/s, {left / rate:.0f} s left"

    def _draw(self, now: float) -> None:
        self.drawn = now
        width = 30
        filled = width * self.done // max(self.total, 1)
        line = f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
        counted = (("unsupported", self.unsupported), ("cancelled", self.cancelled))
        apart = "".join(f" {name} {count}" for name, count in counted if count)
        sys.stderr.write(f"{line} ok {self.ok} broken {self.broken}{apart} {self.status(now)}\x1b[K")
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def ticking(progress: Progress) -> None:
    """Redraws the bar while the run waits on slow URLs (cancel it when the run ends)."""
    import asyncio

    while True:
        await asyncio.sleep(progress.TICK_S)
        progress.tick()


@dataclasses.dataclass
class Work:
    """What a check does: results known without the network, and the URLs to probe with the
    position of each among all unique URLs."""

    known: list[ProbeResult]
    to_probe: list[str]
    positions: list[int]

    @classmethod
    def of(cls, collected: Collected, fragments: bool) -> Work:
        work = cls([], [], [])
        for index, known in known_results(collected, fragments):
            if isinstance(known, str):
                work.positions.append(index)
                work.to_probe.append(known)
            else:
                work.known.append(known)
        return work

    def reuse(self, cache: Cache) -> None:
        """Results the cache holds become known; only the others are probed."""
        to_probe, positions = [], []
        for url, position in zip(self.to_probe, self.positions, strict=True):
            if (cached := cache.take(url, position)) is not None:
                self.known.append(cached)
            else:
                to_probe.append(url)
                positions.append(position)
        self.to_probe, self.positions = to_probe, positions


@dataclasses.dataclass
class Emitter:
    """Where results go as they come: the progress bar, then the NDJSON stream or the report."""

    collected: Collected
    progress: Progress
    stream: TextIO | None
    results: list[ProbeResult] = dataclasses.field(default_factory=list)
    keep: Callable[[ProbeResult], bool] = dataclasses.field(default=wanted(frozenset()))  # --only, streamed
    lost_files: int = 0  # missing local files outside this folder: root-relative links, most likely
    baseline: Baseline | None = None
    cache: Cache | None = None
    fail_on: frozenset[str] = EVERY_BROKEN
    failing: int = 0  # broken results that fail the run (--fail-on)
    notes: Notes = dataclasses.field(init=False)  # changes so far, results from the cache
    noted: bool = dataclasses.field(init=False)  # whether the notes may add to a result's line

    def __call__(self, result: ProbeResult) -> None:
        self.progress.add(result)
        error = result.error
        self.lost_files += error is not None and error.kind is ErrorKind.MISSING_FILE and outside(result.url)
        change = None if self.baseline is None else self.baseline.compare(result).change
        self.failing += failing(result, change, self.fail_on)
        if self.cache is not None:
            self.cache.record(result)
        if self.stream is not None:
            if self.keep(result):
                extra = self.notes.fields(result.url) if self.noted else None
                self.stream.write(ndjson_line(result, self.collected.sources.get(result.url), extra))
        else:
            self.results.append(result)

    def __post_init__(self) -> None:
        # Built once: the baseline's comparisons fill its live dict, the cache's reuse is decided
        # before the run starts.
        changes = None if self.baseline is None else self.baseline.compared
        cached = {} if self.cache is None else dict.fromkeys(self.cache.taken, str(self.cache.path))
        self.notes = Notes(changes, cached)
        self.noted = self.baseline is not None or self.cache is not None

    def final_notes(self) -> Notes:
        """With the baseline's URLs this run did not have, once the run is over."""
        return self.notes if self.baseline is None else Notes(self.baseline.every(), self.notes.cached)


def probe_one(work: Work, config: EngineConfig, options: ProbeOptions, emit: Emitter) -> bool:
    """At most one URL to probe: no event loop, no engine processes. True when Ctrl-C stopped it."""
    from linkprobe.engine.probe import probe_now

    for result in work.known:
        emit(result)
    for url, position in zip(work.to_probe, work.positions, strict=True):
        try:
            emit(probe_now(url, config, options, position))
        except KeyboardInterrupt:
            emit(failed(url, position, ErrorKind.CANCELLED, "the run was stopped mid-probe"))
            return True
    return False


async def probe_all(work: Work, shards: Shards, options: ProbeOptions, emit: Emitter) -> bool:
    """Probe each unique URL once; local files and unsupported links are judged without the network.
    True when Ctrl-C stopped the run."""
    import asyncio

    for result in work.known:
        emit(result)
    positions = work.positions
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)  # Ctrl-C: report what is left as cancelled
    ticker = asyncio.create_task(ticking(emit.progress))
    try:
        async for result in shards.run(options, stop):
            result.index = positions[result.index]
            emit(result)
    finally:
        ticker.cancel()
        loop.remove_signal_handler(signal.SIGINT)
    return stop.is_set()


def exit_code(
    progress: Progress, interrupted: bool, fail_unsupported: bool, failing: int | None = None
) -> int:
    """130 when interrupted; 2 when a broken URL fails the run (every broken one, unless `failing`
    counts those --fail-on chose) or, with --fail-unsupported, an unsupported one; else 0."""
    if interrupted:
        return ExitCode.INTERRUPTED
    broken = progress.broken if failing is None else failing
    if broken or (fail_unsupported and progress.unsupported):
        return ExitCode.BROKEN
    return ExitCode.OK


def collect_inputs(args: argparse.Namespace) -> Collected:
    try:
        return collect(args.inputs, sys.stdin, document_options(args))
    except OSError as exc:  # a file that exists but cannot be read
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror or exc}") from None


def over_time(
    args: argparse.Namespace, options: ProbeOptions, config: EngineConfig
) -> tuple[Baseline | None, Cache | None]:
    """The baseline and the cache the flags name (checked before anything is probed)."""
    if args.fail_on != EVERY_BROKEN and args.baseline is None:
        raise UsageError(f"--fail-on {','.join(sorted(args.fail_on))} needs --baseline FILE")
    if args.max_age is not None and args.cache is None:
        raise UsageError("--max-age needs --cache FILE")
    baseline = None if args.baseline is None else Baseline(Path(args.baseline))
    if args.cache is None:
        return baseline, None
    from linkprobe.cli.cache import DEFAULT_MAX_AGE, Cache, duration, fingerprint, refuse_secrets

    refuse_secrets(options)

    max_age = duration(DEFAULT_MAX_AGE) if args.max_age is None else args.max_age
    return baseline, Cache(Path(args.cache), max_age, fingerprint(options, config))


# A -f json or ndjson file written with -o can be the next run's --baseline, so it holds every
# result: a baseline without the ok rows would count a link that breaks later as `new`, not `broke`.
BASELINE_FORMATS = ("json", "ndjson")


def rows_kept(args: argparse.Namespace) -> frozenset[str]:
    """The --only filter of this run's output: none for a file that can be a baseline."""
    if args.only and args.output is not None and args.format in BASELINE_FORMATS:
        print(
            f"linkprobe: --only does not filter {args.output}: a -f {args.format} file is a baseline "
            "and holds every result",
            file=sys.stderr,
        )
        return frozenset()
    return frozenset(args.only)


def run_check(args: argparse.Namespace, settings: Settings | None) -> int:
    args.only = rows_kept(args)
    options = probe_options(args)
    config = engine_config(args, settings)
    baseline, cache = over_time(args, options, config)
    collected = collect_inputs(args)
    if not collected.urls:
        raise UsageError("no URLs given (no links found in the documents, or all excluded)")
    progress = Progress(len(collected.urls), enabled=not args.quiet and sys.stderr.isatty())
    out = open_output(args.output)
    try:
        streaming = out if args.format == "ndjson" else None
        work = Work.of(collected, args.check_fragments)
        if cache is not None:
            work.reuse(cache)
        emit = Emitter(
            collected, progress, streaming, keep=wanted(args.only), baseline=baseline, cache=cache,
            fail_on=args.fail_on,
        )  # fmt: skip
        if len(work.to_probe) <= 1:
            interrupted = probe_one(work, config, options, emit)
        else:
            from linkprobe.engine.shards import Shards

            runner = loop_runner(len(collected.urls))
            shards = Shards.fork(work.to_probe, checked_jobs(args.jobs), config, options, runner)
            interrupted = runner(probe_all(work, shards, options, emit))
        notes = emit.final_notes()
        write_report(out, args, emit, interrupted, notes)
    finally:
        if out is not sys.stdout:
            out.close()
    if cache is not None:
        cache.save()
    if baseline is not None and args.format not in ("table", "markdown"):  # those say it in their summary
        print(f"linkprobe: {changes_summary(notes)} ({baseline.path})", file=sys.stderr)
    if progress.blocked and args.format not in ("table", "markdown"):  # those say it on each row
        print(f"linkprobe: {progress.blocked} URL(s) {BLOCKED_HINT}", file=sys.stderr)
    say_interrupted(interrupted, progress, args.format)
    hint_root_relative(emit.lost_files, args)
    return exit_code(progress, interrupted, args.fail_unsupported, emit.failing)


def write_report(
    out: TextIO, args: argparse.Namespace, emit: Emitter, interrupted: bool, notes: Notes
) -> None:
    """The report in its format (NDJSON has streamed its results: the URLs gone follow them)."""
    if emit.stream is None:
        sources = documents_sources(emit.collected)
        out.write(
            render(emit.results, args.format, sources, interrupted=interrupted, only=args.only, notes=notes)
        )
    elif not args.only:
        out.writelines(map(gone_line, notes.gone()))


def say_interrupted(interrupted: bool, progress: Progress, fmt: str) -> None:
    """An interrupted run says so on stderr (the table and Markdown say it in their summary too)."""
    if interrupted:
        print(
            f"linkprobe: interrupted (Ctrl-C): {progress.done - progress.cancelled} of {progress.total} "
            f"URLs checked, {progress.cancelled} cancelled; the results so far are written ({fmt})",
            file=sys.stderr,
        )


ROOT_RELATIVE_HINT = (
    "local links starting with / resolve against the filesystem's root: give --root-dir DIR "
    "(the site's root folder) or --base-url URL (where the documents are published)"
)


def hint_root_relative(missing: int, args: argparse.Namespace) -> None:
    """Once per run: missing local files that look like root-relative links, and how to resolve them."""
    if missing and not (args.root_dir or args.base_url):
        print(f"linkprobe: {missing} link(s) to missing local files; {ROOT_RELATIVE_HINT}", file=sys.stderr)


def outside(url: str) -> bool:
    """A file:// link outside the current folder: what a root-relative link (/about.html) becomes."""
    from pathlib import Path
    from urllib.parse import unquote, urlsplit

    return not Path(unquote(urlsplit(url).path)).is_relative_to(Path.cwd())


def loop_runner(urls: int) -> Callable[[Coroutine[Any, Any, T]], T]:
    """How to run the check's event loop (and its engine processes' loops)."""
    import asyncio

    if urls < LONG_RUN:
        return asyncio.run
    import uvloop

    settle_heap()  # before the engine processes fork: they share the settled heap
    return uvloop.run


def documents_sources(collected: Collected) -> dict[str, Sources] | None:
    """The sources to show: None when no URL came from a document (plain URL checks look as before)."""
    return collected.sources if any(s.total for s in collected.sources.values()) else None
