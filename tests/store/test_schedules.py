"""What the stores keep of schedules: the body with its header values apart, the run lease as one
compare-and-set (exactly one claim wins, never an older run after a newer one), runs and pause."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from linkprobe.store import Store
from linkprobe.store.base import MAX_DELIVERIES
from linkprobe.store.scheduled import NewSchedule

BODY = {"urls": ["https://example.com/"], "options": {"headers": {"Authorization": "Bearer s3cret"}}}
DUE = datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)


async def test_a_schedule_keeps_its_header_values_apart_until_deleted(store: Store) -> None:
    made = await store.create_schedule(NewSchedule(BODY, {"every": "1h"}, 3, owner="k1", name="nightly"))
    got = await store.get_schedule(made.id)
    assert got is not None and (got.name, got.owner, got.keep, got.paused) == ("nightly", "k1", 3, False)
    assert got.body["options"]["headers"] == {"Authorization": "[redacted]"}
    assert got.secrets is not None and "s3cret" in got.secrets and got.period == {"every": "1h"}
    other = await store.create_schedule(
        NewSchedule({"urls": ["https://a.example/"]}, {"cron": "0 3 * * *"}, 1)
    )
    assert [s.id for s in await store.list_schedules(None)] == [made.id, other.id]
    assert [s.id for s in await store.list_schedules("k1")] == [made.id]
    assert await store.delete_schedule(made.id)
    assert await store.get_schedule(made.id) is None and not await store.delete_schedule(made.id)


async def test_exactly_one_claim_of_a_run_wins(store: Store) -> None:
    made = await store.create_schedule(NewSchedule(BODY, {"every": "1s"}, 3))
    won = await asyncio.gather(*(store.claim_run(made.id, DUE) for _ in range(8)))
    assert won.count(True) == 1
    assert not await store.claim_run(made.id, DUE - timedelta(seconds=1))  # never an older run
    got = await store.get_schedule(made.id)
    assert got is not None and got.last_claimed == DUE
    await store.pause_schedule(made.id, True)
    assert not await store.claim_run(made.id, DUE + timedelta(seconds=1))  # paused: nothing starts
    await store.pause_schedule(made.id, False)
    assert await store.claim_run(made.id, DUE + timedelta(seconds=1))


async def test_runs_recorded_in_due_order_and_dropped(store: Store) -> None:
    made = await store.create_schedule(NewSchedule(BODY, {"every": "1s"}, 3))
    for n, task in enumerate(("t2", "t0", "t1")):
        await store.add_run(made.id, DUE + timedelta(seconds=(2, 0, 1)[n]), task)
    got = await store.get_schedule(made.id)
    assert got is not None and [task for _, task in got.runs] == ["t0", "t1", "t2"]
    assert got.runs[0][0] == DUE
    await store.drop_runs(made.id, ["t0", "t2"])
    got = await store.get_schedule(made.id)
    assert got is not None and [task for _, task in got.runs] == ["t1"]
    await store.delete_schedule(made.id)
    await store.add_run(made.id, DUE, "late")  # a run started as its schedule was deleted
    assert await store.get_schedule(made.id) is None


async def test_deliveries_kept_by_id_in_order_the_newest_only(store: Store) -> None:
    made = await store.create_schedule(NewSchedule(BODY, {"every": "1s"}, 3))
    await store.record_delivery(made.id, {"id": "msg_a", "attempts": [1]})
    await store.record_delivery(made.id, {"id": "msg_b", "attempts": [1]})
    await store.record_delivery(made.id, {"id": "msg_a", "attempts": [1, 2]})  # a later attempt
    assert await store.deliveries(made.id) == [
        {"id": "msg_a", "attempts": [1, 2]},
        {"id": "msg_b", "attempts": [1]},
    ]
    for n in range(MAX_DELIVERIES + 1):
        await store.record_delivery(made.id, {"id": f"msg_{n}", "attempts": []})
    kept = [d["id"] for d in await store.deliveries(made.id)]
    assert kept == [f"msg_{n}" for n in range(1, MAX_DELIVERIES + 1)]
    assert await store.deliveries("another") == []
