"""SQLiteDataStore: the public contract, plus SQLite-specific checks.

Every test works on a fresh file under pytest's ``tmp_path``. The SQLite-specific tests
look into the file with the ``sqlite3`` module where the point is what was stored
(schema, versions) or to corrupt a row on purpose.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

import anyio
import pytest
from _race_node import PROFILES
from _store_helpers import LOGGER, T0, TRIGGER, Started, broker, schedule

from horae._clock import SystemClock
from horae._enums import ConflictPolicy, JobOutcome
from horae._exceptions import (
    ConfigurationError,
    DataStoreError,
    SchemaVersionError,
)
from horae._structures import Job, Task
from horae.datastores._base import ScheduleUpdate
from horae.datastores.sqlite import SQLiteDataStore
from horae.eventbrokers.local import LocalEventBroker
from horae.events import Event, JobReleased, ScheduleDeserializationFailed
from horae.serializers._records import (
    JOB_FIELDS,
    JOB_RESULT_FIELDS,
    SCHEDULE_FIELDS,
    TASK_FIELDS,
)
from horae.serializers.pickle import PickleSerializer
from horae.testing import DataStoreContract

LEASE = timedelta(seconds=30)
RACE_NODE = Path(__file__).with_name("_race_node.py")
__all__ = ["broker"]  # the shared fixture, imported for this module's tests

#: Holds SQLite's write lock from another process: ``python -c LOCKER path seconds``.
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
conn.close()
"""


class TestSQLiteDataStore(DataStoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> Callable[[], SQLiteDataStore]:
        return lambda: SQLiteDataStore(tmp_path / "horae.sqlite3")


# ---- helpers ---------------------------------------------------------------------------


def fire_job(schedule_id: str, fire_time: datetime, **changes: object) -> Job:
    return Job(
        task_id="task",
        schedule_id=schedule_id,
        scheduled_fire_time=fire_time,
        start_time=fire_time,
        created_at=fire_time,
        **changes,  # type: ignore[arg-type]
    )


def query(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement on the file directly (another connection, like another tool)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# ---- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize("path", [":memory:", "", "sqlite:///", "file::memory:?cache=shared"])
def test_in_memory_database_is_refused(path: str) -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"SQLiteDataStore cannot use the in-memory database .*; use MemoryDataStore\(\) "
        r"for an in-memory store, or give a file path",
    ):
        SQLiteDataStore(path)


def test_malformed_url_is_refused() -> None:
    with pytest.raises(
        ConfigurationError,
        match=re.escape(
            "invalid SQLite URL 'sqlite://host/x.db': expected 'sqlite:///relative/path.db' "
            "or 'sqlite:////absolute/path.db'"
        ),
    ):
        SQLiteDataStore("sqlite://host/x.db")


def test_busy_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="busy_timeout must be positive, not 0"):
        SQLiteDataStore("x.db", busy_timeout=0)


def test_capabilities_follow_the_serializer() -> None:
    default = SQLiteDataStore("x.db").capabilities
    assert (default.persistent, default.shared, default.requires_references) == (True,) * 3
    assert default.keeps_exception_objects is False
    pickled = SQLiteDataStore("x.db", serializer=PickleSerializer()).capabilities
    assert pickled.keeps_exception_objects is True


@pytest.mark.anyio
async def test_default_path_is_a_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: LocalEventBroker
) -> None:
    monkeypatch.chdir(tmp_path)
    async with Started(SQLiteDataStore(), broker) as store:
        await store.add_task(Task(id="task", func_ref="builtins:print"))
    assert query(tmp_path / "horae.sqlite3", "SELECT id FROM horae_tasks") == [("task",)]


@pytest.mark.anyio
async def test_sqlite_url_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: LocalEventBroker
) -> None:
    monkeypatch.chdir(tmp_path)
    async with Started(SQLiteDataStore("sqlite:///relative.db"), broker) as store:
        await store.add_task(Task(id="task", func_ref="builtins:print"))
    async with Started(SQLiteDataStore(f"sqlite:///{tmp_path}/relative.db"), broker) as store:
        assert [task.id for task in await store.get_tasks()] == ["task"]


# ---- opening the file ------------------------------------------------------------------


@pytest.mark.anyio
async def test_missing_directory_gives_a_clear_error_at_once(
    tmp_path: Path, broker: LocalEventBroker
) -> None:
    path = tmp_path / "missing" / "horae.sqlite3"
    started = time.monotonic()
    with pytest.raises(
        DataStoreError,
        match=re.escape(
            f"cannot open the SQLite database {str(path)!r}: unable to open database file; "
            f"check that its directory exists and that this process may create files in it"
        ),
    ):
        await SQLiteDataStore(path).start(broker, LOGGER)
    assert time.monotonic() - started < 2


