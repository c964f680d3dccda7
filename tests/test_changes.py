"""The change classifier (linkprobe/changes.py): one result against another, and the merge of
two runs sorted by URL that holds one item of each at a time."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from linkprobe.changes import Change, Seen, change, counts, merge
from linkprobe.engine.outcome import ErrorKind, Hop, Outcome, ProbeError, ProbeResult

URL = "https://example.com/a"


def seen(outcome: Outcome = Outcome.OK, status: int | None = 200, final: str | None = URL) -> Seen:
    return Seen(URL, outcome, status, final)


def failed(kind: ErrorKind, outcome: Outcome = Outcome.BROKEN) -> Seen:
    return Seen(URL, outcome, None, None, kind)


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (None, seen(), Change.NEW),
        (seen(), None, Change.GONE),
        (seen(), seen(Outcome.BROKEN, 404), Change.BROKE),
        (seen(), failed(ErrorKind.CONNECT_REFUSED), Change.BROKE),
        (seen(Outcome.BROKEN, 500), seen(), Change.FIXED),
        (seen(), seen(final="https://example.com/b"), Change.CHANGED),  # now redirects elsewhere
        (seen(Outcome.BROKEN, 404), seen(Outcome.BROKEN, 410), Change.CHANGED),
        (failed(ErrorKind.DNS), failed(ErrorKind.TIMEOUT), Change.CHANGED),
        (failed(ErrorKind.CANCELLED, Outcome.CANCELLED), seen(Outcome.BROKEN, 404), Change.CHANGED),
        (seen(), failed(ErrorKind.UNSUPPORTED, Outcome.UNSUPPORTED), Change.CHANGED),
        (seen(), seen(), None),
        (seen(Outcome.BROKEN, 404), seen(Outcome.BROKEN, 404), None),
        (None, None, None),
    ],
)  # fmt: skip
def test_the_change_of_one_url(previous: Seen | None, current: Seen | None, expected: Change | None) -> None:
    assert change(previous, current) is expected


def test_seen_uses_the_one_outcome_classifier_on_results_and_their_json() -> None:
    results = [
        ProbeResult(
            URL, 0, ok=True, status_code=200, final_url="https://example.com/b", redirects=(Hop(301, "b"),)
        ),
        ProbeResult(URL, 1, status_code=404, final_url=URL),
        ProbeResult(URL, 2, error=ProbeError(ErrorKind.UNSUPPORTED, "mailto: links are not checked")),
        ProbeResult(URL, 3, error=ProbeError(ErrorKind.CANCELLED, "stopped")),
    ]
    for result in results:
        assert Seen.of(result) == Seen.of_dict(result.to_dict())
        assert Seen.of(result).outcome is result.outcome
    assert Seen.of(results[0]).text() == "ok 200 at https://example.com/b"
    assert Seen.of(results[2]).text() == "unsupported unsupported"


def run(*urls: str, outcome: Outcome = Outcome.OK) -> list[Seen]:
    return [Seen(url, outcome, 200, url) for url in urls]


def test_merge_pairs_urls_of_two_sorted_runs() -> None:
    previous = [*run("a", "b", "d"), Seen("e", Outcome.OK, 200, "e")]
    current = [*run("b", "c"), Seen("d", Outcome.BROKEN, 404, "d"), *run("e", "f")]
    merged = list(merge(previous, current))
    assert [(m.url, m.change) for m in merged] == [
        ("a", Change.GONE), ("b", None), ("c", Change.NEW),
        ("d", Change.BROKE), ("e", None), ("f", Change.NEW),
    ]  # fmt: skip
    assert counts(m.change for m in merged) == {"broke": 1, "fixed": 0, "changed": 0, "new": 2, "gone": 1}
    assert list(merge([], [])) == []


def endless(prefix: str) -> Iterator[Seen]:
    """A run with no end, in URL order: a merge that read ahead would never return."""
    for n in itertools.count():
        yield Seen(f"{prefix}{n:012d}", Outcome.OK, 200, None)


def test_merge_streams_holding_one_item_of_each_run() -> None:
    first = list(itertools.islice(merge(endless("u"), endless("u")), 3))
    assert [(m.url, m.change) for m in first] == [(f"u{n:012d}", None) for n in range(3)]
    pulled: list[str] = []

    def watched() -> Iterator[Seen]:
        for item in endless("v"):
            pulled.append(item.url)
            yield item

    merged = merge(watched(), iter(run("w")))
    assert all(m.change is Change.GONE for m in itertools.islice(merged, 5))
    assert len(pulled) == 5  # no read-ahead: one item of the run at a time


def test_merge_refuses_a_run_out_of_order() -> None:
    with pytest.raises(ValueError, match="previous run is not in ascending URL order: 'a' after 'b'"):
        list(merge(run("b", "a"), run("c")))
    with pytest.raises(ValueError, match="current run is not in ascending URL order"):
        list(merge(run("a"), run("a", "a")))
