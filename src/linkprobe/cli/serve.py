"""`linkprobe serve` (the API and the workers in one process) and `linkprobe api` (the API alone)."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from urllib.parse import unquote_plus

import uvicorn

from linkprobe.api import create_app
from linkprobe.api.connections import header_deadline
from linkprobe.cli import settle_heap
from linkprobe.cli.exits import ExitCode
from linkprobe.engine.handle import Limits
from linkprobe.engine.limits import SPARE_DESCRIPTORS, ensure_descriptors
from linkprobe.settings import Settings
from linkprobe.store import StoreLocked, open_store

QUERY_PARAM = re.compile(r"([?&])([^=&#]*)=([^&#]*)")
FLAGS = ("host", "port", "db", "redis_url", "workers", "allow_private", "concurrency")


def with_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    overrides = {flag: getattr(args, flag) for flag in FLAGS if getattr(args, flag, None) is not None}
    return settings.model_copy(
        update=Settings.model_validate({**settings.model_dump(), **overrides}).model_dump()
    )


def redact_query(record: logging.LogRecord) -> bool:
    """Access log lines without the `options` query parameter: text uploads pass headers there."""
    if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
        path = QUERY_PARAM.sub(_redact_options, record.args[2])
        record.args = (*record.args[:2], path, *record.args[3:])
    return True


def _redact_options(match: re.Match[str]) -> str:
    """The `options` parameter's value as [redacted], however its name is escaped (`%6Fptions`)."""
    if unquote_plus(match.group(2)) != "options":
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}=[redacted]"


def check_descriptors(settings: Settings, embedded_worker: bool) -> None:
    """The API's connections and the engine's pool must fit the open-file limit (raised to the
    hard limit if need be), or the service does not start: see limits.ensure_descriptors."""
    pool = Limits(settings.concurrency, settings.per_host).connections if embedded_worker else 0
    what = "LINKPROBE_MAX_CONNECTIONS" + (" and LINKPROBE_CONCURRENCY" if embedded_worker else "")
    ensure_descriptors(settings.max_connections + pool + SPARE_DESCRIPTORS, what)


def run_serve(args: argparse.Namespace, settings: Settings, embedded_worker: bool) -> int:
    settings = with_flags(settings, args)
    check_descriptors(settings, embedded_worker)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # serve's worker processes each probe their own hosts of every chunk (one pool per host).
    shares = settings.worker_processes if embedded_worker else 1
    store = open_store(settings, shares=max(1, shares))
    try:
        store.lock()  # before the app starts: a second server on the same file changes nothing
    except StoreLocked as exc:
        print(f"linkprobe: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    app = create_app(settings, store, embedded_worker=embedded_worker)
    settle_heap()
    logging.getLogger("uvicorn.access").addFilter(redact_query)
    uvicorn.run(
        app, host=settings.host, port=settings.port, loop="uvloop", log_level="info",
        http=header_deadline(settings.header_timeout_s), limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keepalive_s, h11_max_incomplete_event_size=16 << 10,
    )  # fmt: skip
    return 0
