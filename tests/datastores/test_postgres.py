"""PostgresDataStore: the public contract, plus PostgreSQL-specific checks.

Every test works in a schema of its own (``horae_test_<random>``) in the database named
by ``HORAE_POSTGRES_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and
drops it afterwards. The PostgreSQL-specific tests look into the schema with plain SQL
where the point is what was stored (tables, versions, fire-time keys) or to corrupt a
row on purpose.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import asyncpg  # type: ignore[import-untyped]
import attrs
import pytest
from _postgres_helpers import TracingConnection
from _race_node import PROFILES
from _store_helpers import LOGGER, T0, Started, broker, catch_up, fire_job, record, schedule
from _store_helpers import success as result_of

from _services import POSTGRES_DSN as DSN
from _services import admin, schema
from horae._clock import SystemClock
from horae._enums import ConflictPolicy, JobOutcome
from horae._exceptions import ConfigurationError, DataStoreError, SchemaVersionError
from horae._structures import Task
from horae.datastores._base import ScheduleUpdate
from horae.datastores.postgres import PostgresDataStore
from horae.eventbrokers.local import LocalEventBroker
from horae.events import (
    JobAcquired,
    JobAdded,
    JobReleased,
    ScheduleAdded,
    ScheduleDeserializationFailed,
)
from horae.serializers.pickle import PickleSerializer
from horae.testing import DataStoreContract
from horae.triggers.interval import IntervalTrigger

#: The same server with commits that do not wait for the disk: for tests about logic
#: (the contract, races), where waiting ~10 ms for an fsync per commit only costs time.
FAST_DSN = f"{DSN}{'&' if '?' in DSN else '?'}synchronous_commit=off"
LEASE = timedelta(seconds=30)
STEP = timedelta(seconds=10)
RACE_NODE = Path(__file__).with_name("_race_node.py")
RACE_INTERVAL = PROFILES["postgres"].interval
__all__ = ["admin", "broker", "schema"]  # the shared fixtures, imported for this module's tests

pytestmark = pytest.mark.postgres


class TestPostgresDataStore(DataStoreContract):
    @pytest.fixture
    def store_factory(self, schema: str) -> Callable[[], PostgresDataStore]:
        return lambda: PostgresDataStore(FAST_DSN, schema)


# ---- helpers -------------------------------------------------------------------------


@pytest.fixture
async def tracing_pool(schema: str) -> AsyncIterator[Any]:
    """A pool the test owns, of :class:`TracingConnection` (see ``_postgres_helpers``)."""
    TracingConnection.clear_trace()
    pool = await asyncpg.create_pool(
        FAST_DSN, min_size=1, max_size=2, connection_class=TracingConnection
    )
    try:
        yield pool
    finally:
        TracingConnection.clear_trace()
        await pool.close()


def sent() -> list[tuple[str, tuple[Any, ...]]]:
    """The statements the store sent, with their arguments (not the pool's own
    connection resets), since the last ``TracingConnection.statements.clear()``."""
    return [s for s in TracingConnection.statements if "pg_advisory_unlock_all" not in s[0]]


# ---- configuration and connecting ------------------------------------------------------


@pytest.mark.parametrize(
    "dsn", ["mysql://root:hunter2@db/app", "127.0.0.1:5432", "redis://localhost:6379/0"]
)
def test_a_dsn_that_is_not_postgresql_is_refused(dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid PostgreSQL DSN") as info:
        PostgresDataStore(dsn)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("name", ["", "x" * 64])
def test_an_unusable_schema_name_is_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid PostgreSQL schema name"):
        PostgresDataStore(DSN, name)


def test_capabilities_follow_the_serializer() -> None:
    plain = PostgresDataStore(DSN).capabilities
    assert (plain.persistent, plain.shared, plain.requires_references) == (True, True, True)
    assert plain.keeps_exception_objects is False
    assert PostgresDataStore(
        DSN, serializer=PickleSerializer()
    ).capabilities.keeps_exception_objects


def test_repr_masks_the_password() -> None:
    store = PostgresDataStore("postgresql://app:hunter2@db.example:6543/prod", "jobs")
    assert (
        repr(store)
        == "PostgresDataStore('postgresql://app:***@db.example:6543/prod', schema='jobs')"
    )


@pytest.mark.anyio
async def test_unreachable_server_fails_fast_naming_host_and_port(
    broker: LocalEventBroker,
) -> None:
    store = PostgresDataStore("postgresql://app:hunter2@127.0.0.1:1/test", connect_timeout=3)
    started = time.monotonic()
    with pytest.raises(DataStoreError) as info:
        await store.start(broker, LOGGER)
    assert time.monotonic() - started < 3
    message = str(info.value)
    assert message.startswith(
        "cannot connect to PostgreSQL at 127.0.0.1:1 (database 'test', user 'app'): "
    )
    assert "is the server running on that host and port?" in message
    assert "hunter2" not in message


@pytest.mark.anyio
async def test_missing_database_gives_a_clear_error(admin: Any, broker: LocalEventBroker) -> None:
    dsn = DSN.rsplit("/", 1)[0] + "/horae_no_such_database"
    with pytest.raises(DataStoreError, match="that database does not exist"):
        await PostgresDataStore(dsn).start(broker, LOGGER)


# ---- schema ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_schema_is_created_once_and_kept_across_restarts(
    admin: Any, schema: str, broker: LocalEventBroker
) -> None:
    async with Started(PostgresDataStore(DSN, schema), broker) as store:
        await store.add_task(Task(id="t", func_ref="builtins:print"))
    tables = await admin.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    assert {row[0] for row in tables} == {
        "schema_version", "tasks", "schedules", "jobs", "job_results", "fires", "fire_floors"
    }  # fmt: skip
    for _ in range(2):  # starting again (and two instances at once) changes nothing
        async with (
            Started(PostgresDataStore(DSN, schema), broker) as first,
            Started(PostgresDataStore(DSN, schema), broker),
        ):
            assert [task.id for task in await first.get_tasks()] == ["t"]
    versions = await admin.fetch(f'SELECT version FROM "{schema}".schema_version')
    assert [row[0] for row in versions] == [1]


@pytest.mark.anyio
async def test_concurrent_first_starts_create_the_schema_once(
    admin: Any, schema: str, broker: LocalEventBroker
) -> None:
    stores = [PostgresDataStore(DSN, schema) for _ in range(4)]
    async with anyio.create_task_group() as group:
        for store in stores:
            group.start_soon(store.start, broker, LOGGER)
    for store in stores:
        await store.stop()
    assert await admin.fetchval(f'SELECT count(*) FROM "{schema}".schema_version') == 1


@pytest.mark.anyio
async def test_newer_schema_version_is_refused(
    admin: Any, schema: str, broker: LocalEventBroker
) -> None:
    async with Started(PostgresDataStore(DSN, schema), broker):
        pass
    await admin.execute(f'UPDATE "{schema}".schema_version SET version = 99')
    message = (
        f"the PostgreSQL schema '{schema}' was created by a newer version of horae "
        f"(schema version 99, this version supports 1); upgrade horae"
    )
    with pytest.raises(SchemaVersionError) as info:
        await PostgresDataStore(DSN, schema).start(broker, LOGGER)
    assert str(info.value) == message


@pytest.mark.anyio
async def test_data_survives_a_new_instance(schema: str, broker: LocalEventBroker) -> None:
    job = fire_job("s1", T0)
    async with Started(PostgresDataStore(DSN, schema), broker) as store:
        await store.add_task(Task(id="task", func_ref="builtins:print", max_running_jobs=2))
        await store.add_schedule(schedule("s1"), ConflictPolicy.exception)
        await store.add_jobs([job])
    async with Started(PostgresDataStore(DSN, schema), broker) as store:
        assert (await store.get_task("task")).max_running_jobs == 2
        assert await store.get_schedules() == [schedule("s1")]
        assert await store.get_jobs() == [job]


class Unjsonable:
    """A value that only the pickle serializer can keep."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unjsonable) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


