"""Prometheus exposition of what the workers observed."""

from __future__ import annotations

from linkprobe.engine import ErrorKind, ProbeResult, failed
from linkprobe.metrics import Metrics


def test_outcomes_and_cumulative_duration_buckets() -> None:
    metrics = Metrics()
    metrics.observe(
        [
            ProbeResult(url="http://a.example/", index=0, ok=True, status_code=200, elapsed_ms=30.0),
            ProbeResult(url="http://b.example/", index=1, status_code=404, elapsed_ms=5000.0),
            failed("http://c.invalid/", 2, ErrorKind.DNS, "no such host"),
        ]
    )
    metrics.observe(
        [ProbeResult(url="http://a.example/", index=3, ok=True, status_code=200, elapsed_ms=70.0)]
    )
    lines = set(metrics.render({"tasks": {"ready": 1}, "queued_chunks": 2}).decode().splitlines())
    assert {
        'linkprobe_urls_probed_total{outcome="ok"} 2.0',
        'linkprobe_urls_probed_total{outcome="broken"} 1.0',
        'linkprobe_urls_probed_total{outcome="dns"} 1.0',
        'linkprobe_probe_duration_seconds_bucket{le="0.01"} 1.0',  # the DNS failure, never timed
        'linkprobe_probe_duration_seconds_bucket{le="0.05"} 2.0',
        'linkprobe_probe_duration_seconds_bucket{le="0.1"} 3.0',
        'linkprobe_probe_duration_seconds_bucket{le="5.0"} 4.0',  # le: 5.0 s lands in its own bucket
        'linkprobe_probe_duration_seconds_bucket{le="+Inf"} 4.0',
        "linkprobe_probe_duration_seconds_count 4.0",
        'linkprobe_tasks{status="ready"} 1.0',
        "linkprobe_queued_chunks 2.0",
    } <= lines
    total = next(line for line in lines if line.startswith("linkprobe_probe_duration_seconds_sum "))
    assert abs(float(total.split()[1]) - 5.1) < 1e-9
