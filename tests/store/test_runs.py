"""What the stores keep for links over time: a re-run's link to its first run, a task's input
URLs read back, its results in URL order (each URL once), and its change counts."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from linkprobe.changes import Seen
from linkprobe.engine import ProbeOptions, ProbeResult, failed
from linkprobe.engine.outcome import ErrorKind, Outcome
from linkprobe.store import NewTask, Store, byurl
from linkprobe.store import redis_schema as k
from linkprobe.store.base import Reused
from linkprobe.store.redis import RedisStore
from tests.store.test_contract import drain, results_of

# Out of URL order, one URL twice (its first result counts), outcomes as result_for gives them.
URLS = ["http://c.example/x", "http://a.example/ok", "http://b.example/missing", "http://a.example/ok",
        "http://d.example/ok"]  # fmt: skip


async def test_a_rerun_names_its_first_run_and_reads_its_inputs(store: Store) -> None:
    first, _ = await store.create_task(NewTask("nightly"), iter(URLS), chunk_size=2)
    again, _ = await store.create_task(NewTask("nightly", rerun_of=first.id), iter(URLS), chunk_size=2)
    assert (first.rerun_of, again.rerun_of) == (None, first.id)
    listed, _ = await store.list_tasks(None, None, 10)
    assert [task.rerun_of for task in listed] == [first.id, None]
    read = [url async for batch in store.input_urls(first.id) for url in batch]
    assert read == URLS


async def test_results_by_url_in_order_each_url_once(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=2)
    await drain(store)
    seen = [s async for s in store.seen_by_url(task.id)]
    assert seen == [
        Seen("http://a.example/ok", Outcome.OK, 200, "http://a.example/ok"),
        Seen("http://b.example/missing", Outcome.BROKEN, 404, "http://b.example/missing"),
        Seen("http://c.example/x", Outcome.BROKEN, None, None, ErrorKind.DNS),
        Seen("http://d.example/ok", Outcome.OK, 200, "http://d.example/ok"),
    ]
    after = [s.url async for s in store.seen_by_url(task.id, after="http://b.example/missing")]
    assert after == ["http://c.example/x", "http://d.example/ok"]


async def test_results_by_url_past_one_sorted_run(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis sorts externally: with runs of 7 rows, 60 URLs spill to 9 files merged back in order."""
    monkeypatch.setattr(byurl, "SORT_RUN", 7)
    urls = [f"http://h{(i * 37) % 60:02}.example/ok" for i in range(60)]
    task, _ = await store.create_task(NewTask(), iter(urls), chunk_size=8)
    await drain(store)
    assert [s.url async for s in store.seen_by_url(task.id)] == sorted(urls)


async def test_change_counts_kept_with_the_task(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=2)
    counts = {"since": "t0", "broke": 1, "fixed": 0, "changed": 2, "new": 0, "gone": 3}
    await store.set_changes(task.id, counts)
    got = await store.get_task(task.id)
    assert got is not None and got.changes == counts
    await store.delete_task(task.id)
    await store.set_changes(task.id, counts)  # a late write does not bring a deleted task back
    assert await store.get_task(task.id) is None


def probed(url: str, index: int, ago_s: float = 0.0) -> ProbeResult:
    at = datetime.now(UTC) - timedelta(seconds=ago_s)
    return ProbeResult(
        url=url, index=index, ok=True, status_code=200, final_url=url, attempts=1, checked_at=at
    )


async def test_results_reused_by_owner_and_options_within_max_age(store: Store) -> None:
    urls = ["http://a.example/", "http://b.example/", "http://c.example/", "http://d.example/"]
    options = ProbeOptions(max_age=60, timeout=5)
    first, _ = await store.create_task(NewTask(options=options, owner="k1"), iter(urls), chunk_size=10)
    old = probed(urls[1], 1, ago_s=120)
    cancelled = failed(urls[2], 2, ErrorKind.CANCELLED, "the task was cancelled")
    fresh = probed(urls[0], 0)
    reused = Reused(urls[2], 2, ok=True, status_code=200, attempts=1, cached_from="t0")  # not again
    broken = ProbeResult(urls[3], 3, status_code=404, final_url=urls[3], attempts=1)  # probed again
    await store.remember(first.id, [fresh, old, cancelled, reused, broken])

    again, _ = await store.create_task(
        NewTask(options=replace(options, max_age=1), owner="k1"), iter(urls), 10
    )
    hits = await store.cached(again.id, urls, 60)
    assert list(hits) == [urls[0]]  # not one probed too long ago, a cancelled, reused or broken one
    assert hits[urls[0]][0] == first.id
    assert ProbeResult.from_dict(json.loads(hits[urls[0]][1])).checked_at == fresh.checked_at
    assert list(await store.cached(again.id, urls, 200)) == urls[:2]
    assert await store.cached(first.id, urls, 60) == {}  # a task never reuses its own results

    other_owner, _ = await store.create_task(NewTask(options=options, owner="k2"), iter(urls), 10)
    other_options, _ = await store.create_task(
        NewTask(options=replace(options, timeout=9), owner="k1"), iter(urls), 10
    )
    assert await store.cached(other_owner.id, urls, 60) == {}
    assert await store.cached(other_options.id, urls, 60) == {}


async def test_a_deleted_tasks_results_are_not_reused(store: Store) -> None:
    urls = ["http://a.example/", "http://b.example/"]
    options = ProbeOptions(max_age=60)
    first, _ = await store.create_task(NewTask(options=options, owner="k1"), iter(urls), chunk_size=10)
    kept, _ = await store.create_task(NewTask(options=options, owner="k1"), iter(urls[1:]), chunk_size=10)
    await store.remember(first.id, [probed(urls[0], 0)])
    await store.remember(kept.id, [probed(urls[1], 0)])
    again, _ = await store.create_task(NewTask(options=options, owner="k1"), iter(urls), chunk_size=10)
    assert list(await store.cached(again.id, urls, 60)) == urls
    await store.delete_task(first.id)
    assert {url: task for url, (task, _) in (await store.cached(again.id, urls, 60)).items()} == {
        urls[1]: kept.id
    }


async def test_results_by_url_while_a_task_runs_then_from_its_index(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=2)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    await store.complete_chunk(chunk, results_of(chunk))  # c.example and a.example so far
    assert [s.url async for s in store.seen_by_url(task.id)] == ["http://a.example/ok", "http://c.example/x"]
    await drain(store)
    assert len([s async for s in store.seen_by_url(task.id)]) == 4
    if isinstance(store, RedisStore):  # an ended task's order is kept as an index, deleted with it
        assert await store.r.exists(k.by_url(task.id))
        await store.delete_task(task.id)
        assert not await store.r.exists(k.by_url(task.id))
