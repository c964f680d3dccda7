"""The worker's own lifecycle (the chunk flow itself is covered through the API and fault tests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import socket
import time
import uuid
from pathlib import Path

import pytest

from linkprobe.engine import Engine, EngineConfig, ProbeOptions
from linkprobe.metrics import Metrics
from linkprobe.store import Chunk, NewTask, ResultFilter, Store, StoreUnavailable
from linkprobe.store.redis import RedisStore
from linkprobe.store.sqlite import SQLiteStore
from linkprobe.worker import Worker, process_problems
from tests.conftest import RedisServer, Target, wait_for


class CancelToOutageStore(SQLiteStore):
    """A store whose blocking claim turns cancellation into a connection error, as a Redis
    client may when a cancelled XREADGROUP tears its connection down."""

    claims = 0

    async def claim_chunk(self, worker: str) -> Chunk | None:
        self.claims += 1
        try:
            await asyncio.sleep(0.05)  # a blocking read
        except asyncio.CancelledError:
            raise StoreUnavailable("connection closed while reading") from None
        return await super().claim_chunk(worker)


async def test_worker_stops_even_when_the_store_swallows_its_cancellation(tmp_path: Path) -> None:
    store = CancelToOutageStore(tmp_path / "store.db")
    await store.open()
    try:
        async with Engine(EngineConfig(allow_private=True)) as engine:
            worker = Worker(store, engine, slots=4)
            running = asyncio.create_task(worker.run())
            await wait_for(lambda: store.claims >= 4, "every loop idle in a claim")
            worker.stop()
            await asyncio.wait({running}, timeout=5)  # no wait_for: it would cancel and wait again
            assert running.done() and running.exception() is None
    finally:
        await store.close()


async def test_results_probed_during_a_store_outage_are_kept_and_written_after(
    target: Target, private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = uuid.uuid4().hex
    paths = [f"/count/{token}-{i}" for i in range(5)]
    urls = [target.url(f"{path}?s=1", host=f"127.0.6.{i + 1}") for i, path in enumerate(paths)]
    store = RedisStore(private_redis.url, reclaim_idle_s=1, block_ms=20)  # a lost chunk returns fast
    await store.open()
    task, _ = await store.create_task(NewTask(), urls, chunk_size=5)
    caplog.set_level(logging.WARNING, logger="linkprobe.worker")
    try:
        async with Engine(EngineConfig(allow_private=True)) as engine:
            worker = Worker(store, engine, slots=1, heartbeat_s=0.3)
            running = asyncio.create_task(worker.run())
            await wait_for(lambda: all(target.hits.get(p) == 1 for p in paths), "the probes in flight")
            private_redis.stop()  # while the whole chunk is in flight: its results have nowhere to go
            await wait_for(lambda: "cannot store" in caplog.text, "a failed write of the results")
            private_redis.start()  # same port, same data
            await wait_for(lambda: _ready(store, task.id), "the task ready")
            record = await store.get_task(task.id)
            await worker.shutdown(running)
        rows, _ = await store.results(task.id, ResultFilter(), None, 100)
    finally:
        await store.close()
    assert record is not None and record.status == "ready" and record.done == record.ok == 5
    assert [r["url"] for r in rows] == urls
    assert [target.hits[p] for p in paths] == [1] * 5  # written after the outage, never probed twice


async def _ready(store: Store, task_id: str) -> bool:
    task = await store.get_task(task_id)
    return task is not None and task.status == "ready"


async def test_a_chunk_without_progress_is_given_up_and_redelivered(
    store: Store, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    """A wedged engine: its one slot leaked (held by no probe, as when probes never end). The
    chunk waiting for it gives no result; its worker gives it up (no lease renewed for it), says
    so, and it is redelivered, probed once the slot is back: exactly one result for the URL."""
    task, _ = await store.create_task(
        NewTask(options=ProbeOptions(timeout=0.5, retries=0)), [target.url("/status/200")], 1
    )
    caplog.set_level(logging.WARNING, logger="linkprobe.worker")
    metrics = Metrics()
    async with Engine(EngineConfig(allow_private=True, concurrency=1)) as engine:
        await engine.prober.slots.total.acquire("leaked")
        worker = Worker(store, engine, slots=2, metrics=metrics, heartbeat_s=0.1, give_up_margin_s=1.0)
        running = asyncio.create_task(worker.run())
        try:
            await wait_for(lambda: worker.given_up is not None, "the waiting chunk to be given up", 20)
            assert f"chunk {task.id}/0 given up" in (worker.problem() or "")
            assert metrics.registry.get_sample_value("linkprobe_chunks_given_up_total") == 1
            engine.prober.slots.total.release("leaked")
            await wait_for(lambda: _ready(store, task.id), "the redelivered chunk's result", 20)
        finally:
            worker.stop()
            await asyncio.wait({running}, timeout=5)
    results, _ = await store.results(task.id, ResultFilter(), None, 10)
    assert [(r["index"], r["ok"]) for r in results] == [(0, True)]
    assert any("given up: no result for" in r.getMessage() for r in caplog.records)


async def test_a_one_url_task_behind_more_hanging_urls_than_slots_is_ready_in_seconds(
    store: Store, target: Target
) -> None:
    """100 URLs that hang hold every slot they may (32 but a reserve): the one-URL task after them
    still gets a slot of its own, and is ready while they hang."""
    hanging = [target.url(f"/hang?n={n}", host=f"127.0.1.{n + 1}") for n in range(100)]  # 100 hosts
    big, _ = await store.create_task(NewTask(options=ProbeOptions(timeout=60, retries=0)), hanging, 50)
    async with Engine(EngineConfig(allow_private=True, concurrency=32)) as engine:
        worker = Worker(store, engine, slots=2, heartbeat_s=0.5)
        running = asyncio.create_task(worker.run())
        try:
            await wait_for(lambda: engine.prober.slots.total.held(big.id) >= 30, "the hanging URLs in flight")
            small, _ = await store.create_task(
                NewTask(options=ProbeOptions(retries=0)), [target.url("/status/200")], 1
            )
            await wait_for(lambda: _ready(store, small.id), "the one-URL task", 15)
            assert not await _ready(store, big.id)
        finally:
            worker.stop()
            await asyncio.wait({running}, timeout=5)


class TurningTarget:
    """A target that answers 200 `after` times, then black-holes: `silent` accepts and reads the
    request but never answers; `unaccepting` stops accepting (a listener that never calls accept,
    so connects queue in the backlog and then go unanswered). Connections kept alive across the
    turn are closed so the engine must dial again and meet the black hole."""

    def __init__(self, mode: str, after: int) -> None:
        self.mode, self.after, self.turned, self.answered = mode, after, False, 0
        self.server: asyncio.Server | None = None
        self.port, self.writers, self.held = 0, set[asyncio.StreamWriter](), list[socket.socket]()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while await reader.readuntil(b"\r\n\r\n"):
                if self.answered == self.after and not self.turned:
                    self.turn()
                if self.turned:
                    await reader.read()  # silent: hold the connection, answer nothing
                    break
                self.answered += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()
        self.writers.discard(writer)

    def turn(self) -> None:
        self.turned = True
        if self.mode == "unaccepting" and self.server is not None:
            self.server.close()  # the port is handed to a listener that never accepts
            held = socket.socket()
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            held.bind(("127.0.0.1", self.port))
            held.listen(1)
            self.held.append(held)
        for writer in list(self.writers):
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()
        for held in self.held:
            held.close()


@pytest.mark.parametrize("mode", ["silent", "unaccepting"])
async def test_a_target_that_black_holes_part_way_ends_with_one_result_per_url(
    store: Store, mode: str
) -> None:
    """The target turns into a black hole while the task runs: every URL still gets exactly one
    result (ok before the turn, a typed timeout after it), and the task ends."""
    target = TurningTarget(mode, after=6)
    await target.start()
    urls = [f"http://127.0.0.1:{target.port}/page/{i}" for i in range(24)]
    options = ProbeOptions(timeout=1.0, connect_timeout=1.0, retries=0)
    task, _ = await store.create_task(NewTask(options=options), urls, 6)
    try:
        async with Engine(EngineConfig(allow_private=True, concurrency=2)) as engine:
            worker = Worker(store, engine, slots=2, heartbeat_s=0.2)
            running = asyncio.create_task(worker.run())
            try:
                await wait_for(lambda: _ready(store, task.id), "the task to end", 60)
            finally:
                worker.stop()
                await asyncio.wait({running}, timeout=5)
        results, _ = await store.results(task.id, ResultFilter(), None, 100)
    finally:
        target.close()
    assert sorted(r["index"] for r in results) == list(range(24))  # one each, none lost
    kinds = {(r["error"] or {}).get("kind") for r in results if not r["ok"]}
    assert sum(r["ok"] for r in results) == target.answered == 6
    assert kinds and kinds <= {"timeout", "connect_timeout"}, kinds


async def test_a_serve_worker_process_that_has_not_published_yet_is_starting(tmp_path: Path) -> None:
    """serve's /readyz waits for its worker processes: one alive that has not published its state
    once is still starting; once it has, it is not a problem."""
    child = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))
    child.start()
    try:
        assert process_problems([child], tmp_path) == [f"worker process {child.pid} is starting"]
        Metrics().publish(tmp_path / f"worker-{child.pid}.json", None)
        assert process_problems([child], tmp_path) == []
    finally:
        child.kill()
        child.join()


async def test_a_host_share_of_a_chunk_gets_a_result_for_each_of_its_urls_in_input_order(
    tmp_path: Path, target: Target
) -> None:
    """serve's worker processes each probe the URLs of their hosts in every range (Chunk.indexes):
    the engine numbers them from 0, the worker gives each its input index back, whatever the
    order they end in. Here one process (share 0) takes both shares in turn."""
    serving = SQLiteStore(tmp_path / "s.db", shares=2)
    await serving.open()
    follower = SQLiteStore(tmp_path / "s.db", follower=True, share=0)
    await follower.open()
    urls = [
        target.url(f"/status/{200 if i % 3 else 404}?n={i}", host=f"127.0.7.{i % 5 + 1}") for i in range(30)
    ]
    try:
        task, _ = await serving.create_task(NewTask(options=ProbeOptions(retries=0)), urls, 8)
        async with Engine(EngineConfig(allow_private=True, concurrency=4)) as engine:
            worker = Worker(follower, engine, slots=2)
            running = asyncio.create_task(worker.run())
            try:
                await wait_for(lambda: _ready(serving, task.id), "the task's results", 30)
            finally:
                await worker.shutdown(running)
        results, _ = await serving.results(task.id, ResultFilter(), None, 100)
    finally:
        await follower.close()
        await serving.close()
    assert [(r["index"], r["url"], r["status_code"]) for r in results] == [
        (i, url, 200 if i % 3 else 404) for i, url in enumerate(urls)
    ]


async def test_a_worker_whose_chunks_move_fast_holds_more_than_its_slots(
    tmp_path: Path, target: Target
) -> None:
    """Claims ahead: with chunks that finish fast, a worker of one slot holds several at once (their
    URLs then wait in the engine's queue, where a host's next URL finds its connection)."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    urls = [target.url(f"/status/200?n={i}", host=f"127.0.8.{i % 20 + 1}") for i in range(2000)]
    try:
        task, _ = await store.create_task(NewTask(options=ProbeOptions(retries=0)), urls, 10)
        async with Engine(EngineConfig(allow_private=True, concurrency=8)) as engine:
            worker = Worker(store, engine, slots=1)
            running = asyncio.create_task(worker.run())
            try:
                await wait_for(lambda: len(worker.active) > 1, "a second chunk held by a worker of one slot")
                await wait_for(lambda: _ready(store, task.id), "the task's results", 60)
            finally:
                await worker.shutdown(running)
        done = await store.get_task(task.id)
        assert done is not None and done.done == len(urls)
    finally:
        await store.close()


