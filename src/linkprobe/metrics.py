"""Prometheus metrics: URL outcomes, probe durations and chunks given up (counted by workers in
this process, and by the worker processes of `linkprobe serve`, which publish their counts to
files the API sums at scrape time), tasks by status and queued chunks (read from the store)."""

from __future__ import annotations

import contextlib
import json
import os
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from linkprobe.engine import ProbeResult
from linkprobe.store.base import TaskStatus

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def outcome_label(result: ProbeResult) -> str:
    """ "<outcome> <error kind>" (the kind empty when there is none): the outcome word is the one
    classifier's (ProbeResult.outcome); kept as one string so the counts publish as JSON."""
    return f"{result.outcome.value} {result.error.kind.value if result.error else ''}"


class ProbeCounts(Collector):
    """Outcomes and durations as plain counters, turned into metric families at scrape time.

    prometheus_client's Counter and Histogram take a lock and look up a label child for every
    observation; workers record thousands of results a second on the event loop thread, so
    they add to plain integers here and the scrape does the rest.
    """

    def __init__(self, shared: Path | None = None) -> None:
        self.outcomes: Tally[str] = Tally()
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)  # the last one is +Inf
        self.seconds = 0.0
        self.given_up = 0
        self.shared = shared  # where worker processes publish their counts (linkprobe serve)

    def snapshot(self) -> dict[str, Any]:
        return {"outcomes": dict(self.outcomes), "buckets": self.buckets, "seconds": self.seconds,
                "given_up": self.given_up}  # fmt: skip

    def _totals(self) -> ProbeCounts:
        """These counts and those the worker processes published."""
        if self.shared is None:
            return self
        total = ProbeCounts()
        for snapshot in [self.snapshot(), *(s["counts"] for s in published(self.shared))]:
            total.outcomes.update(snapshot["outcomes"])
            total.buckets = [a + b for a, b in zip(total.buckets, snapshot["buckets"], strict=True)]
            total.seconds += snapshot["seconds"]
            total.given_up += snapshot["given_up"]
        return total

    def observe(self, results: list[ProbeResult]) -> None:
        self.outcomes.update(outcome_label(r) for r in results)
        for result in results:
            seconds = result.elapsed_ms / 1000
            self.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
            self.seconds += seconds

    def collect(self) -> Iterator[Metric]:
        totals = self._totals()  # the sums of every process, read as one
        probed = CounterMetricFamily(
            "linkprobe_urls_probed",
            "URLs probed by outcome (ok, broken, unsupported, cancelled) and error kind",
            labels=["outcome", "error_kind"],
        )
        for label, count in sorted(totals.outcomes.items()):
            probed.add_metric(label.split(" "), count)
        yield probed
        cumulative, running = [], 0
        for bound, count in zip((*map(str, DURATION_BUCKETS), "+Inf"), totals.buckets, strict=True):
            running += count
            cumulative.append((bound, running))
        yield HistogramMetricFamily(
            "linkprobe_probe_duration_seconds", "Time to probe one URL, retries included",
            buckets=cumulative, sum_value=totals.seconds,
        )  # fmt: skip
        yield CounterMetricFamily(
            "linkprobe_chunks_given_up", "Chunks given up by a worker: no result for longer than a "
            "probe can take (redelivered after their lease)", value=totals.given_up,
        )  # fmt: skip


def published(directory: Path) -> list[dict[str, Any]]:
    """What the worker processes published (metrics.Metrics.publish): counts and problems."""
    found = []
    for path in directory.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):  # a process gone, or a file mid-rename
            found.append(json.loads(path.read_text()))
    return found


class Metrics:
    def __init__(self, shared: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        self.probes = ProbeCounts(shared)
        self.registry.register(self.probes)
        self.tasks = Gauge("linkprobe_tasks", "Tasks by status", ["status"], registry=self.registry)
        self.queued = Gauge("linkprobe_queued_chunks", "Chunks waiting for a worker", registry=self.registry)

    def observe(self, results: list[ProbeResult]) -> None:
        self.probes.observe(results)

    def gave_up(self) -> None:
        self.probes.given_up += 1

    def publish(self, path: Path, problem: str | None) -> None:
        """Write this process's counts and problem for the API's process (a rename: never torn)."""
        draft = path.with_suffix(".draft")
        draft.write_text(json.dumps({"counts": self.probes.snapshot(), "problem": problem}))
        os.replace(draft, path)

    def render(self, stats: dict[str, Any]) -> bytes:
        for status in TaskStatus:
            self.tasks.labels(status.value).set(stats["tasks"].get(status.value, 0))
        self.queued.set(stats["queued_chunks"])
        return generate_latest(self.registry)
