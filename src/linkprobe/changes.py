"""What changed for a URL between two runs: one rule for the CLI's --baseline and the service.

A run's result is reduced to what a change is judged on (`Seen`: the outcome by the one
classifier, `ProbeResult.outcome`, the status code, the final URL after redirects and the error
kind). Between a previous and a current `Seen` of the same URL the change is:

- `broke`: was ok, now broken; `fixed`: was broken, now ok;
- `changed`: anything else that differs (status code, final URL, error kind, or an outcome that
  is neither ok nor broken: unsupported, cancelled);
- `new`: only in the current run; `gone`: only in the previous one;
- None: unchanged.

`merge` compares two runs given as streams sorted by URL, holding one item of each at a time, so
two runs of any size are compared in constant memory (a store pages both in URL order).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from linkprobe.engine.outcome import ErrorKind, Outcome, ProbeResult, classify


class Change(StrEnum):
    BROKE = "broke"
    FIXED = "fixed"
    CHANGED = "changed"
    NEW = "new"
    GONE = "gone"


CHANGES = tuple(c.value for c in Change)


@dataclass(frozen=True, slots=True)
class Seen:
    """What one run saw of a URL, as far as changes go."""

    url: str
    outcome: Outcome
    status_code: int | None = None
    final_url: str | None = None
    error_kind: ErrorKind | None = None

    @classmethod
    def of(cls, result: ProbeResult) -> Seen:
        kind = None if result.error is None else result.error.kind
        return cls(result.url, result.outcome, result.status_code, result.final_url, kind)

    @classmethod
    def of_dict(cls, data: Mapping[str, Any]) -> Seen:
        """From a result's to_dict() form (a stored result, a line of `check -f json|ndjson`)."""
        error = data.get("error")
        kind = None if not error else ErrorKind(error["kind"])
        outcome = classify(bool(data.get("ok")), kind)
        return cls(data["url"], outcome, data.get("status_code"), data.get("final_url"), kind)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "status_code": self.status_code,
            "final_url": self.final_url,
            "error_kind": None if self.error_kind is None else self.error_kind.value,
        }

    def text(self) -> str:
        """`ok 200`, `broken 404`, `broken connect_refused`, `ok 200 at URL` (after redirects)."""
        what = self.error_kind.value if self.error_kind is not None else str(self.status_code or "-")
        moved = f" at {self.final_url}" if self.final_url and self.final_url != self.url else ""
        return f"{self.outcome.value} {what}{moved}"


def change(previous: Seen | None, current: Seen | None) -> Change | None:
    """The change of one URL between two runs; None when it is unchanged (or in neither)."""
    if previous is None:
        return None if current is None else Change.NEW
    if current is None:
        return Change.GONE
    was, now = previous.outcome, current.outcome
    if was is Outcome.OK and now is Outcome.BROKEN:
        return Change.BROKE
    if was is Outcome.BROKEN and now is Outcome.OK:
        return Change.FIXED
    if (was, previous.status_code, previous.final_url, previous.error_kind) != (
        now, current.status_code, current.final_url, current.error_kind,
    ):  # fmt: skip
        return Change.CHANGED
    return None


@dataclass(frozen=True, slots=True)
class Compared:
    """One URL of two runs: what each saw (None: not in that run) and the change."""

    url: str
    previous: Seen | None
    current: Seen | None
    change: Change | None


def compared(previous: Seen | None, current: Seen | None) -> Compared:
    seen = current if current is not None else previous
    assert seen is not None, "a URL is in one run at least"
    return Compared(seen.url, previous, current, change(previous, current))


def merge(previous: Iterable[Seen], current: Iterable[Seen]) -> Iterator[Compared]:
    """Every URL of two runs, each given in ascending URL order (each URL once), compared.

    Holds one item of each stream at a time. A stream out of order is a ValueError: a merge of
    unsorted input would report URLs as both new and gone.
    """
    olds, news = iter(previous), iter(current)
    old, new = next(olds, None), next(news, None)
    last_old: str | None = None
    last_new: str | None = None
    while old is not None or new is not None:
        if new is None or (old is not None and old.url < new.url):
            assert old is not None
            last_old = _ordered(last_old, old.url, "previous")
            yield compared(old, None)
            old = next(olds, None)
        elif old is None or new.url < old.url:
            last_new = _ordered(last_new, new.url, "current")
            yield compared(None, new)
            new = next(news, None)
        else:
            last_old = _ordered(last_old, old.url, "previous")
            last_new = _ordered(last_new, new.url, "current")
            yield compared(old, new)
            old, new = next(olds, None), next(news, None)


def _ordered(last: str | None, url: str, which: str) -> str:
    if last is not None and url <= last:
        raise ValueError(f"the {which} run is not in ascending URL order: {url!r} after {last!r}")
    return url


def counts(changes: Iterable[Change | None]) -> dict[str, int]:
    """How many URLs of each change (every change word, 0 included; unchanged ones not counted)."""
    tally = dict.fromkeys(CHANGES, 0)
    for each in changes:
        if each is not None:
            tally[each.value] += 1
    return tally
