"""`check --baseline FILE`: each URL's change since a previous run, and `--fail-on`, which broken
URLs fail the run. The rule of a change is the library's (linkprobe/changes.py)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from linkprobe.changes import Change, Compared, Seen, compared
from linkprobe.cli import UsageError
from linkprobe.engine.outcome import Outcome, ProbeResult

# --fail-on: which broken URLs make the exit code 2. `broken`: every one (the default); the others
# by their change since the baseline.
FAIL_ON = ("broken", Change.BROKE.value, Change.NEW.value, Change.CHANGED.value)
EVERY_BROKEN = frozenset({"broken"})


def fail_on(value: str) -> frozenset[str]:
    chosen = frozenset(part.strip() for part in value.split(",") if part.strip())
    if not chosen or not chosen <= set(FAIL_ON):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(FAIL_ON)}")
    return chosen


def add_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("changes since a previous run")
    group.add_argument(
        "--baseline", metavar="FILE",
        help="a previous -f json or ndjson output (or the API's results): report each URL's change since it "
        "(broke, fixed, changed, new, gone)",
    )  # fmt: skip
    group.add_argument(
        "--fail-on", type=fail_on, default=EVERY_BROKEN, metavar="LIST",
        help="which broken URLs exit 2: broken (every one, the default), or by their change since "
        "--baseline: broke (was ok), new (not in the baseline), changed (broken before, otherwise); "
        "comma-separated, e.g. broke,new",
    )  # fmt: skip


def records(path: Path) -> Iterator[dict[str, Any]]:
    """The results of a -f json (an array) or -f ndjson (a result a line) output, or of a page of
    the API's results (`{"items": [...]}`)."""
    import json

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        first = " (a first run: write one with -f json -o FILE)" if isinstance(exc, FileNotFoundError) else ""
        raise UsageError(f"cannot read --baseline {path}: {exc.strerror or exc}{first}") from None
    try:
        rows = _rows(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--baseline {path} is not JSON or NDJSON output of check: {exc}") from None
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("url"), str):
            raise UsageError(f"--baseline {path}: every result needs a url (got {str(row)[:80]})")
        yield row


def _rows(text: str) -> list[Any]:
    import json

    if text.lstrip().startswith("["):
        return list(json.loads(text))
    if '"items"' in text[:4096]:  # a page of the API's results (JSON of one object), or NDJSON after all
        try:
            page = json.loads(text)
        except json.JSONDecodeError:
            page = None
        if isinstance(page, dict) and isinstance(page.get("items"), list):
            return list(page["items"])
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Baseline:
    """A previous run, URL -> what it saw, and the comparisons made so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.previous: dict[str, Seen] = {}
        for row in records(path):
            if row.get("change") == Change.GONE:  # a URL the baseline's own baseline had
                continue
            try:
                self.previous.setdefault(row["url"], Seen.of_dict(row))
            except (KeyError, TypeError, ValueError) as exc:
                raise UsageError(
                    f"--baseline {path}: not a result of check: {str(row)[:80]} ({exc})"
                ) from None
        self.compared: dict[str, Compared] = {}

    def compare(self, result: ProbeResult) -> Compared:
        found = self.compared[result.url] = compared(self.previous.get(result.url), Seen.of(result))
        return found

    def gone(self) -> list[Compared]:
        return [compared(seen, None) for url, seen in self.previous.items() if url not in self.compared]

    def every(self) -> dict[str, Compared]:
        """Every URL of both runs: this run's in the order compared, then those gone."""
        return {**self.compared, **{c.url: c for c in self.gone()}}


def failing(result: ProbeResult, change: Change | None, chosen: frozenset[str]) -> bool:
    """Whether this result fails the run under --fail-on."""
    if result.outcome is not Outcome.BROKEN:
        return False
    return "broken" in chosen or (change is not None and change.value in chosen)
