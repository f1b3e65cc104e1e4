"""MongoDBDataStore: the public contract, plus MongoDB-specific checks.

Every test works in a database of its own (``horae_test_<random>``) on the server that
``mongodb_uri`` finds or starts (see ``_mongodb_helpers``) and drops it afterwards. The
MongoDB-specific tests look into the database with a plain client where the point is
what was stored (the schema record, indexes, the exactly-once watermark) or to corrupt
a document on purpose.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import socket
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from _mongodb_helpers import RestartableServer, mongodb_uri
from _race_node import PROFILES
from _store_helpers import (
    LOGGER,
    T0,
    TRIGGER,
    Started,
    broker,
    record,
    schedule,
    success,
)
from _store_helpers import catch_up as catch_up_every
from pymongo import AsyncMongoClient, MongoClient, monitoring
from secantus import SecantusDBServer

from horae._clock import SystemClock
from horae._enums import ConflictPolicy, JobOutcome
from horae._exceptions import (
    ConfigurationError,
    DataStoreError,
    DeserializationError,
    SchemaVersionError,
)
from horae._structures import Job, RetryPolicy, Schedule, Task
from horae.datastores._base import ScheduleUpdate
from horae.datastores.mongodb import MongoDBDataStore
from horae.eventbrokers.local import LocalEventBroker
from horae.events import JobReleased, ScheduleDeserializationFailed
from horae.serializers._records import from_epoch_us
from horae.serializers.pickle import PickleSerializer
from horae.testing import DataStoreContract

pytestmark = pytest.mark.mongodb
__all__ = ["broker", "mongodb_uri"]  # the shared fixtures, imported for this module's tests

LEASE = timedelta(seconds=30)
INTERVAL = timedelta(seconds=10)
TASK = Task(id="task", func_ref="builtins:print")
RACE_NODE = Path(__file__).with_name("_race_node.py")
RACE_INTERVAL = PROFILES["mongodb"].interval
Admin = MongoClient[dict[str, Any]]


@pytest.fixture
def admin(mongodb_uri: str) -> Iterator[Admin]:
    """A plain client for looking into (and tidying up) the server."""
    client: Admin = MongoClient(mongodb_uri, uuidRepresentation="standard")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def database(admin: Admin) -> Iterator[str]:
    """A fresh database name for this test, dropped (with everything in it) afterwards."""
    name = f"horae_test_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        admin.drop_database(name)


class TestMongoDBDataStore(DataStoreContract):
    @pytest.fixture
    def store_factory(self, mongodb_uri: str, database: str) -> Callable[[], MongoDBDataStore]:
        return lambda: MongoDBDataStore(mongodb_uri, database)


# ---- helpers ---------------------------------------------------------------------------


def catch_up(s: Schedule, now: datetime, interval: timedelta = INTERVAL) -> ScheduleUpdate:
    return catch_up_every(s, now, interval)


def forget_leaked_sockets() -> None:
    """Collect the socket of a server check that closing a client cancelled mid-connect.

    pymongo (4.20) closes that socket only on ``OSError``, not on cancellation, so a
    client closed right after a failed start can leak one; it is collected here, where
    that is expected, rather than failing whichever test the garbage collector runs in.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def run_loop(store: MongoDBDataStore, node: str, now: datetime) -> None:
    """One step of a scheduler on simulated time: lease the due schedules, release them
    with one job per fire time, then run the due jobs."""
    schedules = await store.acquire_schedules(node, now, LEASE, 100)
    await store.release_schedules(node, [catch_up(s, now) for s in schedules])
    for job in await store.acquire_jobs(node, now, LEASE, 100):
        await store.release_job(node, success(job, now))


def fires_of(db: Any) -> list[tuple[str, datetime]]:
    """The (schedule, fire time) of every job in the database, pending or with a result."""
    return [
        (doc["schedule_id"], from_epoch_us(doc["scheduled_fire_time"]))
        for name in ("jobs", "job_results")
        for doc in db[name].find({"schedule_id": {"$ne": None}})
    ]


