"""The engine-wide slots: FIFO hand-over, cancellation safety, no leaked host entries."""

from __future__ import annotations

import asyncio

import pytest

from linkprobe.engine.limits import LaneSemaphore, Slots


async def test_one_lane_is_served_in_order() -> None:
    semaphore = LaneSemaphore(1)
    await semaphore.acquire()
    order: list[int] = []

    async def waiter(n: int) -> None:
        await semaphore.acquire()
        order.append(n)
        semaphore.release()

    tasks = [asyncio.create_task(waiter(n)) for n in range(5)]
    await asyncio.sleep(0)
    semaphore.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_cancelled_waiter_does_not_lose_a_slot() -> None:
    semaphore = LaneSemaphore(1)
    await semaphore.acquire()
    doomed = asyncio.create_task(semaphore.acquire())
    survivor = asyncio.create_task(semaphore.acquire())
    await asyncio.sleep(0)
    semaphore.release()  # granted to `doomed`...
    doomed.cancel()  # ...which is cancelled in the same tick: the slot must pass on
    await asyncio.wait_for(survivor, 1)
    semaphore.release()
    assert semaphore.try_acquire()  # and exactly one slot remains: one, and no second
    assert not semaphore.try_acquire()


async def test_slots_bound_per_host_and_forget_idle_hosts() -> None:
    slots = Slots(total=10, per_host=2)
    for _ in range(2):
        await slots.acquire("a:80")
    blocked = asyncio.create_task(slots.acquire("a:80"))
    cancelled = asyncio.create_task(slots.acquire("a:80"))
    await asyncio.wait_for(slots.acquire("b:80"), 1)  # another host is not blocked
    await asyncio.sleep(0.01)
    assert not blocked.done() and not cancelled.done()
    cancelled.cancel()
    slots.release("a:80")
    await asyncio.wait_for(blocked, 1)  # the released slot went to the waiter, not the cancelled one
    for host in ("a:80", "a:80", "b:80"):
        slots.release(host)
    assert slots.hosts_tracked() == 0


async def test_slots_global_limit_spans_hosts() -> None:
    slots = Slots(total=2, per_host=5)
    await slots.acquire("a:80")
    await slots.acquire("b:80")
    third = asyncio.create_task(slots.acquire("c:80"))
    await asyncio.sleep(0.01)
    assert not third.done()
    slots.release("a:80")
    await asyncio.wait_for(third, 1)
    for host in ("b:80", "c:80"):
        slots.release(host)
    assert slots.hosts_tracked() == 0


async def test_release_skips_a_waiter_cancelled_in_the_same_tick() -> None:
    slots = Slots(total=10, per_host=1)
    await slots.acquire("a:80")
    waiter = asyncio.create_task(slots.acquire("a:80"))
    await asyncio.sleep(0.01)
    waiter.cancel()  # its future is cancelled now; the task only runs its handler later
    slots.release("a:80")
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.hosts_tracked() == 0
    assert slots.try_acquire("a:80") and not slots.try_acquire("a:80")  # exactly one slot, not leaked
    slots.release("a:80")
    assert slots.total._free == 10


async def test_a_released_slot_goes_to_the_lane_holding_fewest() -> None:
    semaphore = LaneSemaphore(32)  # a lane may hold 30: 2 stay for the others
    for _ in range(30):
        await semaphore.acquire("big")
    assert not semaphore.try_acquire("big")  # at its cap, with slots free
    assert semaphore.try_acquire("small") and semaphore.try_acquire("other")  # the reserve
    big = asyncio.create_task(semaphore.acquire("big"))
    small = asyncio.create_task(semaphore.acquire("small"))
    await asyncio.sleep(0)
    semaphore.release("big")  # big is under its cap again, but small holds fewer
    await asyncio.wait_for(small, 1)
    assert not big.done()
    semaphore.release("other")
    await asyncio.wait_for(big, 1)
    assert (semaphore.held("big"), semaphore.held("small")) == (30, 2)


def test_a_small_semaphore_keeps_no_reserve() -> None:
    semaphore = LaneSemaphore(8)
    assert all(semaphore.try_acquire("only") for _ in range(8))


def test_a_semaphore_no_other_lane_shares_keeps_no_reserve() -> None:
    semaphore = LaneSemaphore(32, shared=False)
    assert all(semaphore.try_acquire("only") for _ in range(32))


async def test_a_slot_freed_by_a_host_goes_first_to_a_waiter_of_the_same_lane_for_that_host() -> None:
    """Its connection has just gone idle: the host's next URL reuses it, ahead of older waiters."""
    slots = Slots(total=1, per_host=5)
    await slots.acquire("a:80", "task")
    order: list[str] = []

    async def probe(host: str) -> None:
        await slots.acquire(host, "task")
        order.append(host)
        slots.release(host, "task")

    waiting = [asyncio.create_task(probe(host)) for host in ("b:80", "c:80", "a:80", "b:80")]
    await asyncio.sleep(0.01)
    slots.release("a:80", "task")
    await asyncio.gather(*waiting)
    assert order == ["a:80", "b:80", "b:80", "c:80"]  # then b's freed slot to b, then the rest in order
    assert slots.hosts_tracked() == 0 and not slots.total._by_host and not slots.total._waiters


async def test_a_lane_holding_fewer_slots_comes_before_the_same_host() -> None:
    semaphore = LaneSemaphore(4, shared=False)
    for _ in range(3):
        await semaphore.acquire("big", "a:80")
    await semaphore.acquire("small", "x:80")
    same_host = asyncio.create_task(semaphore.acquire("big", "a:80"))
    other_lane = asyncio.create_task(semaphore.acquire("small", "y:80"))
    await asyncio.sleep(0)
    semaphore.release("big", "a:80")  # big holds 2 now, small 1: small's turn
    await asyncio.wait_for(other_lane, 1)
    assert not same_host.done()
    semaphore.release("small", "x:80")
    await asyncio.wait_for(same_host, 1)


async def test_a_cancelled_waiter_for_a_host_leaves_both_queues() -> None:
    semaphore = LaneSemaphore(1)
    await semaphore.acquire("task", "a:80")
    doomed = asyncio.create_task(semaphore.acquire("task", "a:80"))
    other = asyncio.create_task(semaphore.acquire("task", "b:80"))
    await asyncio.sleep(0)
    doomed.cancel()
    await asyncio.sleep(0)
    semaphore.release("task", "a:80")  # no waiter for a:80 is left: the slot goes to b:80's
    await asyncio.wait_for(other, 1)
    semaphore.release("task", "b:80")
    assert not semaphore._by_host and not semaphore._waiters and semaphore.try_acquire("task")
