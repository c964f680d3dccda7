"""The store contract: every Store implementation must pass this suite unchanged."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable

import pytest

from linkprobe.engine import ErrorKind, ProbeError, ProbeOptions, ProbeResult, failed
from linkprobe.engine.outcome import Hop
from linkprobe.store import Chunk, IdempotencyConflict, NewTask, ResultFilter, Store, TaskStatus
from linkprobe.store.base import LATENCY_BOUNDS_MS
from tests.conftest import MAX_DELIVERIES, RECLAIM_S, wait_for

Reopen = Callable[[Store], Awaitable[Store]]


def result_for(chunk: Chunk, offset: int, url: str) -> ProbeResult:
    """A deterministic outcome per URL: '/ok' 200, '/missing' 404, anything else a DNS error."""
    index = chunk.positions[offset]
    if url.endswith("/ok"):
        return ProbeResult(url=url, index=index, ok=True, status_code=200, final_url=url, attempts=1)
    if url.endswith("/missing"):
        return ProbeResult(url=url, index=index, status_code=404, final_url=url, attempts=1)
    return failed(url, index, ErrorKind.DNS, "no such host")


def results_of(chunk: Chunk) -> list[ProbeResult]:
    return [result_for(chunk, i, url) for i, url in enumerate(chunk.urls)]


URLS = [f"http://h{i}.example/{'ok' if i % 3 == 0 else 'missing' if i % 3 == 1 else 'x'}" for i in range(10)]


async def drain(store: Store) -> int:
    chunks = 0
    while (chunk := await store.claim_chunk("w")) is not None:
        await store.complete_chunk(chunk, results_of(chunk))
        chunks += 1
    return chunks


async def test_create_and_get(store: Store) -> None:
    new = NewTask("n", "d", ProbeOptions(retries=1))
    task, created = await store.create_task(new, iter(URLS), chunk_size=4)
    assert created
    got = await store.get_task(task.id)
    assert got is not None
    assert (got.name, got.description, got.options, got.status) == (
        "n",
        "d",
        ProbeOptions(retries=1),
        TaskStatus.PENDING,
    )
    assert (got.total, got.done, got.ok, got.broken) == (10, 0, 0, 0)
    assert got.created_at.tzinfo is not None and got.started_at is None
    assert await store.get_task("no-such-task") is None


async def test_chunks_cover_the_input_in_order(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=4)
    seen: list[tuple[int, list[str]]] = []
    while (chunk := await store.claim_chunk("w")) is not None:
        assert chunk.task_id == task.id and chunk.options == ProbeOptions()
        seen.append((chunk.start, chunk.urls))
        await store.complete_chunk(chunk, results_of(chunk))
    assert [start for start, _ in seen] == [0, 4, 8]
    assert [url for _, urls in seen for url in urls] == URLS


async def test_progress_status_and_counts(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=4)
    first = await store.claim_chunk("w")
    assert first is not None
    running = await store.get_task(task.id)
    assert running is not None and running.status == TaskStatus.RUNNING and running.started_at is not None
    await store.complete_chunk(first, results_of(first))
    partial = await store.get_task(task.id)
    assert partial is not None and (partial.done, partial.status) == (4, TaskStatus.RUNNING)
    await drain(store)
    done = await store.get_task(task.id)
    assert done is not None and done.status == TaskStatus.READY and done.finished_at is not None
    assert (done.total, done.done, done.ok, done.broken) == (10, 10, 4, 6)
    assert done.by_status == {"200": 4, "404": 3} and done.by_error == {"dns": 3}


async def test_completing_a_chunk_twice_counts_once(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS[:3]), chunk_size=10)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    await store.complete_chunk(chunk, results_of(chunk))
    await store.complete_chunk(chunk, results_of(chunk))  # a redelivered chunk finishing late
    record = await store.get_task(task.id)
    assert record is not None and (record.done, record.ok) == (3, 1)
    items, _ = await store.results(task.id, ResultFilter(), None, 100)
    assert [item["index"] for item in items] == [0, 1, 2]


async def test_results_pages_and_filters(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=3)
    await drain(store)
    page, cursor = await store.results(task.id, ResultFilter(), None, 4)
    assert [r["index"] for r in page] == [0, 1, 2, 3] and cursor is not None
    rest, end = await store.results(task.id, ResultFilter(), cursor, 100)
    assert [r["index"] for r in rest] == list(range(4, 10)) and end is None
    ok, _ = await store.results(task.id, ResultFilter(outcome="ok"), None, 100)
    assert [r["index"] for r in ok] == [0, 3, 6, 9]
    broken, _ = await store.results(task.id, ResultFilter(outcome="broken"), None, 100)
    assert len(broken) == 6
    dns, _ = await store.results(task.id, ResultFilter(error_kind="dns"), None, 100)
    assert [r["index"] for r in dns] == [2, 5, 8]
    missing, _ = await store.results(task.id, ResultFilter(status_code=404), None, 100)
    assert [r["index"] for r in missing] == [1, 4, 7]
    assert ProbeResult.from_dict(page[0]).url == URLS[0]


async def test_stream_results_in_input_order(store: Store) -> None:
    task, _ = await store.create_task(
        NewTask(), (f"http://h{i}.example/ok" for i in range(2500)), chunk_size=700
    )
    await drain(store)
    indexes = [json.loads(row)["index"] async for row in store.stream_results(task.id, ResultFilter())]
    assert indexes == list(range(2500))


async def test_list_newest_first_with_cursor_and_status(store: Store) -> None:
    ids = [(await store.create_task(NewTask(name=str(i)), iter(URLS[:1]), 5))[0].id for i in range(5)]
    page, cursor = await store.list_tasks(None, None, 3)
    assert [t.id for t in page] == ids[::-1][:3] and cursor is not None
    rest, _ = await store.list_tasks(None, cursor, 3)
    assert [t.id for t in rest][:2] == ids[::-1][3:5]
    chunk = await store.claim_chunk("w")
    assert chunk is not None and chunk.task_id == ids[0]  # oldest first: FIFO work
    await store.complete_chunk(chunk, results_of(chunk))
    ready, _ = await store.list_tasks(TaskStatus.READY, None, 50)
    assert ids[0] in [t.id for t in ready] and ids[1] not in [t.id for t in ready]


async def test_delete_removes_everything(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=4)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    assert await store.delete_task(task.id)
    assert await store.get_task(task.id) is None
    assert await store.live_tasks([task.id]) == set()
    await store.complete_chunk(chunk, results_of(chunk))  # a worker finishing after the delete
    assert await store.get_task(task.id) is None
    assert await store.claim_chunk("w") is None
    assert not await store.delete_task(task.id)


async def test_cancel_gives_every_url_a_result(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=4)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    await store.complete_chunk(chunk, results_of(chunk))
    cancelled = await store.cancel_task(task.id)
    assert cancelled is not None and cancelled.status == TaskStatus.CANCELLED
    assert (cancelled.done, cancelled.by_error.get("cancelled")) == (10, 6)
    assert await store.live_tasks([task.id]) == set()
    assert await store.claim_chunk("w") is None
    items, _ = await store.results(task.id, ResultFilter(), None, 100)
    assert len(items) == 10 and items[9]["error"]["kind"] == "cancelled"
    assert await store.cancel_task("no-such-task") is None


async def test_a_repeated_cancel_changes_nothing(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=4)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    first = await store.cancel_task(task.id)
    await store.complete_chunk(chunk, results_of(chunk))  # the worker's write, after the cancel
    again = await store.cancel_task(task.id)
    assert first is not None and first.status == TaskStatus.CANCELLED and again == first
    assert (again.done, again.cancelled) == (10, 10)
    assert await store.claim_chunk("w") is None


async def test_idempotency(store: Store) -> None:
    first, created = await store.create_task(NewTask(), iter(URLS), 4, ("key-1", "body-a"))
    again, created_again = await store.create_task(NewTask(), iter(URLS), 4, ("key-1", "body-a"))
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyConflict):
        await store.create_task(NewTask(), iter(URLS), 4, ("key-1", "body-b"))
    other, _ = await store.create_task(NewTask(), iter(URLS), 4, ("key-2", "body-a"))
    assert other.id != first.id


async def test_stats_and_ping(store: Store) -> None:
    await store.create_task(NewTask(), iter(URLS), chunk_size=4)
    stats = await store.stats()
    assert stats["tasks"].get("pending") == 1 and stats["queued_chunks"] == 3
    assert await store.ping()


async def test_orphaned_chunk_is_delivered_again(store: Store, reopen: Reopen) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS[:2]), chunk_size=10)
    lost = await store.claim_chunk("dead-worker")
    assert lost is not None and await store.claim_chunk("w") is None
    store = await reopen(store)  # the worker died; the store recovers its work
    again = await store.claim_chunk("w")
    assert again is not None and again.urls == lost.urls and again.deliveries == 2
    await store.complete_chunk(again, results_of(again))
    record = await store.get_task(task.id)
    assert record is not None and record.status == TaskStatus.READY and record.done == 2


# -- one behaviour: filters agree with counts ------------------------------------------------------


async def test_status_filter_and_by_status_agree_on_a_result_with_a_status_and_an_error(
    store: Store,
) -> None:
    task, _ = await store.create_task(NewTask(), iter(["http://a.example/loop", "http://b.example/x"]), 10)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    looped = ProbeResult(url=chunk.urls[0], index=0, status_code=302,
                         error=ProbeError(ErrorKind.REDIRECT_LOOP, "loop"), attempts=1)  # fmt: skip
    moved = ProbeResult(url=chunk.urls[1], index=1, status_code=302, final_url=chunk.urls[1], attempts=1)
    await store.complete_chunk(chunk, [looped, moved])
    record = await store.get_task(task.id)
    assert record is not None
    assert record.by_status == {"302": 1} and record.by_error == {"redirect_loop": 1}
    by_code, _ = await store.results(task.id, ResultFilter(status_code=302), None, 100)
    assert [r["index"] for r in by_code] == [1]  # as by_status counts it
    by_kind, _ = await store.results(task.id, ResultFilter(error_kind="redirect_loop"), None, 100)
    assert [r["index"] for r in by_kind] == [0]
    both, _ = await store.results(task.id, ResultFilter(outcome="broken", status_code=302), None, 100)
    assert [r["index"] for r in both] == [1]


# -- results as they complete ---------------------------------------------------------------------


async def test_results_stored_in_batches_move_progress_and_count_each_url_once(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS[:6]), chunk_size=10)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    results = results_of(chunk)
    await store.store_results(chunk, results[:2])
    partial = await store.get_task(task.id)
    assert partial is not None and (partial.done, partial.status) == (2, TaskStatus.RUNNING)
    items, _ = await store.results(task.id, ResultFilter(), None, 100)
    assert [r["index"] for r in items] == [0, 1]
    first = failed(chunk.urls[1], 1, ErrorKind.TIMEOUT, "a later delivery saw a timeout")
    await store.store_results(chunk, [first, *results[2:4]])  # index 1 again: the first result wins
    await store.complete_chunk(chunk, results)  # the whole chunk again with its last results
    done = await store.get_task(task.id)
    assert done is not None and done.status == TaskStatus.READY
    assert (done.done, done.ok, done.broken) == (6, 2, 4)
    assert sum(done.by_status.values()) + sum(done.by_error.values()) == 6
    items, _ = await store.results(task.id, ResultFilter(), None, 100)
    assert [r["index"] for r in items] == list(range(6)) and items[1]["status_code"] == 404


async def test_latency_is_counted_per_probed_result_once_beside_the_classes(store: Store) -> None:
    urls = [f"http://h{i}.example/" for i in range(5)]
    task, _ = await store.create_task(NewTask(), iter(urls), chunk_size=10)
    fresh = await store.get_task(task.id)
    assert fresh is not None and list(fresh.latency) == [*map(str, LATENCY_BOUNDS_MS), "+Inf"]
    assert set(fresh.latency.values()) == {0}
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    timed_out = failed(urls[4], 4, ErrorKind.TIMEOUT, "too slow")
    timed_out.elapsed_ms, timed_out.attempts = 10000.5, 3
    results = [
        ProbeResult(url=urls[0], index=0, ok=True, status_code=200, elapsed_ms=10.0, attempts=1),  # a bound
        ProbeResult(url=urls[1], index=1, status_code=404, elapsed_ms=75.2, attempts=1),
        ProbeResult(url=urls[2], index=2, ok=True, status_code=200, elapsed_ms=61000.0, attempts=2),
        failed(urls[3], 3, ErrorKind.INVALID_URL, "not a URL"),  # never attempted: no timing
        timed_out,
    ]
    await store.store_results(chunk, results[:2])
    await store.complete_chunk(chunk, results)  # indexes 0 and 1 again: counted once
    done = await store.get_task(task.id)
    assert done is not None and done.status == TaskStatus.READY and done.done == 5
    expected = dict.fromkeys(fresh.latency, 0) | {"10": 1, "100": 1, "30000": 1, "+Inf": 1}
    assert done.latency == expected and list(done.latency) == list(expected)
    assert done.by_status == {"200": 2, "404": 1} and done.by_error == {"invalid_url": 1, "timeout": 1}


async def test_cancel_keeps_results_already_stored(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS), chunk_size=4)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    results = results_of(chunk)
    await store.store_results(chunk, results[:3])
    cancelled = await store.cancel_task(task.id)
    assert cancelled is not None and cancelled.status == TaskStatus.CANCELLED
    assert (cancelled.done, cancelled.by_error.get("cancelled")) == (10, 7)
    await store.complete_chunk(chunk, results)  # the worker's last write, after the cancel
    items, _ = await store.results(task.id, ResultFilter(), None, 100)
    kinds = [(r["error"] or {}).get("kind") for r in items]
    assert kinds[:3] == [None, None, "dns"] and kinds[3:] == ["cancelled"] * 7
    record = await store.get_task(task.id)
    assert record is not None and (record.done, record.ok) == (10, 1)


# -- delivery: give up, heartbeat, reclaim, dead letters -----------------------------------------


async def test_drop_gives_up_a_chunk_only_when_its_task_is_cancelled_or_deleted(store: Store) -> None:
    kept, _ = await store.create_task(NewTask(), iter(URLS[:2]), chunk_size=10)
    chunk = await store.claim_chunk("w")
    assert chunk is not None and chunk.task_id == kept.id
    assert await store.drop_chunk(chunk) is None  # still wanted: the worker keeps it
    await store.complete_chunk(chunk, results_of(chunk))
    record = await store.get_task(kept.id)
    assert record is not None and (record.status, record.done) == (TaskStatus.READY, 2)
    for reason in ("cancelled", "deleted"):
        task, _ = await store.create_task(NewTask(), iter(URLS[:2]), chunk_size=10)
        claimed = await store.claim_chunk("w")
        assert claimed is not None and claimed.task_id == task.id
        if reason == "cancelled":
            await store.cancel_task(task.id)
        else:
            await store.delete_task(task.id)
        assert await store.drop_chunk(claimed) == reason
    await asyncio.sleep(RECLAIM_S * 2)
    assert await claim_within(store, RECLAIM_S * 8) is None  # nothing dropped comes back


async def claim_within(store: Store, seconds: float) -> Chunk | None:
    """The next chunk anyone may take within `seconds` (reclaims happen on claims)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if (chunk := await store.claim_chunk("other")) is not None:
            return chunk
        await asyncio.sleep(0.05)
    return None