@pytest.mark.anyio
async def test_a_file_that_is_not_a_database_gives_a_clear_error(
    tmp_path: Path, broker: LocalEventBroker
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(
        DataStoreError,
        match=re.escape(
            f"cannot open the SQLite database {str(path)!r}: file is not a database; the "
            f"file exists but is not a SQLite database; give a new file name"
        ),
    ):
        await SQLiteDataStore(path).start(broker, LOGGER)


# ---- schema ----------------------------------------------------------------------------


def _schema(path: Path) -> list[tuple[object, ...]]:
    return query(path, "SELECT type, name, sql FROM sqlite_master ORDER BY type, name")


@pytest.mark.anyio
async def test_schema_is_created_once_and_kept_across_restarts(
    tmp_path: Path, broker: LocalEventBroker
) -> None:
    path = tmp_path / "horae.sqlite3"
    # two instances creating the schema of a new file at the same time
    async with Started(SQLiteDataStore(path), broker), Started(SQLiteDataStore(path), broker):
        pass
    first = _schema(path)
    async with Started(SQLiteDataStore(path), broker):
        pass
    assert _schema(path) == first
    indexes = {name for kind, name, _ in first if kind == "index"}
    assert {
        "horae_schedules_due",
        "horae_schedules_leases",
        "horae_jobs_pending",
        "horae_jobs_running",
        "horae_jobs_task",
        "horae_jobs_schedule",
        "horae_job_results_expiry",
    } <= indexes
    assert query(path, "SELECT key, value FROM horae_metadata") == [("schema_version", "1")]
    assert query(path, "PRAGMA journal_mode") == [("wal",)]


def test_tables_have_a_column_per_record_field(tmp_path: Path) -> None:
    path = tmp_path / "horae.sqlite3"
    anyio.run(_start_and_stop, path)
    tables = {
        "horae_tasks": [*TASK_FIELDS],
        "horae_schedules": [*SCHEDULE_FIELDS, "fire_watermark"],
        "horae_jobs": [*JOB_FIELDS],
        "horae_job_results": [*JOB_RESULT_FIELDS],
    }
    for table, columns in tables.items():
        assert [row[1] for row in query(path, f"PRAGMA table_info({table})")] == columns


@pytest.mark.skipif(sqlite3.sqlite_version_info < (3, 35), reason="DROP COLUMN needs 3.35")
def test_a_file_older_than_a_record_field_gets_its_column(tmp_path: Path) -> None:
    path = tmp_path / "horae.sqlite3"
    anyio.run(_start_and_stop, path)
    query(path, "INSERT INTO horae_tasks (id, func_ref) VALUES ('old', 'builtins:print')")
    query(path, "ALTER TABLE horae_tasks DROP COLUMN max_running_jobs")
    anyio.run(_start_and_stop, path)
    assert [row[1] for row in query(path, "PRAGMA table_info(horae_tasks)")] == [
        *[name for name in TASK_FIELDS if name != "max_running_jobs"],
        "max_running_jobs",
    ]
    assert query(path, "SELECT id, max_running_jobs FROM horae_tasks") == [("old", None)]


async def _start_and_stop(path: Path) -> None:
    broker = LocalEventBroker()
    await broker.start(LOGGER)
    try:
        async with Started(SQLiteDataStore(path), broker):
            pass
    finally:
        await broker.stop()


@pytest.mark.anyio
async def test_newer_schema_version_is_refused(tmp_path: Path, broker: LocalEventBroker) -> None:
    path = tmp_path / "horae.sqlite3"
    async with Started(SQLiteDataStore(path), broker):
        pass
    query(path, "UPDATE horae_metadata SET value = '7' WHERE key = 'schema_version'")
    with pytest.raises(
        SchemaVersionError,
        match=re.escape(
            f"the SQLite database {str(path)!r} was created by a newer version of horae "
            f"(schema version 7, this version supports 1); upgrade horae"
        ),
    ):
        await SQLiteDataStore(path).start(broker, LOGGER)
    assert query(path, "SELECT value FROM horae_metadata") == [("7",)]


@pytest.mark.anyio
async def test_data_survives_a_new_instance(tmp_path: Path, broker: LocalEventBroker) -> None:
    path = tmp_path / "horae.sqlite3"
    job = Job(task_id="task", start_time=T0, created_at=T0, args=(1, "two"))
    async with Started(SQLiteDataStore(path), broker) as store:
        await store.add_task(Task(id="task", func_ref="builtins:print", max_running_jobs=2))
        await store.add_schedule(schedule("s1"), ConflictPolicy.exception)
        await store.add_jobs([job])
    async with Started(SQLiteDataStore(path), broker) as store:
        assert (await store.get_task("task")).max_running_jobs == 2
        [stored] = await store.get_schedules()
        assert (stored.trigger, stored.next_fire_time) == (TRIGGER, T0)
        assert await store.get_jobs() == [job]


# ---- fire-time guard -------------------------------------------------------------------


@pytest.mark.anyio
async def test_fire_guard_survives_replace_and_restart(
    tmp_path: Path, broker: LocalEventBroker
) -> None:
    path = tmp_path / "horae.sqlite3"
    async with Started(SQLiteDataStore(path), broker) as store:
        await store.add_schedule(schedule("s1"), ConflictPolicy.exception)
        await store.acquire_schedules("n1", T0, LEASE, 10)
        update = ScheduleUpdate(
            schedule_id="s1",
            next_fire_time=T0 + timedelta(seconds=10),
            last_fire_time=T0,
            jobs=[fire_job("s1", T0)],
        )
        assert len(await store.release_schedules("n1", [update])) == 1
        # every process re-declares its schedules at start: the fire time comes back
        await store.add_schedule(schedule("s1"), ConflictPolicy.replace)
    async with Started(SQLiteDataStore(path), broker) as store:
        assert [s.id for s in await store.acquire_schedules("n2", T0, LEASE, 10)] == ["s1"]
        again = ScheduleUpdate(
            schedule_id="s1",
            next_fire_time=T0 + timedelta(seconds=10),
            last_fire_time=T0,
            jobs=[fire_job("s1", T0)],
        )
        assert await store.release_schedules("n2", [again]) == []
        assert len(await store.get_jobs()) == 1


# ---- undecodable rows ------------------------------------------------------------------


@pytest.mark.anyio
async def test_undecodable_schedule_is_reported_and_left_out(
    tmp_path: Path, broker: LocalEventBroker
) -> None:
    path = tmp_path / "horae.sqlite3"
    events: list[Event] = []
    broker.subscribe(events.append, [ScheduleDeserializationFailed])

    def failures() -> list[tuple[str, bool]]:
        return [
            (e.schedule_id, "no-such-trigger" in e.exception)
            for e in events
            if isinstance(e, ScheduleDeserializationFailed)
        ]

    async with Started(SQLiteDataStore(path), broker) as store:
        await store.add_schedule(schedule("bad"), ConflictPolicy.exception)
        await store.add_schedule(schedule("good"), ConflictPolicy.exception)
        query(
            path,
            "UPDATE horae_schedules SET trigger = ? WHERE id = 'bad'",
            '{"type": "no-such-trigger", "version": 1}',
        )
        assert [s.id for s in await store.get_schedules()] == ["good"]
        assert [s.id for s in await store.acquire_schedules("n1", T0, LEASE, 10)] == ["good"]
        # left leased, so it does not crowd the due index until its lease lapses
        assert await store.acquire_schedules("n2", T0, LEASE, 10) == []
    assert failures() == [("bad", True), ("bad", True)]


@pytest.mark.anyio
async def test_undecodable_job_ends_as_deserialization_failed(
    tmp_path: Path, broker: LocalEventBroker
) -> None:
    path = tmp_path / "horae.sqlite3"
    released: list[Event] = []
    broker.subscribe(released.append, [JobReleased])
    bad = Job(task_id="task", start_time=T0, created_at=T0, result_expiration_time=LEASE)
    good = Job(task_id="task", start_time=T0, created_at=T0)
    async with Started(SQLiteDataStore(path), broker) as store:
        await store.add_jobs([bad, good])
        query(path, "UPDATE horae_jobs SET args = ? WHERE id = ?", b"\xff\x00", str(bad.id))
        assert [job.id for job in await store.acquire_jobs("w1", T0, LEASE, 10)] == [good.id]
        result = await store.get_job_result(bad.id)
        assert result is not None
        assert result.outcome is JobOutcome.deserialization_failed
        assert result.exception_type == "horae._exceptions.DeserializationError"
        assert "invalid stored Job.args value" in (result.exception_message or "")
    [event] = released
    assert isinstance(event, JobReleased)
    assert (event.job_id, event.outcome, event.scheduler_id) == (
        bad.id,
        JobOutcome.deserialization_failed,
        "w1",
    )


# ---- another process holds the lock ----------------------------------------------------


@pytest.mark.anyio
async def test_lock_held_by_another_process_is_waited_out(
    tmp_path: Path, broker: LocalEventBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds SQLite's write lock for two seconds (a transient outage):
    every operation waits and retries, then succeeds; the event loop keeps running
    meanwhile; nothing is lost or duplicated."""
    path = tmp_path / "horae.sqlite3"
    store = SQLiteDataStore(path, busy_timeout=0.2)
    async with Started(store, broker):
        await store.add_task(Task(id="task", func_ref="builtins:print"))
        await store.add_schedule(schedule("s0"), ConflictPolicy.exception)
        gaps: list[float] = []

        async def tick() -> None:
            last = time.monotonic()
            while True:
                await anyio.sleep(0.01)
                gaps.append(time.monotonic() - last)
                last = time.monotonic()

        async def work() -> None:
            for number in range(1, 21):
                await store.add_schedule(schedule(f"s{number}"), ConflictPolicy.exception)
            acquired = await store.acquire_schedules("n1", T0, LEASE, 100)
            updates = [
                ScheduleUpdate(
                    schedule_id=s.id,
                    next_fire_time=T0 + timedelta(seconds=10),
                    last_fire_time=T0,
                    jobs=[fire_job(s.id, T0)],
                )
                for s in acquired
            ]
            assert len(await store.release_schedules("n1", updates)) == 21

        caplog.set_level(logging.WARNING, LOGGER.name)
        async with (
            await anyio.open_process([sys.executable, "-c", LOCKER, str(path), "2"]) as locker,
            anyio.create_task_group() as group,
        ):
            assert locker.stdout is not None
            assert (await locker.stdout.receive()).strip() == b"locked"
            group.start_soon(tick)
            started = time.monotonic()
            await work()
            waited = time.monotonic() - started
            group.cancel_scope.cancel()
        assert waited > 1.5  # it really had to wait for the lock
        assert max(gaps) < 0.5  # the event loop never waited with it
        assert any("SQLite add_schedule failed" in r.getMessage() for r in caplog.records)
        assert any("retrying in" in r.getMessage() for r in caplog.records)
        schedules = await store.get_schedules()
        assert len(schedules) == 21
        assert {s.next_fire_time for s in schedules} == {T0 + timedelta(seconds=10)}
        jobs = await store.get_jobs()
        assert Counter(job.schedule_id for job in jobs) == {s.id: 1 for s in schedules}


# ---- two processes race ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
async def test_two_processes_make_each_fire_exactly_once(
    tmp_path: Path, broker: LocalEventBroker
) -> None:
    """Two OS processes loop acquire_schedules -> release_schedules -> acquire_jobs ->
    release_job on 200 interval schedules, stalling past their leases now and then (so
    the other takes over and the stale release is fenced out). Every (schedule, fire
    time) up to each schedule's final position makes exactly one job, and every job
    runs exactly once."""
    path = tmp_path / "horae.sqlite3"
    interval = PROFILES["sqlite"].interval
    start = SystemClock().now()
    async with Started(SQLiteDataStore(path), broker) as store:
        await store.add_task(Task(id="task", func_ref="builtins:print"))
        for number in range(200):
            await store.add_schedule(
                schedule(f"s{number:03}", start + number * interval / 200),
                ConflictPolicy.exception,
            )
    outputs = [tmp_path / f"node{node}.json" for node in (1, 2)]
    async with anyio.create_task_group() as group:
        for node, output in enumerate(outputs, 1):
            command = [sys.executable, str(RACE_NODE), "sqlite", str(path), "-", f"n{node}", "4"]
            command.append(str(output))
            group.start_soon(functools.partial(anyio.run_process, command, stdout=None))
    reports = [json.loads(out.read_text()) for out in outputs]
    created = [tuple(pair) for report in reports for pair in report["created"]]
    ran = [job_id for report in reports for job_id in report["ran"]]
    assert len(created) == len(set(created))  # no fire time made two jobs
    assert len(ran) == len(set(ran))  # no job ran twice
    assert all(report["created"] for report in reports)  # both nodes did real work
    assert sum(report["fenced"] for report in reports) > 0  # takeovers were fenced

    async with Started(SQLiteDataStore(path), broker) as store:
        expected = set()
        for s in await store.get_schedules():
            first = start + int(s.id[1:]) * interval / 200
            assert s.next_fire_time is not None
            count = (s.next_fire_time - first) // interval
            assert first + count * interval == s.next_fire_time
            expected |= {(s.id, first + k * interval) for k in range(count)}
        assert {(sid, datetime.fromisoformat(when)) for sid, when in created} == expected
        assert len(expected) > 400
        stored = [(job.schedule_id, job.scheduled_fire_time) for job in await store.get_jobs()]
        for job_id in ran:
            result = await store.get_job_result(UUID(job_id))
            assert result is not None
            assert result.outcome is JobOutcome.success
            stored.append((result.schedule_id, result.scheduled_fire_time))
        assert len(stored) == len(expected)
        assert set(stored) == expected
