"""The exit codes are one enum (cli/exits.py): `check --help` and the README's table list them
from it, and the commands return its members."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from linkprobe.cli.exits import ExitCode

README = Path(__file__).parents[2] / "README.md"


def readme_table() -> list[tuple[str, str]]:
    text = README.read_text()
    start = text.index("| exit code | meaning |")
    rows = text[start : text.index("\n\n", start)].splitlines()[2:]
    return [tuple(cell.strip() for cell in row.strip("|").split(" | ", 1)) for row in rows]  # type: ignore[misc]


def test_the_readme_lists_every_exit_code_as_declared() -> None:
    assert readme_table() == [(str(code.value), code.meaning) for code in ExitCode]


def test_check_help_lists_every_exit_code() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "linkprobe", "check", "--help"], capture_output=True, text=True, check=True
    ).stdout
    section = " ".join(help_text[help_text.index("exit codes:") : help_text.index("examples:")].split())
    for code in ExitCode:
        assert f"{code.value} {code.meaning}" in section


def test_a_usage_error_exits_with_the_usage_code() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "linkprobe", "check", "--no-such-flag", "x"], check=False, capture_output=True
    )
    assert done.returncode == ExitCode.USAGE.value == 3