async def test_heartbeat_keeps_a_chunk_and_an_orphan_is_reclaimed_without_restart(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS[:3]), chunk_size=10)
    held = await store.claim_chunk("w")
    assert held is not None
    for _ in range(8):  # 4 reclaim times, renewed all along
        await asyncio.sleep(RECLAIM_S / 2)
        await store.heartbeat([held])
        assert await store.claim_chunk("other") is None
    again = await claim_within(store, 10)  # the worker went silent: its chunk goes to another
    assert again is not None and (again.task_id, again.urls) == (task.id, held.urls)
    assert again.deliveries == 2
    await store.complete_chunk(again, results_of(again))
    await store.complete_chunk(held, results_of(held))  # the slow first delivery, late
    record = await store.get_task(task.id)
    assert record is not None and (record.status, record.done) == (TaskStatus.READY, 3)


async def test_a_chunk_delivered_too_often_is_dead_lettered_and_its_task_ends(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), iter(URLS[:3]), chunk_size=10)
    deliveries = []
    for _ in range(MAX_DELIVERIES + 2):  # bounded: a store that never dead-letters fails here
        if (chunk := await claim_within(store, 10)) is None:  # every worker dies holding it
            break
        deliveries.append(chunk.deliveries)
    assert deliveries == list(range(1, MAX_DELIVERIES + 1))
    record = await store.get_task(task.id)
    assert record is not None and record.status == TaskStatus.READY
    assert (record.done, record.by_error) == (3, {"internal": 3})
    items, _ = await store.results(task.id, ResultFilter(error_kind="internal"), None, 100)
    assert len(items) == 3 and "dead-lettered" in items[0]["error"]["message"]