@pytest.mark.anyio
async def test_pickle_serializer_keeps_payloads_and_exception_objects(
    schema: str, broker: LocalEventBroker
) -> None:
    store = PostgresDataStore(FAST_DSN, schema, serializer=PickleSerializer())
    async with Started(store, broker):
        job = attrs.evolve(fire_job("s1", T0), args=(Unjsonable(1),), kwargs={"x": Unjsonable(2)})
        await store.add_jobs([job])
        [running] = await store.acquire_jobs("w1", T0, LEASE, 1)
        assert (running.args, dict(running.kwargs)) == ((Unjsonable(1),), {"x": Unjsonable(2)})
        error = KeyError("missing")
        result = attrs.evolve(
            result_of(running, T0),
            outcome=JobOutcome.error,
            return_value=Unjsonable(3),
            exception=error,
            exception_type="builtins.KeyError",
            exception_message="'missing'",
        )
        assert await store.release_job("w1", result)
        stored = await store.get_job_result(job.id)
    assert stored is not None
    assert stored.return_value == Unjsonable(3)
    assert isinstance(stored.exception, KeyError)
    assert stored.exception.args == ("missing",)


@pytest.mark.anyio
async def test_a_pool_passed_in_stays_open(
    tracing_pool: Any, schema: str, broker: LocalEventBroker
) -> None:
    store = PostgresDataStore(tracing_pool, schema)
    assert repr(store) == f"PostgresDataStore(<pool>, schema='{schema}')"
    async with Started(store, broker):
        await store.add_task(Task(id="t", func_ref="builtins:print"))
    assert await tracing_pool.fetchval(f'SELECT count(*) FROM "{schema}".tasks') == 1


