"""RedisDataStore: the public contract, plus Redis-specific checks.

Every test works under a fresh key prefix on the Redis at ``HORAE_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``) and deletes that prefix's keys afterwards; nothing else on
the server is touched. The outage tests kill the store's own connections (found by the
client name the store sets), lose replies through a proxy, or stop a private
``redis-server`` of their own.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

import anyio
import attrs
import pytest
from _race_node import PROFILES
from _redis_helpers import CountingRedis, LossyProxy, RedisServer, free_port
from _store_helpers import (
    LOGGER,
    T0,
    Started,
    broker,
    fire_job,
    record,
    success,
)
from _store_helpers import catch_up as catch_up_every
from _store_helpers import schedule as make_schedule
from redis.asyncio import Redis

from _services import REDIS_HOST, REDIS_PORT, REDIS_URL, redis_client
from horae._clock import SystemClock
from horae._enums import ConflictPolicy, JobOutcome
from horae._exceptions import ConfigurationError, DataStoreError, SchemaVersionError
from horae._structures import Task
from horae.datastores.redis import RedisDataStore
from horae.eventbrokers.local import LocalEventBroker
from horae.events import JobAdded, JobReleased, ScheduleAdded
from horae.serializers.pickle import PickleSerializer
from horae.testing import DataStoreContract
from horae.triggers.interval import IntervalTrigger

RACE_NODE = Path(__file__).with_name("_race_node.py")
INTERVAL = PROFILES["redis"].interval
TRIGGER = IntervalTrigger(seconds=INTERVAL.total_seconds(), start_time=T0)
LEASE = timedelta(seconds=30)
TASK = Task(id="task", func_ref="builtins:print")
__all__ = ["broker", "redis_client"]  # the shared fixtures, imported for this module's tests

schedule = functools.partial(make_schedule, trigger=TRIGGER)
catch_up = functools.partial(catch_up_every, interval=INTERVAL)


async def keys_of(client: Redis, prefix: str) -> list[bytes]:
    """Every key under *prefix*, sorted (SCAN, never KEYS: the server is shared)."""
    return sorted([key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)])


async def drop_prefix(client: Redis, prefix: str) -> None:
    """Delete every key under *prefix* (never the whole database)."""
    keys = await keys_of(client, prefix)
    for start in range(0, len(keys), 500):
        await client.delete(*keys[start : start + 500])


@pytest.fixture
async def prefix(redis_client: Redis) -> AsyncIterator[str]:
    name = f"horae-test-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        await drop_prefix(redis_client, name)


class TestRedisDataStore(DataStoreContract):
    @pytest.fixture
    def store_factory(self, prefix: str) -> Callable[[], RedisDataStore]:
        return lambda: RedisDataStore(REDIS_URL, prefix)


async def run_loop(
    store: RedisDataStore, node: str, start: datetime, steps: int
) -> tuple[list[tuple[str, datetime]], list[UUID]]:
    """Play a scheduler on simulated time: one second per step, every step leases the due
    schedules, releases them with one job per fire time, then runs the due jobs."""
    created: list[tuple[str, datetime]] = []
    ran: list[UUID] = []
    for step in range(steps + 1):
        now = start + timedelta(seconds=step)
        schedules = await store.acquire_schedules(node, now, LEASE, 100)
        jobs = await store.release_schedules(node, [catch_up(s, now) for s in schedules])
        created += [(job.schedule_id or "", job.scheduled_fire_time or now) for job in jobs]
        for job in await store.acquire_jobs(node, now, LEASE, 100):
            assert await store.release_job(node, success(job, now))
            ran.append(job.id)
    return created, ran


async def check_every_fire_once(
    store: RedisDataStore, created: list[tuple[str, datetime]], ran: list[UUID], start: datetime
) -> None:
    """Every fire time of every schedule up to where it stands made exactly one job, and
    every job ran once (its result is stored)."""
    assert len(created) == len(set(created))
    assert len(ran) == len(set(ran))
    expected = set()
    for s in await store.get_schedules():
        assert s.next_fire_time is not None
        count = (s.next_fire_time - start) // INTERVAL
        expected |= {(s.id, start + k * INTERVAL) for k in range(count)}
    assert set(created) == expected
    assert await store.get_jobs() == []
    results = [await store.get_job_result(job_id) for job_id in ran]
    assert sorted((r.schedule_id, r.scheduled_fire_time) for r in results if r) == sorted(expected)


# ---- configuration and life cycle ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost:6379", r"invalid Redis URL 'http://localhost:6379': it must start "),
        (
            "postgresql://bob:hunter2@db/x",
            r"invalid Redis URL 'postgresql://bob:\*\*\*@db/x': it must start with redis://",
        ),
    ],
)
def test_url_of_another_scheme_is_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RedisDataStore(url)


def test_empty_prefix_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="invalid Redis key prefix '': use a non-empty"):
        RedisDataStore(REDIS_URL, "")


@pytest.mark.anyio
async def test_client_that_decodes_responses_is_refused() -> None:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        with pytest.raises(ConfigurationError, match="create it with decode_responses=False"):
            RedisDataStore(client)
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_unreachable_server_fails_fast_naming_the_host(broker: LocalEventBroker) -> None:
    port = free_port()
    store = RedisDataStore(f"redis://bob:hunter2@127.0.0.1:{port}/0", "x")
    started = time.monotonic()
    with pytest.raises(DataStoreError) as caught:
        await store.start(broker, LOGGER)
    assert time.monotonic() - started < 6
    message = str(caught.value)
    assert message.startswith(f"cannot connect to Redis at 127.0.0.1:{port}: ")
    assert message.endswith("(check the URL and that the server is running)")
    assert "hunter2" not in message
    assert "hunter2" not in repr(store)


@pytest.mark.anyio
async def test_wrong_credentials_are_reported(
    redis_client: Redis, broker: LocalEventBroker
) -> None:
    store = RedisDataStore(f"redis://nobody:hunter2@{REDIS_HOST}:{REDIS_PORT}/0", "x")
    with pytest.raises(DataStoreError, match=r"^Redis at .* refused the credentials: ") as caught:
        await store.start(broker, LOGGER)
    assert "hunter2" not in str(caught.value)


@pytest.mark.anyio
async def test_methods_need_a_started_store() -> None:
    with pytest.raises(RuntimeError, match="the RedisDataStore is not started; call 'await"):
        await RedisDataStore(REDIS_URL, "x").get_tasks()


@pytest.mark.anyio
async def test_schema_version_is_recorded_once_and_restarts_change_nothing(
    redis_client: Redis, prefix: str, broker: LocalEventBroker
) -> None:
    async with Started(RedisDataStore(REDIS_URL, prefix), broker) as store:
        await store.add_task(TASK)
        await store.add_schedule(schedule("s1"), ConflictPolicy.exception)
    keys = await keys_of(redis_client, prefix)
    assert await redis_client.get(f"{prefix}:version") == b"1"
    for _ in range(2):
        async with Started(RedisDataStore(REDIS_URL, prefix), broker) as store:
            assert [s.id for s in await store.get_schedules()] == ["s1"]
        assert await keys_of(redis_client, prefix) == keys
    assert await redis_client.get(f"{prefix}:version") == b"1"


@pytest.mark.anyio
async def test_newer_schema_version_is_refused(
    redis_client: Redis, prefix: str, broker: LocalEventBroker
) -> None:
    await redis_client.set(f"{prefix}:version", 2)
    store = RedisDataStore(REDIS_URL, prefix)
    with pytest.raises(SchemaVersionError) as caught:
        await store.start(broker, LOGGER)
    assert str(caught.value) == (
        f"the Redis data under the prefix {prefix!r} at {REDIS_HOST}:{REDIS_PORT} was created "
        f"by a newer version of horae (schema version 2, this version supports 1); upgrade "
        f"horae"
    )


@pytest.mark.anyio
async def test_a_prefix_used_by_something_else_is_refused(
    redis_client: Redis, prefix: str, broker: LocalEventBroker
) -> None:
    await redis_client.set(f"{prefix}:version", "banana")
    with pytest.raises(DataStoreError, match=r"holds b'banana', not a horae schema version"):
        await RedisDataStore(REDIS_URL, prefix).start(broker, LOGGER)


@pytest.mark.anyio
async def test_new_instance_on_a_user_client_sees_the_data_and_leaves_the_client_open(
    redis_client: Redis, prefix: str, broker: LocalEventBroker
) -> None:
    job = fire_job("s1", T0)
    async with Started(RedisDataStore(REDIS_URL, prefix), broker) as store:
        await store.add_task(TASK)
        await store.add_schedule(schedule("s1", T0 + INTERVAL), ConflictPolicy.exception)
        await store.add_jobs([job])
    async with Started(RedisDataStore(redis_client, prefix), broker) as store:
        assert await store.get_tasks() == [TASK]
        assert [s.next_fire_time for s in await store.get_schedules()] == [T0 + INTERVAL]
        assert await store.get_jobs() == [job]
    assert await redis_client.ping()  # stop() closed only what the store opened


@pytest.mark.anyio
async def test_pickle_serializer_keeps_exception_objects(
    prefix: str, broker: LocalEventBroker
) -> None:
    store = RedisDataStore(REDIS_URL, prefix, serializer=PickleSerializer())
    assert store.capabilities.keeps_exception_objects
    assert not RedisDataStore(REDIS_URL, prefix).capabilities.keeps_exception_objects
    async with Started(store, broker):
        job = fire_job("s1", T0)
        await store.add_jobs([job])
        [acquired] = await store.acquire_jobs("node", T0, LEASE, 10)
        error = KeyError("missing")
        result = attrs.evolve(
            success(acquired, T0),
            outcome=JobOutcome.error,
            exception=error,
            exception_type="KeyError",
            exception_message=str(error),
        )
        assert await store.release_job("node", result)
        stored = await store.get_job_result(job.id)
        assert stored is not None
        assert isinstance(stored.exception, KeyError)
        assert stored.exception.args == ("missing",)


@pytest.mark.anyio
async def test_batches_take_one_round_trip(prefix: str, broker: LocalEventBroker) -> None:
    """acquire_schedules, release_schedules (200 jobs, 100 schedules) and acquire_jobs are
    each one round trip, however large the batch."""
    client = CountingRedis.from_url(REDIS_URL)
    try:
        async with Started(RedisDataStore(client, prefix), broker) as store:
            await store.add_task(attrs.evolve(TASK, max_running_jobs=50))
            for number in range(100):
                await store.add_schedule(schedule(f"s{number:03}"), ConflictPolicy.exception)
            now = T0 + INTERVAL
            counts = []
            before = CountingRedis.round_trips
            schedules = await store.acquire_schedules("node", now, LEASE, 100)
            counts.append(CountingRedis.round_trips - before)
            before = CountingRedis.round_trips
            jobs = await store.release_schedules("node", [catch_up(s, now) for s in schedules])
            counts.append(CountingRedis.round_trips - before)
            before = CountingRedis.round_trips
            acquired = await store.acquire_jobs("node", now, LEASE, 200)
            counts.append(CountingRedis.round_trips - before)
            assert (len(schedules), len(jobs), len(acquired)) == (100, 200, 50)
            assert counts == [1, 1, 1]
    finally:
        await client.aclose()


# ---- outages ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_killed_connections_are_retried_without_loss_or_duplicates(
    redis_client: Redis, prefix: str, broker: LocalEventBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """While a scheduler loop runs, the store's connections are killed again and again
    (``CLIENT KILL`` by the client name the store sets); every call is retried, and every
    fire time still makes exactly one job that runs once."""
    async with Started(RedisDataStore(REDIS_URL, prefix), broker) as store:
        await store.add_task(TASK)
        for number in range(10):
            await store.add_schedule(schedule(f"s{number:02}"), ConflictPolicy.exception)
        kills = 0

        async def kill_connections() -> None:
            nonlocal kills
            while True:
                for client in await redis_client.client_list():
                    if client["name"] == f"horae-datastore:{prefix}":
                        kills += await redis_client.client_kill_filter(_id=client["id"])
                await anyio.sleep(0.05)

        with caplog.at_level(logging.WARNING, LOGGER.name):
            async with anyio.create_task_group() as group:
                group.start_soon(kill_connections)
                created, ran = await run_loop(store, "node", T0, 20)
                group.cancel_scope.cancel()
        retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
        assert kills >= 1  # the fault was injected; how often depends on timing
        assert retries  # the kills did hit the store's calls
        await check_every_fire_once(store, created, ran, T0)
        assert len(created) == 10 * 11


@pytest.mark.anyio
async def test_lost_replies_are_replayed(
    redis_client: Redis, prefix: str, broker: LocalEventBroker
) -> None:
    """A reply lost after Redis ran the script (the connection dies in between) does not
    lose or duplicate anything: the retry gets the first run's reply, so the jobs that
    acquire_jobs leased are handed out, release_schedules returns the jobs it made, a
    schedule added with ConflictPolicy.exception does not conflict with itself, and each
    event is published once."""
    events = record(broker)
    async with LossyProxy(REDIS_HOST, REDIS_PORT) as proxy:
        store = RedisDataStore(f"redis://127.0.0.1:{proxy.port}/0", prefix)
        async with Started(store, broker):
            await store.add_task(TASK)
            # warm-up: every script is loaded, every later reply is a script's own
            await store.add_schedule(schedule("warm-up", T0 + LEASE), ConflictPolicy.exception)
            await store.release_schedules("node", [catch_up(schedule("none"), T0)])
            await store.acquire_jobs("node", T0, LEASE, 10)
            await store.release_job("node", success(fire_job("none", T0), T0))

            proxy.drop_replies = 1
            assert await store.add_schedule(schedule("s1"), ConflictPolicy.exception)
            [s1] = await store.acquire_schedules("node", T0, LEASE, 10)

            proxy.drop_replies = 1
            now = T0 + 3 * INTERVAL
            jobs = await store.release_schedules("node", [catch_up(s1, now)])
            assert [job.scheduled_fire_time for job in jobs] == [
                T0 + k * INTERVAL for k in range(4)
            ]

            proxy.drop_replies = 1
            acquired = await store.acquire_jobs("node", now, LEASE, 10)
            assert [job.id for job in acquired] == [job.id for job in jobs]

            proxy.drop_replies = 1
            assert await store.release_job("node", success(acquired[0], now))
            assert proxy.dropped == 4
            assert [job.id for job in await store.get_jobs()] == [job.id for job in jobs[1:]]
            assert await store.acquire_jobs("other", now, LEASE, 10) == []
    assert [e.schedule_id for e in events if isinstance(e, ScheduleAdded)] == ["warm-up", "s1"]
    assert [e.job_id for e in events if isinstance(e, JobAdded)] == [job.id for job in jobs]
    assert [e.job_id for e in events if isinstance(e, JobReleased)] == [jobs[0].id]


@pytest.mark.anyio
async def test_store_rides_out_a_real_server_outage(
    tmp_path: Path, broker: LocalEventBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A private redis-server is stopped for 1.5 seconds and started again while a
    scheduler loop runs: the calls wait and retry, and nothing is lost or duplicated."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH; this test runs a private server of its own")
    server = RedisServer(tmp_path)
    server.start()
    try:
        async with Started(RedisDataStore(server.url, "outage"), broker) as store:
            await store.add_task(TASK)
            for number in range(10):
                await store.add_schedule(schedule(f"s{number:02}"), ConflictPolicy.exception)

            async def outage() -> None:
                await anyio.sleep(0.3)
                await anyio.to_thread.run_sync(server.stop)
                await anyio.sleep(1.5)
                await anyio.to_thread.run_sync(server.start)

            with caplog.at_level(logging.WARNING, LOGGER.name):
                async with anyio.create_task_group() as group:
                    group.start_soon(outage)
                    created: list[tuple[str, datetime]] = []
                    ran: list[UUID] = []
                    started = time.monotonic()
                    step = 0
                    # keep going until the outage is over and some steps ran after it
                    while step < 20 or time.monotonic() - started < 2.5:
                        more_created, more_ran = await run_loop(
                            store, "node", T0 + timedelta(seconds=step), 0
                        )
                        created += more_created
                        ran += more_ran
                        step += 1
                        await anyio.sleep(0.02)
            assert any("retrying in" in r.getMessage() for r in caplog.records)
            await check_every_fire_once(store, created, ran, T0)
            assert len(created) >= 10 * 10
    finally:
        server.stop()


# ---- two processes race ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
async def test_two_processes_make_each_fire_exactly_once(
    tmp_path: Path, prefix: str, broker: LocalEventBroker
) -> None:
    """Two OS processes loop acquire_schedules -> release_schedules -> acquire_jobs ->
    release_job on 200 interval schedules, with stalls past their leases. Every (schedule,
    fire time) up to each schedule's final position makes exactly one job, and every job
    runs exactly once."""
    start = SystemClock().now()
    async with Started(RedisDataStore(REDIS_URL, prefix), broker) as store:
        await store.add_task(TASK)
        for number in range(200):
            await store.add_schedule(
                schedule(f"s{number:03}", start + number * INTERVAL / 200),
                ConflictPolicy.exception,
            )
    outputs = [tmp_path / f"node{node}.json" for node in (1, 2)]
    codes: dict[int, tuple[int | None, bytes]] = {}

    async def run_node(node: int) -> None:
        command = [sys.executable, str(RACE_NODE), "redis", REDIS_URL, prefix, f"n{node}", "4"]
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

    async with Started(RedisDataStore(REDIS_URL, prefix), broker) as store:
        expected = set()
        for s in await store.get_schedules():
            first = start + int(s.id[1:]) * INTERVAL / 200
            assert s.next_fire_time is not None
            count = (s.next_fire_time - first) // INTERVAL
            assert first + count * INTERVAL == s.next_fire_time
            expected |= {(s.id, first + k * INTERVAL) for k in range(count)}
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
