"""Prometheus metrics: URL outcomes and probe durations (counted by workers in this process),
tasks by status and queued chunks (read from the store at scrape time)."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from linkprobe.engine import ProbeResult
from linkprobe.report import verdict

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ProbeCounts(Collector):
    """Outcomes and durations as plain counters, turned into metric families at scrape time.

    prometheus_client's Counter and Histogram take a lock and look up a label child for every
    observation; workers record thousands of results a second on the event loop thread, so
    they add to plain integers here and the scrape does the rest.
    """

    def __init__(self) -> None:
        self.outcomes: Tally[str] = Tally()
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)  # the last one is +Inf
        self.seconds = 0.0

    def observe(self, results: list[ProbeResult]) -> None:
        self.outcomes.update(verdict(r) for r in results)
        for result in results:
            seconds = result.elapsed_ms / 1000
            self.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
            self.seconds += seconds

    def collect(self) -> Iterator[Metric]:
        probed = CounterMetricFamily(
            "linkprobe_urls_probed",
            "URLs probed by outcome (ok, broken or an error kind)",
            labels=["outcome"],
        )
        for outcome, count in sorted(self.outcomes.items()):
            probed.add_metric([outcome], count)
        yield probed
        cumulative, running = [], 0
        for bound, count in zip((*map(str, DURATION_BUCKETS), "+Inf"), self.buckets, strict=True):
            running += count
            cumulative.append((bound, running))
        yield HistogramMetricFamily(
            "linkprobe_probe_duration_seconds", "Time to probe one URL, retries included",
            buckets=cumulative, sum_value=self.seconds,
        )  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.probes = ProbeCounts()
        self.registry.register(self.probes)
        self.tasks = Gauge("linkprobe_tasks", "Tasks by status", ["status"], registry=self.registry)
        self.queued = Gauge("linkprobe_queued_chunks", "Chunks waiting for a worker", registry=self.registry)
        self.given_up = Counter(
            "linkprobe_chunks_given_up", "Chunks given up by a worker: no result for longer than a probe "
            "can take (redelivered after their lease)", registry=self.registry,
        )  # fmt: skip

    def observe(self, results: list[ProbeResult]) -> None:
        self.probes.observe(results)

    def render(self, stats: dict[str, Any]) -> bytes:
        for status in ("pending", "running", "ready", "error", "cancelled"):
            self.tasks.labels(status).set(stats["tasks"].get(status, 0))
        self.queued.set(stats["queued_chunks"])
        return generate_latest(self.registry)