# ---- batching --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_batches_are_one_statement_each_and_use_indexes(
    admin: Any, tracing_pool: Any, schema: str, broker: LocalEventBroker
) -> None:
    """acquire_schedules and release_schedules are one statement for a whole batch;
    acquire_jobs is one statement in a transaction behind the acquisition lock (BEGIN
    and the lock travel together: three round trips). With
    sequential scans disfavoured, no hot-path statement needs one (each is served by an
    index, so its cost does not grow with the number of schedules or jobs)."""
    hot: list[tuple[str, tuple[Any, ...]]] = []
    async with Started(PostgresDataStore(tracing_pool, schema), broker) as store:
        await store.add_task(Task(id="task", func_ref="builtins:print", max_running_jobs=500))
        for number in range(50):
            await store.add_schedule(schedule(f"s{number:02}"), ConflictPolicy.exception)
        TracingConnection.statements.clear()
        acquired = await store.acquire_schedules("n1", T0, LEASE, 100)
        assert len(acquired) == 50
        assert len(sent()) == 1
        hot += sent()
        TracingConnection.statements.clear()
        updates = [
            ScheduleUpdate(
                schedule_id=s.id,
                next_fire_time=T0 + 3 * STEP,
                last_fire_time=T0 + STEP,
                jobs=[fire_job(s.id, T0), fire_job(s.id, T0 + STEP)],
            )
            for s in acquired
        ]
        assert len(await store.release_schedules("n1", updates)) == 100
        assert len(sent()) == 1
        hot += sent()
        TracingConnection.statements.clear()
        assert len(await store.acquire_jobs("w1", T0 + LEASE, LEASE, 100)) == 100
        assert [s[0].strip().split()[0] for s in sent()] == ["BEGIN;", "WITH", "COMMIT"]
        hot.append(sent()[1])
        TracingConnection.statements.clear()
        await store.get_next_schedule_time()
        await store.get_next_job_time()
        hot += sent()
    async with admin.transaction():
        await admin.execute("SET LOCAL enable_seqscan = off")
        for query, args in hot:
            plan = "\n".join(row[0] for row in await admin.fetch(f"EXPLAIN {query}", *args))
            assert "Seq Scan" not in plan, plan


