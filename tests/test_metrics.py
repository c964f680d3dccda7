"""Prometheus exposition of what the workers observed, and /metrics of a real service."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from linkprobe.engine import ErrorKind, ProbeResult, failed
from linkprobe.metrics import Metrics
from tests.api.test_tasks import submit, wait_status
from tests.conftest import Target, start_service, wait_for


def test_outcomes_and_cumulative_duration_buckets() -> None:
    metrics = Metrics()
    metrics.observe(
        [
            ProbeResult(url="http://a.example/", index=0, ok=True, status_code=200, elapsed_ms=30.0),
            ProbeResult(url="http://b.example/", index=1, status_code=404, elapsed_ms=5000.0),
            failed("http://c.invalid/", 2, ErrorKind.DNS, "no such host"),
            failed("mailto:a@b.example", 4, ErrorKind.UNSUPPORTED, "not http"),
        ]
    )
    metrics.observe(
        [ProbeResult(url="http://a.example/", index=3, ok=True, status_code=200, elapsed_ms=70.0)]
    )
    lines = set(metrics.render({"tasks": {"ready": 1}, "queued_chunks": 2}).decode().splitlines())
    assert {
        'linkprobe_urls_probed_total{error_kind="",outcome="ok"} 2.0',
        'linkprobe_urls_probed_total{error_kind="",outcome="broken"} 1.0',
        'linkprobe_urls_probed_total{error_kind="dns",outcome="broken"} 1.0',
        'linkprobe_urls_probed_total{error_kind="unsupported",outcome="unsupported"} 1.0',
        'linkprobe_probe_duration_seconds_bucket{le="0.01"} 2.0',  # the two failures, never timed
        'linkprobe_probe_duration_seconds_bucket{le="0.05"} 3.0',
        'linkprobe_probe_duration_seconds_bucket{le="0.1"} 4.0',
        'linkprobe_probe_duration_seconds_bucket{le="5.0"} 5.0',  # le: 5.0 s lands in its own bucket
        'linkprobe_probe_duration_seconds_bucket{le="+Inf"} 5.0',
        "linkprobe_probe_duration_seconds_count 5.0",
        'linkprobe_tasks{status="ready"} 1.0',
        "linkprobe_queued_chunks 2.0",
    } <= lines
    total = next(line for line in lines if line.startswith("linkprobe_probe_duration_seconds_sum "))
    assert abs(float(total.split()[1]) - 5.1) < 1e-9


# -- /metrics of a real service -------------------------------------------------------------------

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    text = (await client.get("/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_the_work_a_service_did(tmp_path: Path, target: Target) -> None:
    service = await start_service(tmp_path, "serve", "--db", str(tmp_path / "m.db"))
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            idle = await scrape(client)
            task = await submit(client, [target.url("/status/200")] * 2 + [target.url("/status/404"), "nope"])
            await wait_status(client, task["id"])
            # Counted in serve's worker processes, which publish their counts every second.
            seen: list[Samples] = []

            async def counted() -> bool:
                seen.append(await scrape(client))
                return value(seen[-1], "linkprobe_probe_duration_seconds_count") >= 4

            await wait_for(counted, "the worker processes' counts", 10)
            busy = seen[-1]
    finally:
        await service.stop()
    count = "linkprobe_probe_duration_seconds_count"
    assert value(idle, count) == 0 and value(idle, "linkprobe_tasks", status="ready") == 0
    probed = "linkprobe_urls_probed_total"
    assert value(busy, probed, outcome="ok", error_kind="") == 2
    assert value(busy, probed, outcome="broken", error_kind="") == 1
    assert value(busy, probed, outcome="broken", error_kind="invalid_url") == 1
    assert value(busy, count) == 4 and value(busy, "linkprobe_probe_duration_seconds_sum") > 0
    assert value(busy, "linkprobe_probe_duration_seconds_bucket", le="+Inf") == 4
    assert value(busy, "linkprobe_tasks", status="ready") == 1
    assert value(busy, "linkprobe_queued_chunks") == 0


async def test_metrics_count_queued_chunks_and_pending_tasks(tmp_path: Path, target: Target) -> None:
    # `linkprobe api` has no workers: what is submitted stays queued
    env = {"LINKPROBE_CHUNK_SIZE": "1"}
    service = await start_service(tmp_path, "api", "--db", str(tmp_path / "q.db"), env=env, name="api")
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            assert value(await scrape(client), "linkprobe_queued_chunks") == 0
            await submit(client, [target.url("/status/200")] * 3)
            queued = await scrape(client)
    finally:
        await service.stop()
    assert value(queued, "linkprobe_queued_chunks") == 3
    assert value(queued, "linkprobe_tasks", status="pending") == 1