async def test_a_chunk_held_ahead_waits_its_turn_behind_chunks_that_move_without_being_given_up(
    tmp_path: Path, target: Target
) -> None:
    """A chunk without a result yet waits in the engine's queue behind the worker's other chunks:
    it is quiet (and given up) only once they are quiet too, however long its turn takes."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    urls = [target.url(f"/slow?s=0.2&n={i}", host=f"127.0.10.{i + 1}") for i in range(10)]
    try:  # a probe takes at most 0.5 s, so a chunk is wedged after 1 s without a result
        task, _ = await store.create_task(NewTask(options=ProbeOptions(timeout=0.5, retries=0)), urls, 5)
        async with Engine(EngineConfig(allow_private=True, concurrency=1)) as engine:
            worker = Worker(store, engine, slots=1, heartbeat_s=0.1, give_up_margin_s=0.5, ahead_urls=10)
            running = asyncio.create_task(worker.run())
            try:
                await wait_for(lambda: len(worker.active) == 2, "both chunks held, one behind the other")
                await wait_for(lambda: _ready(store, task.id), "the task's results", 30)
            finally:
                await worker.shutdown(running)
        assert worker.given_up is None  # the second chunk waited about 1 s for its first result
        done = await store.get_task(task.id)
        assert done is not None and done.done == len(urls)
    finally:
        await store.close()
