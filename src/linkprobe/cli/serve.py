"""`linkprobe serve` (the API and the workers in one process) and `linkprobe api` (the API alone)."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from linkprobe.api import create_app
from linkprobe.cli import EXIT_USAGE, settle_heap
from linkprobe.settings import Settings
from linkprobe.store import StoreLocked, open_store

FLAGS = ("host", "port", "db", "redis_url", "workers", "allow_private", "concurrency")


def with_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    overrides = {flag: getattr(args, flag) for flag in FLAGS if getattr(args, flag, None) is not None}
    return settings.model_copy(
        update=Settings.model_validate({**settings.model_dump(), **overrides}).model_dump()
    )


def run_serve(args: argparse.Namespace, settings: Settings, embedded_worker: bool) -> int:
    settings = with_flags(settings, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = open_store(settings)
    try:
        store.lock()  # before the app starts: a second server on the same file changes nothing
    except StoreLocked as exc:
        print(f"linkprobe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    app = create_app(settings, store, embedded_worker=embedded_worker)
    settle_heap()
    uvicorn.run(app, host=settings.host, port=settings.port, loop="uvloop", log_level="info")
    return 0
