"""`linkprobe` command line: a thin shell over the engine and the service.

Exit codes: cli/exits.py (ExitCode).

Only what a command uses is imported: `check` never loads the API, the stores or uvicorn, and
`check` and `crawl` load pydantic only to read LINKPROBE_* settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import sys
from collections.abc import Callable, Mapping, Sequence, Set
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NoReturn, cast, get_type_hints

from linkprobe import __version__
from linkprobe.cli.exits import ExitCode, exit_codes_help
from linkprobe.engine.options import rule_of
from linkprobe.extract.document import Kind
from linkprobe.report import FORMATS

if TYPE_CHECKING:
    from linkprobe.engine import OptionError
    from linkprobe.settings import Settings

MAX_JOBS = 64  # processes of `check` and `crawl`: each holds pipes and work in flight
# Option fields whose flag is not simply --field-name.
FLAG_OF = {
    "headers": "-H/--header", "verify_tls": "--insecure", "allow_private": "--allow-private",
    "allow_cidrs": "--allow-cidr",
    "max_age": "--cache FILE --max-age DURATION",  # the service reuses results in its store; check, in a file
}  # fmt: skip

CHECK_EPILOG = (
    """\
inputs:
  An argument with a scheme (https://..., http://..., even mailto:...) is a URL; - reads a URL
  list from stdin; anything else must be an existing file, folder or a glob matching files (write
  ./name for a file whose name looks like a URL). Files with a document extension (.html, .md,
  .xml, ...) are documents whose links are checked; others are URL lists: one URL a line (\\n,
  \\r\\n or \\r); # starts a comment at a line's start or after whitespace.

formats (-f/--format):
  table (default), json, csv, junit, markdown: in input order, written at the end;
  ndjson: one JSON result a line, streamed as results complete;
  redirects: the links to update, as CSV (found_in, url, final_url, status_code, redirect:
  permanent when the link's own answer is 301 or 308, else temporary).
  --only broken (or broken,permanent, ...) writes only those rows; the summary counts every URL
  (not in a -f json/ndjson file written with -o: a baseline holds every result).

changes (--baseline FILE: a previous -f json or ndjson output):
  each URL's change since it: broke (was ok, now broken), fixed, changed (status, final URL
  or error kind), new, gone (only in the baseline); table: a line under the row; markdown: a
  Change column; json, ndjson: "change" and "previous"; csv, redirects: change and was columns;
  junit: a change property on the test case; every summary counts them. Gone URLs are rows too.
  --fail-on broke: exit 2 only for URLs that broke since the baseline (old broken links pass).

"""
    + exit_codes_help()
    + """
examples:
  linkprobe check https://example.com/ https://example.org/missing
  linkprobe check urls.txt -f junit -o links.xml
  cat urls.txt | linkprobe check - -f ndjson
  linkprobe check --allow-private http://127.0.0.1:8080/health
  linkprobe check docs/ --root-dir docs/ --only broken       # root-relative links: /about.html
  linkprobe check docs/ --base-url https://example.com/ -f redirects -o to-update.csv
  linkprobe check docs/ --baseline links.json --fail-on broke -f json -o links-now.json
  linkprobe check docs/ --cache .linkprobecache --max-age 1d
"""
)

CRAWL_EPILOG = """\
scope (--scope):
  all (the default): the site's pages are followed and every link on them is checked, links to
  other sites too (checked once, never followed); site: only the site's own URLs are checked.

patterns (--include, --exclude: RE2, searched anywhere in the URL; anchor with ^):
  RE2 has no lookahead or backreferences: instead of --exclude '^https?://(?!docs\\.example)',
  write --scope site, or --include '^https://docs\\.example\\.com/' to widen the site.
  --exclude '/api/'                          skip the API reference pages
  --exclude '\\.(pdf|zip)$'                  skip downloads
  --exclude '^https?://(www\\.)?github\\.com/'  do not check GitHub links
  --include '^https://cdn\\.example\\.com/'     follow pages of another host too

examples:
  linkprobe crawl https://docs.example.com/ --scope site --only broken
  linkprobe crawl http://127.0.0.1:8000/ --allow-private --only broken,permanent
  linkprobe crawl https://docs.example.com/ -f redirects -o links-to-update.csv
"""


class _Parser(argparse.ArgumentParser):
    # Declares the command's flags (build_parser): run once, when the command is used or asked for.
    flags: Callable[[argparse.ArgumentParser], None] | None = None
    _printing = False

    def complete(self) -> _Parser:
        """This command's parser with its flags declared."""
        if self.flags is not None:
            flags, self.flags = self.flags, None
            flags(self)
        return self

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes a formatter for each flag added (to check its metavar), and the default
        # width imports shutil, and with it bz2 and lzma: half a MiB a check of one URL does
        # without. The terminal's width only matters for text that is printed.
        if self._printing:
            return super()._get_formatter()
        formatter = cast(type[argparse.HelpFormatter], self.formatter_class)  # all of argparse's take a width
        return formatter(prog=self.prog, width=80)

    def format_usage(self) -> str:
        return self._printed(super().format_usage)

    def format_help(self) -> str:
        return self._printed(super().format_help)

    def _printed(self, format_text: Callable[[], str]) -> str:
        self._printing = True
        try:
            return format_text()
        finally:
            self._printing = False

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}{self.suggestion(message)}\n")

    def suggestion(self, message: str) -> str:
        """`did you mean --allow-private?` for a misspelt flag of this command."""
        if not message.startswith("unrecognized arguments: "):
            return ""
        import difflib

        flags = [flag for action in self._actions for flag in action.option_strings]
        hints = []
        for given in message.removeprefix("unrecognized arguments: ").split():
            name = given.split("=", 1)[0]
            if name.startswith("-") and (close := difflib.get_close_matches(name, flags, n=1, cutoff=0.6)):
                hints.append(f"{name}: did you mean {close[0]}?")
        return "".join(f"\n{self.prog}: {hint}" for hint in hints)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments; an unknown flag is reported by its command's parser (its usage, and the
    flag it resembles), not by the top-level one."""
    args, rest = parser.parse_known_args(argv)
    if rest:
        command = _command_parser(parser, args)
        command.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        if isinstance(action, argparse._SubParsersAction):
            found = action.choices.get(getattr(args, "command", None) or "")
            if isinstance(found, _Parser):
                return found.complete()
    return parser


def _engine_flags(parser: argparse.ArgumentParser) -> None:
    """The engine's and the probe's flags: a flag of each field of EngineConfig and ProbeOptions,
    its type, choices and help (description, default, bounds) from that one declaration; the
    flags of FLAG_OF are written apart. --concurrency sets both (the engine's and the run's)."""
    from linkprobe.engine import EngineConfig, ProbeOptions

    group = parser.add_argument_group("engine")
    _declared_flags(group, EngineConfig)
    group.add_argument(
        "--allow-private", action="store_true", default=None, help="allow private destinations"
    )
    group.add_argument("--allow-cidr", action="append", default=None, metavar="CIDR", help="allow a network")
    probe = parser.add_argument_group("probe")
    probe.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'")
    probe.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    _declared_flags(probe, ProbeOptions, skip={"concurrency"})


def _declared_flags(
    group: argparse._ActionsContainer, source: type[Any], skip: Set[str] = frozenset()
) -> None:
    """--field-name for each field of `source` of a plain type (a number, a string, one of some
    words); the rest (booleans, mappings, lists) have flags of their own (FLAG_OF)."""
    from dataclasses import fields
    from typing import Literal, get_args, get_origin

    from linkprobe.engine.options import described

    for item in fields(source):
        flag = "--" + item.name.replace("_", "-")
        if item.name in skip or item.name in FLAG_OF:
            continue
        help_text = described(item).replace("%", "%%")
        if get_origin(item.type) is Literal:
            group.add_argument(flag, choices=get_args(item.type), type=str.upper, help=help_text)
        elif item.type in (int, float, str):
            group.add_argument(flag, type=item.type, help=help_text)


def _document_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("documents")
    group.add_argument(
        "--input-format", choices=[kind.value for kind in Kind],
        help="read every file as this kind (default: from the extension; others are URL lists)",
    )  # fmt: skip
    group.add_argument("--base-url", help="where local documents live on the web: resolves their links")
    group.add_argument(
        "--root-dir", metavar="DIR",
        help="the folder root-relative links (/about.html) of local documents resolve against",
    )  # fmt: skip
    group.add_argument(
        "--include", action="append", default=[], metavar="RE", help="check only matching URLs"
    )
    group.add_argument("--exclude", action="append", default=[], metavar="RE", help="skip matching URLs")
    group.add_argument(
        "--check-fragments", action="store_true", help="a #fragment must name an anchor of a local target"
    )


def _crawl_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for each setting of a crawl a client gives (frontier.CrawlSpec, the one declaration):
    its help is the field's description, its type and default the field's."""
    from linkprobe.frontier import CLIENT_SET, CrawlSpec

    group = parser.add_argument_group("crawl")
    hints = get_type_hints(CrawlSpec)
    for item in dataclasses.fields(CrawlSpec):
        if item.name not in CLIENT_SET or item.name == "start":
            continue
        flag, kind, doc = "--" + item.name.replace("_", "-"), hints[item.name], rule_of(item).doc
        if kind is bool:
            group.add_argument(flag, action="store_true", help=doc)
        elif isinstance(item.default, StrEnum):  # its value as given; CrawlSpec makes it the enum
            choices = [choice.value for choice in type(item.default)]
            doc = f"{doc} Default {item.default}."
            group.add_argument(flag, choices=choices, default=item.default.value, help=doc)
        elif item.default_factory is list:
            group.add_argument(flag, action="append", default=[], metavar="RE", help=doc)
        else:
            group.add_argument(flag, type=int, metavar="N", help=doc)