async def expected_fires(
    store: MongoDBDataStore, start: datetime, interval: timedelta
) -> set[tuple[str, datetime]]:
    """Every fire time of every schedule from *start* up to where it stands now."""
    expected = set()
    for s in await store.get_schedules():
        assert s.next_fire_time is not None
        count = (s.next_fire_time - start) // interval
        assert start + count * interval == s.next_fire_time
        expected |= {(s.id, start + k * interval) for k in range(count)}
    return expected


# ---- configuration and life cycle ------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("redis://localhost", "invalid MongoDB URI 'redis://localhost': it must start with"),
        (
            "postgres://user:secret@db/x",
            "invalid MongoDB URI 'postgres://user:***@db/x'",
        ),
        (42, "MongoDBDataStore needs a MongoDB URI or a pymongo AsyncMongoClient, not int"),
    ],
)
def test_bad_targets_are_refused(target: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        MongoDBDataStore(target)


@pytest.mark.parametrize("name", ["", "a.b", "with space", "x" * 64, "a$b"])
def test_bad_database_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid MongoDB database name"):
        MongoDBDataStore("mongodb://localhost", name)


@pytest.mark.anyio
async def test_unreachable_server_fails_fast_naming_the_host(broker: LocalEventBroker) -> None:
    port = free_port()
    store = MongoDBDataStore(
        f"mongodb://horae:s3cret@127.0.0.1:{port}/", server_selection_timeout=0.5
    )
    started = time.monotonic()
    with pytest.raises(
        DataStoreError, match=f"cannot connect to MongoDB at 127.0.0.1:{port}: "
    ) as info:
        await store.start(broker, LOGGER)
    assert time.monotonic() - started < 3
    forget_leaked_sockets()
    assert "s3cret" not in str(info.value)
    assert "check the URI and that the server is running" in str(info.value)
    assert "s3cret" not in repr(store)


@pytest.mark.anyio
async def test_standalone_server_is_refused(broker: LocalEventBroker) -> None:
    server = SecantusDBServer(
        host="127.0.0.1", port=0, storage_path=":memory:", replica_set_name=None
    )
    server.start()
    try:
        store = MongoDBDataStore(server.uri, server_selection_timeout=2)
        message = (
            f"MongoDB at 127.0.0.1:{server.address[1]} is a standalone server, but "
            f"MongoDBDataStore needs multi-document transactions: run it as a replica set"
        )
        with pytest.raises(DataStoreError, match=re.escape(message)):
            await store.start(broker, LOGGER)
        forget_leaked_sockets()
    finally:
        server.stop()


@pytest.mark.anyio
async def test_methods_need_a_started_store(mongodb_uri: str) -> None:
    store = MongoDBDataStore(mongodb_uri)
    with pytest.raises(RuntimeError, match="the MongoDBDataStore is not started"):
        await store.get_tasks()


@pytest.mark.anyio
async def test_schema_is_created_once_and_restarts_change_nothing(
    mongodb_uri: str, database: str, admin: Admin, broker: LocalEventBroker
) -> None:
    for _ in range(3):
        async with Started(MongoDBDataStore(mongodb_uri, database), broker) as store:
            await store.add_task(TASK)
    db = admin[database]
    assert list(db["metadata"].find()) == [{"_id": "schema", "version": 1}]
    assert set(db.list_collection_names()) == {
        "metadata", "tasks", "schedules", "jobs", "job_results", "locks"
    }  # fmt: skip
    indexes = {name: set(db[name].index_information()) for name in ("schedules", "jobs")}
    assert indexes == {
        "schedules": {"_id_", "due", "pause_end", "lease"},
        "jobs": {"_id_", "pending", "order", "lease", "deadline", "schedule"},
    }
    assert set(db["job_results"].index_information()) == {"_id_", "expiry"}


@pytest.mark.anyio
async def test_newer_schema_version_is_refused(
    mongodb_uri: str, database: str, admin: Admin, broker: LocalEventBroker
) -> None:
    admin[database]["metadata"].insert_one({"_id": "schema", "version": 2})
    store = MongoDBDataStore(mongodb_uri, database)
    message = (
        rf"the MongoDB database {database!r} at .+ was created by a newer version of horae "
        rf"\(schema version 2, this version supports 1\); upgrade horae"
    )
    with pytest.raises(SchemaVersionError, match=message):
        await store.start(broker, LOGGER)
    # nothing was created in a database this version does not understand
    assert admin[database].list_collection_names() == ["metadata"]


@pytest.mark.anyio
async def test_a_database_used_by_something_else_is_refused(
    mongodb_uri: str, database: str, admin: Admin, broker: LocalEventBroker
) -> None:
    admin[database]["metadata"].insert_one({"_id": "schema", "version": "x"})
    store = MongoDBDataStore(mongodb_uri, database)
    with pytest.raises(DataStoreError, match="not a horae schema version; is the database used"):
        await store.start(broker, LOGGER)


@pytest.mark.anyio
async def test_user_client_is_shared_and_left_open(
    mongodb_uri: str, database: str, broker: LocalEventBroker
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    try:
        async with Started(MongoDBDataStore(client, database), broker) as store:
            await store.add_schedule(schedule("s1"), ConflictPolicy.exception)
        # stopping the store left the client open; a new instance sees the data
        async with Started(MongoDBDataStore(client, database), broker) as store:
            assert [s.id for s in await store.get_schedules()] == ["s1"]
        assert await client[database]["schedules"].count_documents({}) == 1
    finally:
        await client.close()


@pytest.mark.anyio
async def test_times_keep_their_microseconds(
    mongodb_uri: str, database: str, broker: LocalEventBroker
) -> None:
    # BSON dates keep milliseconds; the store keeps integer microseconds instead.
    async with Started(MongoDBDataStore(mongodb_uri, database), broker) as store:
        early = schedule("early", T0 + timedelta(microseconds=1))
        late = schedule("late", T0 + timedelta(microseconds=2))
        await store.add_schedule(late, ConflictPolicy.exception)
        await store.add_schedule(early, ConflictPolicy.exception)
        assert await store.get_schedules() == [early, late]
        assert await store.get_next_schedule_time() == early.next_fire_time
        acquired = await store.acquire_schedules("n1", T0 + timedelta(microseconds=1), LEASE, 10)
        assert [s.id for s in acquired] == ["early"]


@pytest.mark.anyio
async def test_pickle_serializer_keeps_exception_objects(
    mongodb_uri: str, database: str, broker: LocalEventBroker
) -> None:
    store = MongoDBDataStore(mongodb_uri, database, serializer=PickleSerializer())
    assert store.capabilities.keeps_exception_objects
    assert not MongoDBDataStore(mongodb_uri, database).capabilities.keeps_exception_objects
    async with Started(store, broker):
        job = Job(task_id="task", start_time=T0, created_at=T0, result_expiration_time=LEASE)
        await store.add_jobs([job])
        [running] = await store.acquire_jobs("w1", T0, LEASE, 1)
        error = KeyError("missing")
        result = attrs.evolve(
            success(running, T0),
            outcome=JobOutcome.error,
            exception=error,
            exception_type="builtins.KeyError",
            exception_message=str(error),
        )
        assert await store.release_job("w1", result)
        stored = await store.get_job_result(job.id)
        assert stored is not None
        assert isinstance(stored.exception, KeyError)
        assert stored.exception.args == ("missing",)


# ---- what is stored --------------------------------------------------------------------


@pytest.mark.anyio
async def test_unreadable_documents_are_reported_not_fatal(
    mongodb_uri: str, database: str, admin: Admin, broker: LocalEventBroker
) -> None:
    events = record(broker)
    async with Started(MongoDBDataStore(mongodb_uri, database), broker) as store:
        await store.add_schedule(schedule("good"), ConflictPolicy.exception)
        await store.add_schedule(schedule("bad"), ConflictPolicy.exception)
        job = Job(task_id="task", start_time=T0, created_at=T0, result_expiration_time=LEASE)
        await store.add_jobs([job])
        db = admin[database]
        db["schedules"].update_one({"_id": "bad"}, {"$set": {"trigger": {"type": "nope"}}})
        db["jobs"].update_one({"_id": job.id}, {"$set": {"args": b"\xff not json"}})

        assert [s.id for s in await store.get_schedules()] == ["good"]
        [failed] = [e for e in events if isinstance(e, ScheduleDeserializationFailed)]
        assert failed.schedule_id == "bad"
        assert "Schedule.trigger" in failed.exception
        # a job that cannot be read is ended as deserialization_failed, not handed out
        assert await store.acquire_jobs("w1", T0, LEASE, 10) == []
        result = await store.get_job_result(job.id)
        assert result is not None
        assert result.outcome is JobOutcome.deserialization_failed
        assert "Job.args" in (result.exception_message or "")
        [released] = [e for e in events if isinstance(e, JobReleased)]
        assert released.outcome is JobOutcome.deserialization_failed


@pytest.mark.anyio
@pytest.mark.parametrize("retry", [False, True], ids=["ended", "retried"])
async def test_release_job_whose_commit_reply_was_lost_is_not_repeated(
    mongodb_uri: str,
    database: str,
    broker: LocalEventBroker,
    monkeypatch: pytest.MonkeyPatch,
    retry: bool,
) -> None:
    # The retrier runs a transaction again when its commit reply is lost (it may have
    # committed); the repeat must find what the first run did and answer the same.
    events = record(broker)
    async with Started(MongoDBDataStore(mongodb_uri, database), broker) as store:
        job = Job(task_id="task", start_time=T0, created_at=T0, result_expiration_time=LEASE)
        await store.add_jobs([job])
        [running] = await store.acquire_jobs("w1", T0, LEASE, 1)
        transaction = store._transaction

        async def committed_twice(description: str, body: Any) -> Any:
            if description == "release_job":
                await transaction(description, body)
            return await transaction(description, body)

        monkeypatch.setattr(store, "_transaction", committed_twice)
        retry_at = T0 + INTERVAL if retry else None
        assert await store.release_job("w1", success(running, T0), retry_at=retry_at)
        [released] = [e for e in events if isinstance(e, JobReleased)]
        assert (released.retry_at, released.started_at) == (retry_at, T0)
        if retry:
            [pending] = await store.get_jobs()
            assert (pending.attempt, pending.start_time) == (2, retry_at)
            assert await store.get_job_result(job.id) is None
        else:
            assert await store.get_jobs() == []
            assert await store.get_job_result(job.id) is not None


@pytest.mark.anyio
async def test_a_job_that_cannot_be_read_is_not_cancelled(
    mongodb_uri: str, database: str, admin: Admin, broker: LocalEventBroker
) -> None:
    async with Started(MongoDBDataStore(mongodb_uri, database), broker) as store:
        job = Job(task_id="task", start_time=T0, created_at=T0)
        await store.add_jobs([job])
        admin[database]["jobs"].update_one({"_id": job.id}, {"$set": {"args": b"\xff"}})
        with pytest.raises(DeserializationError, match=r"Job\.args"):
            await store.cancel_job(job.id, T0)
        assert admin[database]["jobs"].count_documents({"_id": job.id}) == 1


@pytest.mark.anyio
async def test_abandoned_job_is_retried_whatever_its_retry_on(
    mongodb_uri: str, database: str, admin: Admin, broker: LocalEventBroker
) -> None:
    # retry_on plays no part for an abandoned job, so an exception class that cannot be
    # imported (any more) does not keep it from its next attempt.
    async with Started(MongoDBDataStore(mongodb_uri, database), broker) as store:
        policy = RetryPolicy(max_attempts=2, backoff=INTERVAL, jitter=False)
        job = Job(task_id="task", start_time=T0, created_at=T0, retry=policy)
        await store.add_jobs([job])
        await store.acquire_jobs("dead", T0, LEASE, 1)
        admin[database]["jobs"].update_one(
            {"_id": job.id}, {"$set": {"retry.retry_on": ["gone.module:Error"]}}
        )
        reap = T0 + LEASE + timedelta(seconds=1)
        assert await store.acquire_jobs("w2", reap, LEASE, 1) == []
        stored = admin[database]["jobs"].find_one({"_id": job.id})
        assert stored is not None
        assert (stored["attempt"], stored["acquired_by"]) == (2, None)
        assert from_epoch_us(stored["start_time"]) == reap + INTERVAL


@pytest.mark.anyio
async def test_fire_guard_is_a_watermark_on_the_schedule(
    mongodb_uri: str, database: str, admin: Admin, broker: LocalEventBroker
) -> None:
    async with Started(MongoDBDataStore(mongodb_uri, database), broker) as store:
        await store.add_schedule(schedule("s1"), ConflictPolicy.exception)
        [s1] = await store.acquire_schedules("n1", T0 + 2 * INTERVAL, LEASE, 1)
        created = await store.release_schedules("n1", [catch_up(s1, T0 + 2 * INTERVAL)])
        assert [job.scheduled_fire_time for job in created] == [
            T0 + k * INTERVAL for k in range(3)
        ]
        stored = admin[database]["schedules"].find_one({"_id": "s1"})
        assert stored is not None
        assert from_epoch_us(stored["fired_until"]) == T0 + 2 * INTERVAL
        # A node that took the schedule over with a stale view repeats fire times:
        # only the new one makes a job.
        await store.add_schedule(schedule("s1"), ConflictPolicy.replace)
        [again] = await store.acquire_schedules("n2", T0 + 3 * INTERVAL, LEASE, 1)
        created = await store.release_schedules("n2", [catch_up(again, T0 + 3 * INTERVAL)])
        assert [job.scheduled_fire_time for job in created] == [T0 + 3 * INTERVAL]


# ---- round trips -----------------------------------------------------------------------


class CommandCounter(monitoring.CommandListener):
    """Counts the commands a client sends, by name."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in ("hello", "isMaster", "endSessions", "ping"):
            self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> list[str]:
        names, self.names = self.names, []
        return names


@pytest.mark.anyio
async def test_batches_cost_the_same_round_trips_whatever_their_size(
    mongodb_uri: str, database: str, broker: LocalEventBroker
) -> None:
    counter = CommandCounter()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_uri, event_listeners=[counter]
    )
    costs: dict[int, dict[str, list[str]]] = {}
    try:
        async with Started(MongoDBDataStore(client, database), broker) as store:
            await store.add_task(Task(id="task", func_ref="builtins:print", max_running_jobs=500))
            for size in (1, 50):
                ids = [f"b{size}-{number:03}" for number in range(size)]
                for schedule_id in ids:
                    await store.add_schedule(schedule(schedule_id), ConflictPolicy.exception)
                counter.take()
                acquired = await store.acquire_schedules("n1", T0, LEASE, size)
                assert len(acquired) == size
                cost = {"acquire_schedules": counter.take()}
                await store.release_schedules("n1", [catch_up(s, T0) for s in acquired])
                cost["release_schedules"] = counter.take()
                assert len(await store.acquire_jobs("w1", T0, LEASE, size)) == size
                cost["acquire_jobs"] = counter.take()
                costs[size] = cost
    finally:
        await client.close()
    assert costs[1] == costs[50]
    assert costs[1]["acquire_schedules"] == ["find", "find", "update"]
    assert costs[1]["release_schedules"] == ["find", "update", "update", "commitTransaction"]
    assert costs[1]["acquire_jobs"][-2:] == ["update", "commitTransaction"]
    assert len(costs[1]["acquire_jobs"]) <= 7


# ---- outages ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_store_rides_out_a_real_server_outage(
    tmp_path: Path, broker: LocalEventBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A private server (on disk) is stopped for 1.5 seconds and a new one started on the
    same port and data while a scheduler loop runs: the calls wait and retry, and every
    fire time makes exactly one job."""
    server = RestartableServer(tmp_path / "data")
    server.start()
    try:
        store = MongoDBDataStore(server.uri, "outage", server_selection_timeout=0.5)
        async with Started(store, broker):
            await store.add_task(TASK)
            for number in range(5):
                await store.add_schedule(schedule(f"s{number:02}"), ConflictPolicy.exception)
            back = anyio.Event()

            async def outage() -> None:
                await anyio.sleep(0.3)
                await anyio.to_thread.run_sync(server.stop)
                await anyio.sleep(1.5)
                await anyio.to_thread.run_sync(server.start)
                back.set()

            with caplog.at_level(logging.WARNING, LOGGER.name):
                async with anyio.create_task_group() as group:
                    group.start_soon(outage)
                    step = after = 0
                    # keep going until the server is back and some steps ran after it
                    while after < 3:
                        await run_loop(store, "node", T0 + step * INTERVAL)
                        step += 1
                        after += back.is_set()
            assert any("retrying in" in r.getMessage() for r in caplog.records)
            expected = await expected_fires(store, T0, INTERVAL)
            assert await store.get_jobs() == []  # every job ran
        admin: Admin = MongoClient(server.uri)
        try:
            stored = fires_of(admin["outage"])
        finally:
            admin.close()
        assert len(stored) == len(set(stored))  # no fire time made two jobs
        assert set(stored) == expected  # and none was lost
        assert len(expected) == 5 * step
    finally:
        server.stop()


# ---- two processes race ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
async def test_two_processes_make_each_fire_exactly_once(
    tmp_path: Path, mongodb_uri: str, database: str, admin: Admin, broker: LocalEventBroker
) -> None:
    """Two OS processes loop acquire_schedules -> release_schedules -> acquire_jobs ->
    release_job on 200 interval schedules, with stalls past their leases. Every (schedule,
    fire time) up to each schedule's final position makes exactly one job, and every job
    runs exactly once."""
    start = SystemClock().now()
    async with Started(MongoDBDataStore(mongodb_uri, database), broker) as store:
        await store.add_task(TASK)
        for number in range(200):
            fire = start + number * RACE_INTERVAL / 200
            await store.add_schedule(
                Schedule(id=f"s{number:03}", task_id="task", trigger=TRIGGER, next_fire_time=fire),
                ConflictPolicy.exception,
            )
    outputs = [tmp_path / f"node{node}.json" for node in (1, 2)]
    codes: dict[int, tuple[int | None, bytes]] = {}

    async def run_node(node: int) -> None:
        command = [sys.executable, str(RACE_NODE), "mongodb", mongodb_uri, database]
        command += [f"n{node}", "5"]
        process = await anyio.run_process([*command, str(outputs[node - 1])], check=False)
        codes[node] = (process.returncode, process.stderr)

    async with anyio.create_task_group() as group:
        for node in (1, 2):
            group.start_soon(run_node, node)
    for code, stderr in codes.values():
        assert code == 0, stderr.decode(errors="replace")
    reports = [json.loads(out.read_text()) for out in outputs]
    created = [tuple(pair) for report in reports for pair in report["created"]]
    ran = [job_id for report in reports for job_id in report["ran"]]
    assert all(report["created"] for report in reports)  # both nodes did real work
    assert len(created) == len(set(created))  # no fire time made two jobs
    assert len(ran) == len(set(ran))  # no job ran twice

    async with Started(MongoDBDataStore(mongodb_uri, database), broker) as store:
        expected: set[tuple[str, datetime]] = set()
        for s in await store.get_schedules():
            first = start + int(s.id[1:]) * RACE_INTERVAL / 200
            assert s.next_fire_time is not None
            count = (s.next_fire_time - first) // RACE_INTERVAL
            assert first + count * RACE_INTERVAL == s.next_fire_time
            expected |= {(s.id, first + k * RACE_INTERVAL) for k in range(count)}
        assert {(sid, datetime.fromisoformat(when)) for sid, when in created} == expected
        assert len(expected) >= 100  # real work; how much depends on the machine
    stored = fires_of(admin[database])
    assert len(stored) == len(set(stored))  # the store holds one job per fire time
    assert set(stored) == expected
    results = admin[database]["job_results"].find({}, {"outcome": 1})
    assert sorted(str(doc["_id"]) for doc in results if doc["outcome"] == "success") == sorted(ran)
