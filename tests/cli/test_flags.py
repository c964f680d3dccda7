"""Flags reach the one Settings object the commands are built from."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from linkprobe.cli import build_parser, settle_heap
from linkprobe.cli.serve import with_flags
from linkprobe.settings import Settings


def test_worker_flags_override_settings() -> None:
    args = build_parser().parse_args(
        [
            "worker",
            "--redis-url",
            "redis://r:6379/1",
            "--processes",
            "3",
            "--concurrency",
            "32",
            "--workers",
            "6",
        ]
    )
    settings = with_flags(Settings(), args)
    assert (settings.redis_url, settings.concurrency, settings.workers) == ("redis://r:6379/1", 32, 6)
    assert args.processes == 3 and settings.engine_config().concurrency == 32


def test_serve_flags_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LINKPROBE_PORT", "9001")
    monkeypatch.setenv("LINKPROBE_ALLOW_CIDRS", "10.0.0.0/8, 192.168.0.0/16")
    args = build_parser().parse_args(["serve", "--db", str(tmp_path / "x.db"), "--host", "0.0.0.0"])
    settings = with_flags(Settings(), args)
    assert (settings.port, settings.host, settings.db) == (9001, "0.0.0.0", tmp_path / "x.db")
    assert settings.engine_config().allow_cidrs == ("10.0.0.0/8", "192.168.0.0/16")


def test_settle_heap_freezes_start_up_objects_and_widens_the_young_generation() -> None:
    threshold = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 1000  # the imported modules and classes
        assert gc.get_threshold() == (50_000, 20, 100)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
