"""Prometheus metrics: URL outcomes and probe durations (counted by workers in this process),
tasks by status and queued chunks (read from the store at scrape time)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from linkprobe.engine import ProbeResult
from linkprobe.report import verdict


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.probed = Counter(
            "linkprobe_urls_probed", "URLs probed by outcome (ok, broken or an error kind)", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "linkprobe_probe_duration_seconds", "Time to probe one URL, retries included",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=self.registry,
        )  # fmt: skip
        self.tasks = Gauge("linkprobe_tasks", "Tasks by status", ["status"], registry=self.registry)
        self.queued = Gauge("linkprobe_queued_chunks", "Chunks waiting for a worker", registry=self.registry)

    def observe(self, results: list[ProbeResult]) -> None:
        for result in results:
            self.probed.labels(verdict(result)).inc()
            self.duration.observe(result.elapsed_ms / 1000)

    def render(self, stats: dict[str, Any]) -> bytes:
        for status in ("pending", "running", "ready", "error", "cancelled"):
            self.tasks.labels(status).set(stats["tasks"].get(status, 0))
        self.queued.set(stats["queued_chunks"])
        return generate_latest(self.registry)
