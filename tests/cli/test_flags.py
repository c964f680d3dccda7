"""Flags reach the one Settings object the commands are built from."""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path
from typing import Any

import pytest

from linkprobe.cli import FLAG_OF, build_parser, main, settle_heap
from linkprobe.cli.check import probe_options
from linkprobe.cli.serve import with_flags
from linkprobe.engine import EngineConfig, ProbeOptions
from linkprobe.engine.options import number_text, rule_of
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


def help_of(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`linkprobe <command> --help` as one line (argparse wraps it at the terminal's width)."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def declared_words(item: dataclasses.Field[Any]) -> list[str]:
    """How help must state an option's default and bounds, taken from its declaration."""
    found = rule_of(item)
    default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
    words = [f"default {number_text(default) if isinstance(default, int | float) else default}"]
    bounds = (("at least", found.ge), ("above", found.gt), ("at most", found.le))
    words += [f"{word} {number_text(bound)}" for word, bound in bounds if bound is not None]
    return words


@pytest.mark.parametrize("command", ["check", "crawl"])
def test_help_shows_each_options_declared_default_and_bounds(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = help_of(command, capsys)
    flagged = [
        *dataclasses.fields(EngineConfig),
        *(item for item in dataclasses.fields(ProbeOptions) if item.name not in ("concurrency", "max_age")),
    ]
    for item in flagged:
        if item.type in (int, float):
            flag = "--" + item.name.replace("_", "-")
            text = shown.split(f" {flag} {item.name.upper()} ", 1)[1].split(" --", 1)[0]
            assert all(word in text for word in declared_words(item)), (flag, text)
            assert str(rule_of(item).doc).rstrip(".") in text


def test_every_numeric_option_has_a_flag_that_sets_it() -> None:
    numeric = [
        f.name for f in dataclasses.fields(ProbeOptions) if f.type in (int, float) and f.name not in FLAG_OF
    ]
    argv = [f"--{name.replace('_', '-')}={n + 1}" for n, name in enumerate(numeric)]
    args = build_parser().parse_args(["check", *argv, "https://example.com/"])
    assert probe_options(args) == ProbeOptions.of({name: n + 1 for n, name in enumerate(numeric)})


def test_the_readmes_table_of_flags_shows_the_declared_defaults() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for item in [*dataclasses.fields(EngineConfig), *dataclasses.fields(ProbeOptions)]:
        if item.name in FLAG_OF:  # a flag of its own (check's --max-age: its cache file's)
            continue
        if isinstance(default := item.default, int | float) and not isinstance(default, bool):
            flag = f"| `--{item.name.replace('_', '-')}`"
            row = next(line for line in readme.splitlines() if line.startswith(flag))
            assert row.split("|")[2].strip() == number_text(default), row
