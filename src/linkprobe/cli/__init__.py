"""`linkprobe` command line: a thin shell over the engine and the service.

Exit codes: 0 every URL ok, 2 some URL not ok, 1 unexpected failure, 3 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from typing import NoReturn

from pydantic import ValidationError

from linkprobe import __version__
from linkprobe.engine import ConfigError
from linkprobe.extract.document import Kind
from linkprobe.report import FORMATS
from linkprobe.settings import Settings

EXIT_OK, EXIT_FAILURE, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _engine_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine")
    group.add_argument("--concurrency", type=int, help="URLs in flight at once (default 256)")
    group.add_argument("--per-host", type=int, help="connections per host at once (default 8)")
    group.add_argument("--dns-timeout", type=float, help="seconds (default 5)")
    group.add_argument(
        "--allow-private", action="store_true", default=None, help="allow private destinations"
    )
    group.add_argument("--allow-cidr", action="append", default=None, metavar="CIDR", help="allow a network")
    probe = parser.add_argument_group("probe")
    probe.add_argument("--method", choices=["GET", "HEAD"], type=str.upper)
    probe.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'")
    probe.add_argument("--user-agent")
    probe.add_argument("--accept", help="accepted statuses, e.g. 200-299,301,429 (default 200-299)")
    probe.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    probe.add_argument("--timeout", type=float, help="total seconds per URL attempt (default 10)")
    probe.add_argument("--connect-timeout", type=float, help="seconds (default 5)")
    probe.add_argument("--retries", type=int, help="retries of transient failures (default 2)")
    probe.add_argument("--max-redirects", type=int, help="default 10")
    probe.add_argument("--max-body-bytes", type=int, help="decoded body bytes read at most (default 1 MiB)")


def _document_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("documents")
    group.add_argument(
        "--input-format", choices=[kind.value for kind in Kind],
        help="read every file as this kind (default: from the extension; others are URL lists)",
    )  # fmt: skip
    group.add_argument("--base-url", help="where local documents live on the web: resolves their links")
    group.add_argument(
        "--include", action="append", default=[], metavar="RE", help="check only matching URLs"
    )
    group.add_argument("--exclude", action="append", default=[], metavar="RE", help="skip matching URLs")
    group.add_argument(
        "--check-fragments", action="store_true", help="a #fragment must name an anchor of a local target"
    )


def _service_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="default 8000")
    parser.add_argument("--db", help="SQLite file of the embedded store (when no Redis URL is set)")
    parser.add_argument("--redis-url", help="use Redis (distributed mode), e.g. redis://localhost:6379/0")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="linkprobe", description="Probe URLs: one typed result per URL.")
    parser.add_argument("--version", action="version", version=f"linkprobe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check = commands.add_parser("check", help="probe URLs once and report (CI-friendly exit codes)")
    check.add_argument(
        "inputs", nargs="+", metavar="URL|FILE|DIR|GLOB|-",
        help="URLs, documents (HTML, Markdown, sitemap), folders or globs, URL-list files, - for stdin",
    )  # fmt: skip
    check.add_argument("-f", "--format", choices=FORMATS, default="table")
    check.add_argument("-o", "--output", help="write results to this file instead of stdout")
    check.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _document_flags(check)
    _engine_flags(check)

    crawl = commands.add_parser("crawl", help="check every link of a site, following its pages")
    crawl.add_argument(
        "start", metavar="START_URL", help="the first page; its scheme, host and port are the site"
    )
    crawl.add_argument("--max-depth", type=int, help="follow pages at most this many links from the start")
    crawl.add_argument(
        "--max-pages", type=int, help="fetch at most this many pages (links beyond are checked)"
    )
    crawl.add_argument(
        "--include", action="append", default=[], metavar="RE", help="also follow matching URLs"
    )
    crawl.add_argument("--exclude", action="append", default=[], metavar="RE", help="skip matching URLs")
    crawl.add_argument("--ignore-robots", action="store_true", help="fetch pages robots.txt disallows")
    crawl.add_argument(
        "--check-fragments", action="store_true", help="a #fragment of a site page must name an anchor on it"
    )
    crawl.add_argument("-f", "--format", choices=FORMATS, default="table")
    crawl.add_argument("-o", "--output", help="write results to this file instead of stdout")
    crawl.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _engine_flags(crawl)

    serve = commands.add_parser("serve", help="run the API and the workers in one process")
    _service_flags(serve)
    serve.add_argument("--workers", type=int, help="chunks processed at once")
    serve.add_argument(
        "--allow-private", action="store_true", default=None, help="allow private destinations"
    )

    api = commands.add_parser("api", help="run the API only; workers run elsewhere (linkprobe worker)")
    _service_flags(api)

    worker = commands.add_parser("worker", help="run probing workers against Redis (distributed mode)")
    worker.add_argument("--redis-url", help="Redis URL (or LINKPROBE_REDIS_URL)")
    worker.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    worker.add_argument("--concurrency", type=int, help="connections open at once per process (default 256)")
    worker.add_argument("--workers", type=int, help="chunks processed at once per process (default 4)")
    worker.add_argument(
        "--allow-private", action="store_true", default=None, help="allow private destinations"
    )
    return parser


def settle_heap() -> None:
    """Tune the garbage collector for a long-running probe loop.

    Everything built at start-up (modules, classes, the app) is frozen out of the collector's
    reach, so full collections stop walking it again and again. The young generation is made
    larger: an in-flight probe's objects live for a few milliseconds, and with the default
    threshold (700) nearly all of them survived a collection or two before dying. Measured
    with callgrind on `linkprobe serve`: 10% fewer instructions per URL.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        if args.command == "check":
            from linkprobe.cli.check import run_check

            return run_check(args, settings)
        if args.command == "crawl":
            from linkprobe.cli.crawl import run_crawl

            return run_crawl(args, settings)
        if args.command in ("serve", "api"):
            from linkprobe.cli.serve import run_serve

            return run_serve(args, settings, embedded_worker=args.command == "serve")
        if args.command == "worker":
            from linkprobe.cli.worker import run_workers

            return run_workers(args, settings)
    except (ValidationError, ConfigError, ValueError) as exc:
        print(f"linkprobe: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except Exception as exc:  # the documented exit code 1, with a message rather than a traceback
        print(f"linkprobe: unexpected failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_USAGE