# -- fair turns -----------------------------------------------------------------------------------


async def test_chunks_are_taken_round_robin_across_tasks(store: Store) -> None:
    big, _ = await store.create_task(NewTask(), (f"http://big{i}.example/ok" for i in range(20)), 2)
    other, _ = await store.create_task(NewTask(), (f"http://o{i}.example/ok" for i in range(6)), 2)
    order = []
    for _ in range(4):
        chunk = await store.claim_chunk("w")
        assert chunk is not None
        order.append(chunk.task_id)
    small, _ = await store.create_task(NewTask(), iter(URLS[:1]), 2)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    order.append(chunk.task_id)
    assert order == [big.id, other.id, big.id, other.id, small.id]


def redirected(url: str, index: int, first_hop: int) -> ProbeResult:
    hops = (Hop(first_hop, url + "/moved"), Hop(302, url + "/final"))
    return ProbeResult(url=url, index=index, ok=True, status_code=200, redirects=hops, attempts=1)


async def test_results_filter_redirects_and_outcomes_apart(store: Store) -> None:
    """ResultFilter.redirect (by the first hop: 301/308 permanent, else temporary) and the
    outcome words (broken without unsupported and cancelled), the same on every store."""
    urls = [f"http://r{i}.example/" for i in range(8)]
    task, _ = await store.create_task(NewTask(), iter(urls), chunk_size=10)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    await store.complete_chunk(chunk, [
        redirected(urls[0], 0, 301), redirected(urls[1], 1, 308), redirected(urls[2], 2, 302),
        ProbeResult(url=urls[3], index=3, ok=True, status_code=200, attempts=1),
        failed(urls[4], 4, ErrorKind.DNS, "no such host"),
        failed(urls[5], 5, ErrorKind.UNSUPPORTED, "mailto: links are not checked"),
        failed(urls[6], 6, ErrorKind.CANCELLED, "the task was cancelled"),
        dataclasses.replace(  # a loop is broken, not a redirect to follow up
            redirected(urls[7], 7, 302), ok=False, error=ProbeError(ErrorKind.REDIRECT_LOOP, "loop")
        ),
    ])  # fmt: skip

    async def indexes(flt: ResultFilter) -> list[int]:
        items, _ = await store.results(task.id, flt, None, 100)
        return [item["index"] for item in items]

    assert await indexes(ResultFilter(redirect="any")) == [0, 1, 2]
    assert await indexes(ResultFilter(redirect="permanent")) == [0, 1]
    assert await indexes(ResultFilter(redirect="temporary")) == [2]
    assert await indexes(ResultFilter(redirect="permanent", url_contains="r1.")) == [1]
    assert await indexes(ResultFilter(outcome="ok")) == [0, 1, 2, 3]
    assert await indexes(ResultFilter(outcome="broken")) == [4, 7]
    assert await indexes(ResultFilter(outcome="unsupported")) == [5]
    assert await indexes(ResultFilter(outcome="cancelled")) == [6]
    assert await indexes(ResultFilter(outcome="broken", redirect="any")) == []
    streamed = [
        json.loads(row)["index"] async for row in store.stream_results(task.id, ResultFilter(redirect="any"))
    ]
    assert streamed == [0, 1, 2]