# ---- the fire-time guard ---------------------------------------------------------------


@pytest.mark.anyio
async def test_fire_guard_survives_pruning_replace_and_removal(
    admin: Any, schema: str, broker: LocalEventBroker
) -> None:
    """cleanup folds old fire-time keys into the schedule's floor; a fire time at or
    below the floor, or with a key, never makes a second job, even after the schedule
    was replaced or removed and added again."""
    store = PostgresDataStore(DSN, schema, fire_guard_retention=timedelta(hours=1))
    async with Started(store, broker):
        await store.add_schedule(schedule("s1"), ConflictPolicy.exception)
        fires = [T0 + k * STEP for k in range(6)]
        assert len(await store.acquire_schedules("n1", fires[-1], LEASE, 1)) == 1
        update = ScheduleUpdate(
            schedule_id="s1",
            next_fire_time=fires[-1] + STEP,
            jobs=[fire_job("s1", fire) for fire in fires],
        )
        assert len(await store.release_schedules("n1", [update])) == 6
        # two hours later, keys older than an hour are folded into the floor
        await store.cleanup(fires[-1] + timedelta(hours=2))
        assert await admin.fetchval(f'SELECT count(*) FROM "{schema}".fires') == 0
        assert await admin.fetchval(f'SELECT floor FROM "{schema}".fire_floors') == fires[-1]
        # removed and added again at its first fire time: the old fire times stay done
        await store.remove_schedules(["s1"])
        await store.add_schedule(schedule("s1"), ConflictPolicy.exception)
        assert len(await store.acquire_schedules("n1", fires[-1] + STEP, LEASE, 1)) == 1
        newer = fires[-1] + STEP
        update = ScheduleUpdate(
            schedule_id="s1",
            next_fire_time=newer + STEP,
            jobs=[fire_job("s1", fire) for fire in [*fires, newer]],
        )
        [created] = await store.release_schedules("n1", [update])
        assert created.scheduled_fire_time == newer
        # the new key is exact: replaced and rewound, that time does not fire again
        await store.add_schedule(schedule("s1"), ConflictPolicy.replace)
        await store.acquire_schedules("n1", newer, LEASE, 1)
        update = attrs.evolve(update, jobs=[fire_job("s1", newer)])
        assert await store.release_schedules("n1", [update]) == []
        jobs = await store.get_jobs()
        assert Counter(job.scheduled_fire_time for job in jobs) == {
            **dict.fromkeys(fires, 1),
            newer: 1,
        }


@pytest.mark.anyio
async def test_keys_younger_than_the_retention_are_exact(
    admin: Any, schema: str, broker: LocalEventBroker
) -> None:
    """Within the retention the guard is exact, not a watermark: a fire time that made
    a job is refused, an earlier one that made none (coalesced away) may still make one
    (as a backfill would)."""
    store = PostgresDataStore(DSN, schema, fire_guard_retention=timedelta(hours=1))
    async with Started(store, broker):
        await store.add_schedule(schedule("s1"), ConflictPolicy.exception)
        await store.acquire_schedules("n1", T0 + STEP, LEASE, 1)
        update = ScheduleUpdate(
            schedule_id="s1", next_fire_time=T0 + 2 * STEP, jobs=[fire_job("s1", T0 + STEP)]
        )
        await store.release_schedules("n1", [update])
        await store.cleanup(T0 + timedelta(minutes=59))
        assert await admin.fetchval(f'SELECT count(*) FROM "{schema}".fires') == 1
        # no floor yet: -infinity, which asyncpg hands back as datetime.min
        floor = await admin.fetchval(f'SELECT floor FROM "{schema}".fire_floors')
        assert floor == datetime.min  # noqa: DTZ901 - asyncpg's naive -infinity
        await store.add_schedule(schedule("s1"), ConflictPolicy.replace)  # rewound to T0
        await store.acquire_schedules("n1", T0 + STEP, LEASE, 1)
        update = attrs.evolve(update, jobs=[fire_job("s1", T0), fire_job("s1", T0 + STEP)])
        [created] = await store.release_schedules("n1", [update])
        assert created.scheduled_fire_time == T0


