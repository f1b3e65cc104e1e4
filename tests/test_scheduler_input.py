"""AsyncScheduler: bad input raises a specific, helpful exception, and nothing is stored."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest

from horae import (
    AsyncScheduler,
    ConfigurationError,
    SerializationError,
    TaskLookupError,
    task,
)
from horae.datastores import StoreCapabilities
from horae.datastores.memory import MemoryDataStore
from horae.executors import ThreadPoolJobExecutor
from horae.testing import FakeClock
from horae.triggers import CronTrigger, DateTrigger, IntervalTrigger

pytestmark = pytest.mark.anyio

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
TIMEOUT = 10


class ReferenceOnlyStore(MemoryDataStore):
    """A memory store that claims to keep callables only as references, as persistent
    stores do."""

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(persistent=True, shared=False, requires_references=True)


def importable(value: int = 0) -> int:
    return value


class Holder:
    def method(self) -> None:
        """A method of an instance no module-level name refers to."""


@asynccontextmanager
async def services(**kwargs: Any) -> AsyncIterator[AsyncScheduler]:
    stores = {"default": MemoryDataStore(), "refs": ReferenceOnlyStore()}
    async with AsyncScheduler(data_stores=stores, clock=FakeClock(T0), **kwargs) as scheduler:
        yield scheduler


async def assert_nothing_stored(scheduler: AsyncScheduler) -> None:
    assert await scheduler.get_schedules() == []
    assert await scheduler.get_tasks() == []
    assert await scheduler.get_jobs() == []


def make_closure() -> Callable[[], None]:
    def closure() -> None:
        pass

    return closure


@pytest.mark.parametrize(
    ("func", "message"),
    [
        pytest.param(lambda: None, "cannot reference the lambda", id="lambda"),
        pytest.param(make_closure(), "it is defined inside make_closure()", id="closure"),
        pytest.param(Holder().method, "the instance is not a module-level variable", id="bound"),
    ],
)
async def test_unreferenceable_callables_are_refused_by_a_reference_store(
    func: Callable[..., Any], message: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with services() as scheduler:
            with pytest.raises(SerializationError, match=re.escape(message)) as info:
                await scheduler.add_schedule(func, "interval", seconds=5, data_store="refs")
            assert "the data store 'refs' keeps callables as importable" in str(info.value)
            with pytest.raises(SerializationError, match=re.escape(message)):
                await scheduler.add_job(func, data_store="refs")
            await assert_nothing_stored(scheduler)
            # the memory store takes them
            await scheduler.add_schedule(func, "interval", seconds=5)
            assert len(await scheduler.get_schedules()) == 1


async def test_unknown_store_alias() -> None:
    expected = "unknown data store alias 'redis' (known: 'default', 'refs'); register it"
    with anyio.fail_after(TIMEOUT):
        async with services() as scheduler:
            with pytest.raises(ConfigurationError, match=re.escape(expected)):
                await scheduler.add_schedule(importable, "interval", seconds=1, data_store="redis")
            with pytest.raises(ConfigurationError, match=re.escape(expected)):
                await scheduler.add_job(importable, data_store="redis")
            with pytest.raises(ConfigurationError, match=re.escape(expected)):
                await scheduler.get_schedules(data_store="redis")
            await assert_nothing_stored(scheduler)


BAD_SCHEDULE_ARGUMENTS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"trigger": 5}, TypeError, "trigger must be a Trigger, a crontab expression"),
    ({"trigger": "intervall"}, ValueError, "unknown trigger kind 'intervall'; did you mean"),
    (
        {"minute": 1},
        TypeError,
        "unexpected keyword argument 'minute'; did you mean 'minutes'?",
    ),
    ({"id": 5}, TypeError, "id must be a str or None, not int 5"),
    ({"id": ""}, ValueError, "id must not be empty"),
    ({"args": "abc"}, TypeError, "args must be a list or tuple of positional arguments"),
    ({"kwargs": [1]}, TypeError, "kwargs must be a mapping (dict), not list [1]"),
    ({"kwargs": {1: 2}}, TypeError, "kwargs keys must be strings, got 1"),
    ({"paused": "yes"}, TypeError, "paused must be a bool, not str 'yes'"),
    ({"coalesce": "sometimes"}, ValueError, "coalesce must be a CoalescePolicy ('earliest'"),
    ({"conflict_policy": "x"}, ValueError, "conflict_policy must be a ConflictPolicy"),
    ({"misfire_grace_time": "soon"}, TypeError, "misfire_grace_time must be a timedelta or"),
    ({"misfire_grace_time": -1}, ValueError, "misfire_grace_time must not be negative"),
    ({"max_jitter": 1, "jitter": 2}, TypeError, "give either max_jitter= or jitter="),
    ({"max_running_jobs": 0}, ValueError, "max_running_jobs must be at least 1"),
    ({"max_running_jobs": 1.5}, TypeError, "max_running_jobs must be a positive int or None"),
    ({"job_result_expiration_time": -5}, ValueError, "job_result_expiration_time must not"),
    ({"metadata": {1: "x"}}, TypeError, "metadata keys must be strings, got 1"),
    ({"job_executor": "gpu"}, ConfigurationError, "unknown job executor 'gpu' for job_exec"),
    (
        {"job_executor": "processpool", "func": lambda: None},
        SerializationError,
        "(the job executor 'processpool' sends callables to worker processes by reference)",
    ),
    ({"func": 42}, TypeError, "expected a callable or a task id (str), not int 42"),
    ({"func": "no-such-task"}, TaskLookupError, "no task with the id 'no-such-task'"),
    ({"trigger": DateTrigger(T0), "seconds": 1}, TypeError, "cannot be combined with a"),
    (
        {"trigger": CronTrigger(year=2030, start_time=T0 + timedelta(days=400))},
        ValueError,
        "has no fire times left (it ends before its first one); nothing was stored",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_SCHEDULE_ARGUMENTS)
async def test_bad_add_schedule_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    args: dict[str, Any] = {"func": importable, "trigger": "interval"}
    if "trigger" not in kwargs and not {"minute", "seconds"} & set(kwargs):
        args["seconds"] = 5
    args.update(kwargs)
    func, trigger = args.pop("func"), args.pop("trigger")
    with anyio.fail_after(TIMEOUT):
        async with services() as scheduler:
            with pytest.raises(error, match=re.escape(message)):
                await scheduler.add_schedule(func, trigger, **args)
            await assert_nothing_stored(scheduler)


async def test_bad_add_job_and_lookup_arguments() -> None:
    with anyio.fail_after(TIMEOUT):
        async with services() as scheduler:
            with pytest.raises(TypeError, match=re.escape("args must be a list or tuple")):
                await scheduler.add_job(importable, args=5)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="result_expiration_time must not be negative"):
                await scheduler.add_job(importable, result_expiration_time=-1)
            with pytest.raises(TypeError, match="job_id must be a UUID, not int 5"):
                await scheduler.get_job_result(5)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="a schedule id must be a str, not int 5"):
                await scheduler.get_schedule(5)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="count must be at least 1, got 0"):
                await scheduler.preview(IntervalTrigger(seconds=1), count=0)
            await assert_nothing_stored(scheduler)


BAD_CONSTRUCTOR_ARGUMENTS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"data_store": "memory"}, TypeError, "data_store must be a DataStore"),
    (
        {"data_stores": {"x": MemoryDataStore()}},
        ConfigurationError,
        "data_stores has no 'default' store (given: 'x')",
    ),
    (
        {"data_store": MemoryDataStore(), "data_stores": {"default": MemoryDataStore()}},
        ConfigurationError,
        "two default data stores",
    ),
    ({"event_broker": object()}, TypeError, "event_broker must be an EventBroker"),
    ({"role": "boss"}, ValueError, "role must be a SchedulerRole ('scheduler', 'worker'"),
    ({"max_concurrent_jobs": 0}, ValueError, "max_concurrent_jobs must be at least 1"),
    ({"lease_duration": -1}, ValueError, "lease_duration must be positive"),
    ({"cleanup_interval": "often"}, TypeError, "cleanup_interval must be a timedelta"),
    ({"job_executors": {"gpu": object()}}, TypeError, "job_executors['gpu'] must be a"),
    ({"default_job_executor": "gpu"}, ConfigurationError, "unknown job executor 'gpu' for"),
    ({"identity": ""}, TypeError, "identity must be a non-empty str or None"),
    ({"clock": object()}, TypeError, "clock must be a horae Clock"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_CONSTRUCTOR_ARGUMENTS)
def test_bad_constructor_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        AsyncScheduler(**kwargs)


def test_the_task_decorator_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="max_running_jobs must be at least 1"):
        task(max_running_jobs=0)
    with pytest.raises(TypeError, match="misfire_grace_time must be a timedelta or a number"):
        task(misfire_grace_time="1 minute")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="retry must be a RetryPolicy or None, not int 3"):
        task(retry=3)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="@task decorates callables, not int 5"):
        task(id="x")(5)  # type: ignore[type-var]


async def test_the_task_decorator_without_parentheses() -> None:
    @task
    async def plain() -> str:
        return "plain"

    assert await plain() == "plain"  # the function itself is unchanged
    with anyio.fail_after(TIMEOUT):
        async with AsyncScheduler(clock=FakeClock(T0)) as scheduler:
            configured = await scheduler.configure_task(plain, metadata={"a": 1})
    assert configured.job_executor == "async"
    assert configured.id.startswith(f"{__name__}:test_the_task_decorator_without")


async def test_custom_executors_and_the_default_for_plain_functions() -> None:
    pool = ThreadPoolJobExecutor(max_workers=1)
    with anyio.fail_after(TIMEOUT):
        async with AsyncScheduler(
            clock=FakeClock(T0), job_executors={"single": pool}, default_job_executor="single"
        ) as scheduler:
            task = await scheduler.configure_task(importable)
            assert task.job_executor == "single"
            await scheduler.start_in_background()
            assert await scheduler.run_job(importable, args=[7]) == 7


async def test_preview() -> None:
    clock = FakeClock(T0 + timedelta(seconds=30))
    trigger = IntervalTrigger(minutes=1, start_time=T0)
    with anyio.fail_after(TIMEOUT):
        async with AsyncScheduler(clock=clock) as scheduler:
            upcoming = [T0 + timedelta(minutes=m) for m in (1, 2, 3)]
            assert await scheduler.preview(trigger, 3) == upcoming
            await scheduler.add_schedule(importable, trigger, id="p")
            assert await scheduler.preview("p", 2) == [T0, T0 + timedelta(minutes=1)]
            until = DateTrigger(T0 + timedelta(hours=1))
            assert await scheduler.preview(until) == [T0 + timedelta(hours=1)]