# -- one rule on both stores: each case once diverged between SQLite and Redis ---------------------


async def test_each_outcome_is_counted_as_its_filter_selects(store: Store) -> None:
    """ok, broken, unsupported and cancelled: the task's count of each equals the results its
    outcome filter returns, with results apart (unsupported, cancelled) among the broken ones."""
    urls = [f"http://o{i}.example/" for i in range(6)]
    task, _ = await store.create_task(NewTask(), iter(urls), chunk_size=3)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    await store.complete_chunk(chunk, [
        ProbeResult(url=urls[0], index=0, ok=True, status_code=200, attempts=1),
        ProbeResult(url=urls[1], index=1, status_code=404, attempts=1),
        failed(urls[2], 2, ErrorKind.UNSUPPORTED, "mailto: links are not checked"),
    ])  # fmt: skip
    second = await store.claim_chunk("w")
    assert second is not None
    await store.store_results(second, [failed(urls[3], 3, ErrorKind.DNS, "no such host")])
    record = await store.cancel_task(task.id)  # 4 and 5 become cancelled
    assert record is not None and record.status == TaskStatus.CANCELLED
    counts = {"ok": record.ok, "broken": record.broken, "unsupported": record.unsupported,
              "cancelled": record.cancelled}  # fmt: skip
    assert counts == {"ok": 1, "broken": 2, "unsupported": 1, "cancelled": 2}
    for outcome, count in counts.items():
        items, _ = await store.results(task.id, ResultFilter(outcome=outcome), None, 100)
        assert len(items) == count, outcome
    assert sum(counts.values()) == record.done == 6