# ---- undecodable rows ------------------------------------------------------------------


@pytest.mark.anyio
async def test_undecodable_schedule_is_reported_and_left_out(
    admin: Any, schema: str, broker: LocalEventBroker
) -> None:
    events = record(broker)
    async with Started(PostgresDataStore(DSN, schema), broker) as store:
        await store.add_schedule(schedule("bad"), ConflictPolicy.exception)
        await store.add_schedule(schedule("good"), ConflictPolicy.exception)
        await admin.execute(
            f"""UPDATE "{schema}".schedules SET trigger = '{{"type": "nope", "version": 1}}'
            WHERE id = 'bad'"""
        )
        assert [s.id for s in await store.get_schedules()] == ["good"]
        assert [s.id for s in await store.acquire_schedules("n1", T0, LEASE, 10)] == ["good"]
    failures = [e for e in events if isinstance(e, ScheduleDeserializationFailed)]
    assert [e.schedule_id for e in failures] == ["bad", "bad"]
    assert "unknown trigger type 'nope'" in failures[0].exception


@pytest.mark.anyio
async def test_undecodable_job_ends_as_deserialization_failed(
    admin: Any, schema: str, broker: LocalEventBroker
) -> None:
    events = record(broker)
    bad, good = fire_job("s1", T0), fire_job("s1", T0 + timedelta(seconds=1))
    async with Started(PostgresDataStore(DSN, schema), broker) as store:
        await store.add_jobs([bad, good])
        await admin.execute(
            f"""UPDATE "{schema}".jobs SET args = 'not json' WHERE id = $1""", bad.id
        )
        acquired = await store.acquire_jobs("w1", T0 + LEASE, LEASE, 10)
        assert [job.id for job in acquired] == [good.id]
        assert [job.id for job in await store.get_jobs()] == [good.id]
        result = await store.get_job_result(bad.id)
    assert result is not None
    assert result.outcome is JobOutcome.deserialization_failed
    assert result.exception_type == "horae._exceptions.DeserializationError"
    [released] = [e for e in events if isinstance(e, JobReleased)]
    assert (released.job_id, released.scheduler_id, released.outcome) == (
        bad.id,
        "w1",
        JobOutcome.deserialization_failed,
    )


# ---- lost connections ------------------------------------------------------------------


