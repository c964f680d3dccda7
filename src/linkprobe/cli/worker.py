"""`linkprobe worker`: probing processes that take chunks from Redis (worker.child_process).

With `--processes N` the parent starts N children and forwards SIGTERM/SIGINT to them.
"""

from __future__ import annotations

import argparse
import signal

from linkprobe.cli.serve import with_flags
from linkprobe.engine import ConfigError
from linkprobe.settings import Settings
from linkprobe.worker import child_process, start_processes


def run_workers(args: argparse.Namespace, settings: Settings) -> int:
    settings = with_flags(settings, args)
    if not settings.redis_url:
        raise ConfigError("linkprobe worker needs Redis: --redis-url or LINKPROBE_REDIS_URL "
                          "(with the embedded store, linkprobe serve runs the workers)")  # fmt: skip
    if args.processes <= 1:
        child_process(settings)
        return 0
    children = start_processes(settings, args.processes)

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                child.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
    return 0 if all(child.exitcode == 0 for child in children) else 1