async def test_a_cancelled_task_is_never_seen_ready(store: Store) -> None:
    """The cancel ends the task in one step: readers polling all along see it running, then
    cancelled, never `ready` in between (as an event stream would report it). Five cancels, each
    watched by four readers, so that some read lands between any two steps a cancel might take."""
    for _ in range(5):
        await cancel_watched(store)


async def cancel_watched(store: Store) -> None:
    task, _ = await store.create_task(NewTask(), (f"http://c{i}.example/ok" for i in range(60)), chunk_size=2)
    assert await store.claim_chunk("w") is not None
    seen: list[TaskStatus] = []
    cancelling = True

    async def watch() -> None:
        while cancelling:
            record = await store.get_task(task.id)
            assert record is not None
            seen.append(record.status)

    watchers = [asyncio.create_task(watch()) for _ in range(4)]  # one read always on its way
    await wait_for(lambda: len(seen) >= 4, "the watchers reading before the cancel starts")
    cancelled = await store.cancel_task(task.id)
    cancelling = False
    await asyncio.gather(*watchers)
    assert cancelled is not None and cancelled.status == TaskStatus.CANCELLED
    assert TaskStatus.READY not in seen, seen
    final = await store.get_task(task.id)
    assert final is not None and (final.status, final.done) == (TaskStatus.CANCELLED, 60)
    assert final.by_error == {"cancelled": 60}