@pytest.mark.anyio
async def test_lost_answers_are_retried_without_duplicates(
    tracing_pool: Any, schema: str, broker: LocalEventBroker
) -> None:
    """Each statement below commits on the server, then its connection dies before the
    store sees the answer. The store retries, and the outcome is as if nothing failed:
    the add is reported as done (no ConflictingIdError from its own first attempt), the
    release reports the jobs its lost attempt created, the acquisition hands out the
    jobs its lost attempt leased, the job release reports success, and no job exists
    twice."""
    events = record(broker)
    lose = TracingConnection.lose_answer_of
    async with Started(PostgresDataStore(tracing_pool, schema), broker) as store:
        lose.append("INSERT INTO")
        assert await store.add_schedule(schedule("s1"), ConflictPolicy.exception) is True
        assert len(await store.acquire_schedules("n1", T0, LEASE, 1)) == 1
        job = fire_job("s1", T0)
        lose.append(".fires (schedule_id, fire_time, job_id)")
        update = ScheduleUpdate(schedule_id="s1", next_fire_time=T0 + STEP, jobs=[job])
        assert await store.release_schedules("n1", [update]) == [job]
        lose.append("COMMIT")  # of acquire_jobs
        [acquired] = await store.acquire_jobs("w1", T0 + timedelta(seconds=1), LEASE, 1)
        assert acquired.id == job.id
        assert not lose  # every planned loss happened
        assert [j.id for j in await store.get_jobs()] == [job.id]
        lose.append("result_expiration_time AS expiration")
        assert await store.release_job("w1", result_of(acquired, T0 + timedelta(seconds=2)))
        assert not lose  # every planned loss happened
        assert await store.get_jobs() == []
        stored = await store.get_job_result(job.id)
        assert stored is not None
        assert stored.outcome is JobOutcome.success
    assert [e.schedule_id for e in events if isinstance(e, ScheduleAdded)] == ["s1"]
    assert [e.job_id for e in events if isinstance(e, JobAdded)] == [job.id]
    assert [e.job_id for e in events if isinstance(e, JobAcquired)] == [job.id]
    assert [e.job_id for e in events if isinstance(e, JobReleased)] == [job.id]


