"""`check --cache FILE --max-age DURATION`: results of earlier runs reused without probing.

The file holds one JSON result a line (the result's own form, with its `checked_at`, and the
digest of the options it was probed with). A URL is not probed again when the file has an ok
result for it, probed with the same options (probe options and egress policy) no longer than
max-age ago; its result says so (`cached_from`: the file) and keeps its original `checked_at`.
Broken results are never reused: a broken link is probed again on every run, so a fix shows at
once and `--fail-on` judges what is true now. After the run the file holds this run's ok results
and the earlier entries of other URLs still within max-age. A run with -H/--header is refused
(refuse_secrets): header values never go into the file, not even as a digest.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from linkprobe.cli import UsageError
from linkprobe.engine import EngineConfig, ProbeOptions, ProbeResult
from linkprobe.engine.options import SECRET_OPTIONS
from linkprobe.engine.outcome import Outcome

DEFAULT_MAX_AGE = "1d"
# Fields of the options that cannot change a verdict: how many URLs are in flight at once.
_NOT_VERDICT = frozenset({"concurrency"})


def duration(text: str) -> float:
    """Seconds of a duration (linkprobe/durations.py): `90s`, `30m`, `12h`, `1d`, `1h30m`."""
    from linkprobe.durations import HELP, seconds

    found = seconds(text)
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: {HELP}")
    return float(found)


def add_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("result cache")
    group.add_argument(
        "--cache", metavar="FILE",
        help="reuse ok results of earlier runs kept in FILE (created if missing), and keep this run's",
    )  # fmt: skip
    group.add_argument(
        "--max-age", type=duration, metavar="DURATION",
        help="reuse results probed at most this long ago: 90s, 30m, 12h, 1d, 1h30m "
        f"(default {DEFAULT_MAX_AGE})",
    )  # fmt: skip


def refuse_secrets(options: ProbeOptions) -> None:
    """No cache for a run with secret options (-H/--header): their values are often credentials,
    a digest of a short one can be reversed offline from a shared cache file, and without the
    values in the key a result probed with one credential would be reused under another."""
    if any(getattr(options, name) for name in SECRET_OPTIONS):
        raise UsageError(
            "--cache cannot be used with -H/--header: header values can be credentials and never "
            "go into the cache file, so results probed with them are not cached"
        )


def fingerprint(options: ProbeOptions, config: EngineConfig) -> str:
    """A digest of what can change a verdict: the probe options and the egress policy. Secret
    values never enter it (redacted: names only; refuse_secrets keeps them out of cached runs)."""
    import hashlib
    import json

    shown = options.redacted()
    probe = {f.name: getattr(shown, f.name) for f in dataclasses.fields(shown) if f.name not in _NOT_VERDICT}
    egress = {"allow_private": config.allow_private, "allow_cidrs": sorted(config.allow_cidrs)}
    text = json.dumps({"probe": probe, "egress": egress}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Cache:
    def __init__(self, path: Path, max_age_s: float, key: str) -> None:
        self.path, self.max_age_s, self.key = path, max_age_s, key
        self.now = datetime.now(UTC)
        self.entries: dict[str, dict[str, Any]] = {}  # URL -> its result's to_dict() and "options"
        self.taken: set[str] = set()  # URLs whose cached result this run reuses
        if not path.parent.is_dir():  # said before probing, not after
            raise UsageError(f"cannot write --cache {path}: {path.parent} is not a folder")
        self._load()

    def _load(self) -> None:
        import json

        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return  # the first run
        except OSError as exc:
            raise UsageError(f"cannot read --cache {self.path}: {exc.strerror or exc}") from None
        skipped = 0
        for line in filter(str.strip, lines):
            try:
                entry = json.loads(line)
                entry["age_s"] = (self.now - datetime.fromisoformat(entry["checked_at"])).total_seconds()
                self.entries[entry["url"]] = entry
            except (ValueError, KeyError, TypeError):
                skipped += 1
        if skipped:
            print(f"linkprobe: --cache {self.path}: {skipped} unreadable line(s) ignored", file=sys.stderr)

    def fresh(self, entry: dict[str, Any]) -> bool:
        return bool(0 <= entry["age_s"] <= self.max_age_s)

    def take(self, url: str, index: int) -> ProbeResult | None:
        """The cached result of `url`, as the run's result at `index`; None when it must be probed."""
        entry = self.entries.get(url)
        if entry is None or entry.get("options") != self.key or not self.fresh(entry):
            return None
        result = ProbeResult.from_dict(entry)
        if result.outcome is not Outcome.OK:
            return None
        result.index = index
        self.taken.add(url)
        return result

    def record(self, result: ProbeResult) -> None:
        """Keep this run's ok result for the next; a broken one drops the URL's entry. A reused
        result keeps its entry as it was: its age runs from when it was probed."""
        if result.url in self.taken:
            return
        if result.outcome is Outcome.OK:
            entry = {**result.to_dict(), "options": self.key, "age_s": 0.0}
            self.entries[result.url] = entry
        elif result.outcome is Outcome.BROKEN:
            self.entries.pop(result.url, None)

    def save(self) -> None:
        """Write the entries still within max-age (atomically: a reader never sees half a file)."""
        import json
        import os

        kept = (
            json.dumps({k: v for k, v in entry.items() if k != "age_s"})
            for entry in self.entries.values()
            if self.fresh(entry)
        )
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise UsageError(f"cannot write --cache {self.path}: {exc.strerror or exc}") from None