async def test_retention_lets_finished_tasks_go_and_keeps_running_ones(short_retention: Store) -> None:
    """One rule (base.Retention): a running task stays whatever its age; a finished one goes once
    the retention has passed since it finished."""
    store = short_retention
    running, _ = await store.create_task(NewTask(), iter(URLS[:4]), chunk_size=2)
    held = await store.claim_chunk("w")
    assert held is not None and held.task_id == running.id
    finished, _ = await store.create_task(NewTask(), iter(URLS[:2]), chunk_size=2)

    async def finished_is_gone() -> bool:
        while (chunk := await store.claim_chunk("w")) is not None:  # SQLite purges as it hands out work
            if chunk.task_id == finished.id:
                await store.complete_chunk(chunk, results_of(chunk))
        return await store.get_task(finished.id) is None

    await wait_for(finished_is_gone, "the finished task to expire", timeout=30)
    kept = await store.get_task(running.id)  # older than the finished one, but not finished
    assert kept is not None and kept.status == TaskStatus.RUNNING
    await store.complete_chunk(held, results_of(held))
    record = await store.get_task(running.id)
    assert record is not None and record.done == 2


async def test_queued_chunks_are_the_ones_waiting_not_the_ones_held(store: Store) -> None:
    await store.create_task(NewTask(), iter(URLS), chunk_size=4)
    assert (await store.stats())["queued_chunks"] == 3
    held = await store.claim_chunk("w")
    assert held is not None
    assert (await store.stats())["queued_chunks"] == 2
    await store.complete_chunk(held, results_of(held))
    assert (await store.stats())["queued_chunks"] == 2