def _service_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="default 8000")
    parser.add_argument("--db", help="SQLite file of the embedded store (when no Redis URL is set)")
    parser.add_argument("--redis-url", help="use Redis (distributed mode), e.g. redis://localhost:6379/0")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command with its flags; given `command`, only that one's flags are declared now, the
    others' when something asks for them (_Parser.complete): a check of one URL does not build
    the parsers of crawl, serve and the rest."""
    parser = _Parser(prog="linkprobe", description="Probe URLs: one typed result per URL.")
    parser.add_argument("--version", action="version", version=f"linkprobe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = commands.add_parser(
        "check",
        help="probe URLs once and report (CI-friendly exit codes)",
        description="Probe URLs once and report one result per URL.",
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.flags = _check_flags
    crawl = commands.add_parser(
        "crawl", help="check every link of a site, following its pages",
        description="Check a site: fetch its pages, follow their links, check every link found once.",
        epilog=CRAWL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    crawl.flags = _crawl_command_flags
    serve = commands.add_parser("serve", help="run the API and the workers in one process")
    serve.flags = _serve_flags
    api = commands.add_parser("api", help="run the API only; workers run elsewhere (linkprobe worker)")
    api.flags = _service_flags
    worker = commands.add_parser("worker", help="run probing workers against Redis (distributed mode)")
    worker.flags = _worker_flags
    keys = commands.add_parser("keys", help="create, list or revoke API keys (stored hashed)")
    keys.flags = _keys_flags
    for name, command_parser in commands.choices.items():
        if command in (None, name):
            command_parser.complete()
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The command `argv` runs (its first word, when it is not a flag of linkprobe's own)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def _check_flags(check: argparse.ArgumentParser) -> None:
    check.add_argument(
        "inputs", nargs="*", metavar="URL|FILE|DIR|GLOB|-",
        help="URLs, documents (HTML, Markdown, sitemap), folders or globs, URL-list files, - for stdin",
    )  # fmt: skip
    check.add_argument("-f", "--format", choices=FORMATS, default="table", help="see formats below")
    check.add_argument("-o", "--output", metavar="FILE", help="write results to this file instead of stdout")
    check.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _only_flag(check)
    check.add_argument(
        "--fail-unsupported",
        action="store_true",
        help="exit 2 when a URL cannot be followed (mailto:, ftp: links or redirects)",
    )
    check.add_argument(
        "--jobs", type=int, metavar="N",
        help="probe in N processes, URLs split by host (default: one per CPU; a short input uses fewer)",
    )  # fmt: skip
    _document_flags(check)
    _engine_flags(check)
    _over_time_flags(check)


def _crawl_command_flags(crawl: argparse.ArgumentParser) -> None:
    from linkprobe.cli import config

    crawl.add_argument(
        "start", nargs="?", metavar="START_URL", help="the first page; its scheme, host and port are the site"
    )
    _crawl_flags(crawl)
    crawl.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="parse pages in N processes (default: one per CPU; 1: in threads of this one)",
    )
    crawl.add_argument("-f", "--format", choices=FORMATS, default="table")
    crawl.add_argument("-o", "--output", metavar="FILE", help="write results to this file instead of stdout")
    crawl.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _only_flag(crawl)
    _engine_flags(crawl)
    config.add_flags(crawl)


def _serve_flags(serve: argparse.ArgumentParser) -> None:
    _service_flags(serve)
    serve.add_argument("--workers", type=int, help="chunks processed at once")
    serve.add_argument(
        "--allow-private", action="store_true", default=None, help="allow private destinations"
    )


def _worker_flags(worker: argparse.ArgumentParser) -> None:
    from linkprobe.engine import EngineConfig

    worker.add_argument("--redis-url", help="Redis URL (or LINKPROBE_REDIS_URL)")
    worker.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    _declared_flags(worker, EngineConfig, skip={"per_host"})  # --concurrency: per process
    worker.add_argument("--workers", type=int, help="chunks processed at once per process (default 4)")
    worker.add_argument(
        "--allow-private", action="store_true", default=None, help="allow private destinations"
    )


def _over_time_flags(check: argparse.ArgumentParser) -> None:
    """--baseline and --fail-on, --cache and --max-age, --config: declared beside their code."""
    from linkprobe.cli import baseline, cache, config

    baseline.add_flags(check)
    cache.add_flags(check)
    config.add_flags(check)


def only_outcomes(value: str) -> frozenset[str]:
    """--only: a comma-separated list of outcomes and redirect views (report.ONLY)."""
    from linkprobe.report import ONLY

    chosen = frozenset(part.strip() for part in value.split(",") if part.strip())
    if not chosen or not chosen <= set(ONLY):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(ONLY)}")
    return chosen


def _only_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only", type=only_outcomes, default=frozenset(), metavar="LIST",
        help="write only these rows: broken, ok, unsupported, cancelled, redirected, permanent "
        "(comma-separated, e.g. broken,permanent); the summary still counts every URL",
    )  # fmt: skip


def _keys_flags(keys: argparse.ArgumentParser) -> None:
    keys.add_argument("--db", help="SQLite file of the embedded store (when no Redis URL is set)")
    keys.add_argument("--redis-url", help="the Redis of the distributed service")
    actions = keys.add_subparsers(dest="action", required=True, parser_class=_Parser)
    create = actions.add_parser("create", help="create a key and print it (once, as the last line)")
    create.add_argument("name", help="who or what the key is for")
    actions.add_parser("list", help="key ids, names, creation time and state (never the keys)")
    revoke = actions.add_parser("revoke", help="revoke a key by id: its calls get 401 at once")
    revoke.add_argument("id")


def checked_jobs(jobs: int | None) -> int:
    """--jobs as given (1 to MAX_JOBS), else one per CPU."""
    from linkprobe.engine import ConfigError
    from linkprobe.engine.limits import cpus

    if jobs is not None and jobs < 1:
        raise ConfigError("--jobs must be 1 or more")
    if jobs is not None and jobs > MAX_JOBS:
        raise ConfigError(f"--jobs must be at most {MAX_JOBS}")
    return jobs or cpus()


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


def flag_name(field: str, env: bool) -> str:
    """How the user set an option field: its flag, or for settings its environment variable."""
    if env:
        return f"LINKPROBE_{field.upper()}"
    return FLAG_OF.get(field, "--" + field.replace("_", "-"))


def invalid_value(error: Mapping[str, Any], env: bool) -> str:
    """One plain sentence from a pydantic error: the flag, what is wrong, the value given."""
    from linkprobe.settings import SECRET_SETTINGS

    where = flag_name(str(error["loc"][0]), env) if error["loc"] else "an option"
    reason = str(error["msg"]).removeprefix("Value error, ")
    shown = "[redacted]" if error["loc"] and error["loc"][0] in SECRET_SETTINGS else repr(error["input"])
    return f"invalid value for {where}: {reason[:1].lower()}{reason[1:]} (got {shown})"


def load_settings() -> Settings:
    """The Settings from the environment; a bad LINKPROBE_* value is a usage error naming it."""
    from pydantic import ValidationError

    from linkprobe.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        raise UsageError(invalid_value(exc.errors()[0], env=True)) from None


ENGINE_ONLY = ("check", "crawl")  # commands that read no setting but the engine's


def configured_by_environment() -> bool:
    return any(name.upper().startswith("LINKPROBE_") for name in os.environ)


def _run(args: argparse.Namespace) -> int:
    # `check` and `crawl` use only the engine's settings, whose defaults are EngineConfig's own:
    # they parse the environment (with pydantic, 10 MiB and a tenth of a second) only when it sets some.
    if args.command in ENGINE_ONLY and not configured_by_environment():
        return _dispatch(args, None)
    from pydantic import ValidationError

    settings = load_settings()
    try:
        return _dispatch(args, settings)
    except ValidationError as exc:
        raise UsageError(invalid_value(exc.errors()[0], env=False)) from None


def _dispatch(args: argparse.Namespace, settings: Settings | None) -> int:
    if args.command == "check":
        from linkprobe.cli.check import run_check

        return run_check(args, settings)
    if args.command == "crawl":
        from linkprobe.cli.crawl import run_crawl

        return run_crawl(args, settings)
    assert settings is not None  # only the ENGINE_ONLY commands may run without
    if args.command in ("serve", "api"):
        from linkprobe.cli.serve import run_serve

        return run_serve(args, settings, embedded_worker=args.command == "serve")
    if args.command == "keys":
        from linkprobe.cli.keys import run_keys

        return run_keys(args, settings)
    from linkprobe.cli.worker import run_workers

    return run_workers(args, settings)


class UsageError(Exception):
    """Bad input from the user: printed as one sentence, exit code 3."""


def invalid_option(error: OptionError) -> str:
    return invalid_value({"loc": (error.name,), "msg": error.reason, "input": error.value}, env=False)


def main(argv: Sequence[str] | None = None) -> int:
    from linkprobe.cli import config
    from linkprobe.engine import ConfigError, OptionError

    words = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser(command_of(words))
        args = parse(parser, words)
        config.apply(parser, args, words)
        return _run(args)
    except OptionError as exc:  # an option built from flags (the environment's are checked above)
        print(f"linkprobe: {invalid_option(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    except (UsageError, ConfigError, ValueError) as exc:
        print(f"linkprobe: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as exc:  # the documented exit code 1, with a message rather than a traceback
        print(f"linkprobe: unexpected failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