@pytest.mark.anyio
async def test_backends_killed_mid_run_are_retried_and_nothing_is_lost_or_doubled(
    admin: Any, schema: str, broker: LocalEventBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Another connection terminates the store's backends (found by their
    application_name) again and again while the store runs a scheduler's loop. Every
    operation is retried through the pool's fresh connections; at the end every fire
    time made exactly one job and every job ran exactly once."""
    app = f"horae_outage_{uuid.uuid4().hex[:8]}"
    store = PostgresDataStore(f"{DSN}?application_name={app}", schema)
    interval = timedelta(seconds=1)
    trigger = IntervalTrigger(seconds=1, start_time=T0)
    hits = 0  # kill rounds that found (and killed) at least one of the store's backends

    async def kill_backends() -> None:
        nonlocal hits
        while True:
            await anyio.sleep(0.25)
            killed = await admin.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
                "pg_stat_activity WHERE application_name = $1) AS t",
                app,
            )
            hits += killed > 0

    ran: list[UUID] = []
    caplog.set_level(logging.WARNING, LOGGER.name)
    step = 0
    async with Started(store, broker):
        await store.add_task(Task(id="task", func_ref="builtins:print"))
        for number in range(5):
            await store.add_schedule(
                schedule(f"s{number:02}", T0, trigger), ConflictPolicy.exception
            )
        async with anyio.create_task_group() as group:
            group.start_soon(kill_backends)
            while step < 20 or hits < 4:
                step += 1
                now = T0 + step * interval
                held = await store.acquire_schedules("n1", now, LEASE, 100)
                await store.release_schedules("n1", [catch_up(s, now, interval) for s in held])
                for job in await store.acquire_jobs("w1", now, LEASE, 100):
                    if await store.release_job("w1", result_of(job, now)):
                        ran.append(job.id)
            group.cancel_scope.cancel()
        schedules = await store.get_schedules()
        assert {s.next_fire_time for s in schedules} == {T0 + (step + 1) * interval}
        results = [await store.get_job_result(job_id) for job_id in ran]
    assert any("retrying in" in r.getMessage() for r in caplog.records)
    assert len(ran) == len(set(ran)) == 5 * (step + 1)
    fired = Counter((r.schedule_id, r.scheduled_fire_time) for r in results if r is not None)
    assert fired == {
        (f"s{number:02}", T0 + k * interval): 1 for number in range(5) for k in range(step + 1)
    }


# ---- two processes race ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
async def test_two_processes_make_each_fire_exactly_once(
    tmp_path: Path, admin: Any, schema: str, broker: LocalEventBroker
) -> None:
    """Two OS processes loop acquire_schedules -> release_schedules -> acquire_jobs ->
    release_job on 200 interval schedules for a few seconds, stalling past their leases
    (the other node takes over; the stale release is fenced out) and re-declaring
    schedules at their first fire time (old fire times come back and must be refused).
    Every (schedule, fire time) up to each schedule's final position made exactly one
    job, and every job ran once."""
    start = SystemClock().now() + timedelta(seconds=1)
    trigger = IntervalTrigger(seconds=RACE_INTERVAL.total_seconds(), start_time=start)
    async with Started(PostgresDataStore(FAST_DSN, schema), broker) as store:
        await store.add_task(Task(id="task", func_ref="builtins:print"))
        for number in range(200):
            await store.add_schedule(
                schedule(f"s{number:03}", start, trigger), ConflictPolicy.exception
            )
    outputs = [tmp_path / f"node{node}.json" for node in (1, 2)]
    async with anyio.create_task_group() as group:
        for node, output in enumerate(outputs, 1):
            command = [
                sys.executable,
                str(RACE_NODE),
                "postgres",
                FAST_DSN,
                schema,
                f"n{node}",
                "3",
                str(output),
            ]
            group.start_soon(functools.partial(anyio.run_process, command, stdout=None))
    reports = [json.loads(out.read_text()) for out in outputs]
    created = [(pair[0], pair[1]) for report in reports for pair in report["created"]]
    ran = [job_id for report in reports for job_id in report["ran"]]
    assert all(report["created"] for report in reports)  # both nodes did real work
    assert sum(report["rewinds"] for report in reports) > 0
    # offered jobs that were not created: fenced-out releases and refused old fire times
    assert sum(report["offered"] for report in reports) > len(created)
    assert len(created) == len(set(created))  # no fire time made two jobs
    assert len(ran) == len(set(ran))  # no job ran twice

    await check_one_job_per_fire(admin, schema, broker, start, created, ran)


async def check_one_job_per_fire(
    admin: Any,
    schema: str,
    broker: LocalEventBroker,
    start: datetime,
    created: list[tuple[str, str]],
    ran: list[str],
) -> None:
    """After the race: every fire time of every schedule, from *start* up to where the
    schedule is now, made exactly one job (no duplicates, no gaps), and every job that
    ran left its result."""
    async with Started(PostgresDataStore(DSN, schema), broker) as store:
        # catch every schedule up to one moment, so that none ends mid-rewind
        end = SystemClock().now()
        held = await store.acquire_schedules("final", end, LEASE, 1000)
        caught_up = await store.release_schedules(
            "final", [catch_up(s, end, RACE_INTERVAL) for s in held]
        )
        for job in caught_up:
            assert job.schedule_id is not None
            assert job.scheduled_fire_time is not None
            created.append((job.schedule_id, job.scheduled_fire_time.isoformat()))
        expected = set()
        for s in await store.get_schedules():
            assert s.next_fire_time is not None
            count = (s.next_fire_time - start) // RACE_INTERVAL
            assert start + count * RACE_INTERVAL == s.next_fire_time
            expected |= {(s.id, start + k * RACE_INTERVAL) for k in range(count)}
    assert len(created) == len(set(created))
    assert {(sid, datetime.fromisoformat(when)) for sid, when in created} == expected
    assert len(expected) > 800
    # every job that exists or existed: pending ones, and the results of the ones run
    rows = await admin.fetch(
        f'SELECT schedule_id, scheduled_fire_time, NULL AS outcome FROM "{schema}".jobs '
        f"UNION ALL SELECT schedule_id, scheduled_fire_time, outcome "
        f'FROM "{schema}".job_results WHERE job_id = ANY($1::uuid[])',
        ran,
    )
    assert sum(row["outcome"] == "success" for row in rows) == len(ran)
    stored = [(row["schedule_id"], row["scheduled_fire_time"]) for row in rows]
    assert len(stored) == len(expected)
    assert set(stored) == expected