# -- exactly once when deliveries overlap ----------------------------------------------------------


async def test_a_chunk_written_out_of_input_order_is_read_in_input_order(store: Store) -> None:
    """Results reach the store in the order their probes ended, in one batch or several."""
    urls = [f"http://h{i}.example/{'ok' if i % 2 else 'x'}" for i in range(9)]
    task, _ = await store.create_task(NewTask(), iter(urls), chunk_size=9)
    chunk = await store.claim_chunk("w")
    assert chunk is not None
    results = results_of(chunk)[::-1]
    await store.store_results(chunk, results[:3])
    await store.store_results(chunk, results[3:4])
    items, _ = await store.results(task.id, ResultFilter(), None, 100)
    assert [r["index"] for r in items] == [5, 6, 7, 8]
    await store.complete_chunk(chunk, results[4:])
    items, _ = await store.results(task.id, ResultFilter(), None, 100)
    assert [r["index"] for r in items] == list(range(9))
    broken, cursor = await store.results(task.id, ResultFilter(outcome="broken"), None, 2)
    rest, _ = await store.results(task.id, ResultFilter(outcome="broken"), cursor, 100)
    assert [r["index"] for r in broken + rest] == [0, 2, 4, 6, 8]


async def test_two_deliveries_of_a_chunk_writing_at_once_store_each_url_once(store: Store) -> None:
    """A chunk redelivered while its first worker still writes: both write overlapping batches at
    the same time, each saying something else of each URL; every URL keeps one result, the one
    counted, and the task ends once."""
    urls = [f"http://d{i}.example/ok" for i in range(60)]
    task, _ = await store.create_task(NewTask(), iter(urls), chunk_size=60)
    first = await store.claim_chunk("slow-worker")
    assert first is not None
    second = await claim_within(store, 10)  # the first worker went silent: its lease ran out
    assert second is not None and second.urls == first.urls and second.deliveries == 2
    says_ok = results_of(first)
    says_timeout = [failed(url, i, ErrorKind.TIMEOUT, "too slow") for i, url in enumerate(second.urls)]

    async def write(chunk: Chunk, results: list[ProbeResult], order: list[int]) -> None:
        for at in range(0, len(order), 7):
            await store.store_results(chunk, [results[i] for i in order[at : at + 7]])
        await store.complete_chunk(chunk, [])

    await asyncio.gather(
        write(first, says_ok, list(range(60))),
        write(second, says_timeout, [(i * 37) % 60 for i in range(60)]),  # another order, overlapping
    )
    record = await store.get_task(task.id)
    assert record is not None and (record.status, record.done) == (TaskStatus.READY, 60)
    items, _ = await store.results(task.id, ResultFilter(), None, 100)
    assert [r["index"] for r in items] == list(range(60))
    timed_out = [r["index"] for r in items if r["error"] is not None]
    assert record.by_error.get("timeout", 0) == len(timed_out) and record.ok == 60 - len(timed_out)
    assert sum(record.by_status.values()) + sum(record.by_error.values()) == 60
    by_kind, _ = await store.results(task.id, ResultFilter(error_kind="timeout"), None, 100)
    assert [r["index"] for r in by_kind] == timed_out
