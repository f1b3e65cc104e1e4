"""AsyncScheduler: life cycle, events, tasks, jobs and results (on a FakeClock)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest

from horae import (
    AsyncScheduler,
    JobCancelled,
    JobDeadlineMissed,
    JobLookupError,
    JobOutcome,
    JobResultNotReady,
    RunState,
    SchedulerRole,
    TaskLookupError,
    current_job,
    current_scheduler,
    events,
    task,
)
from horae.datastores.memory import MemoryDataStore
from horae.testing import FakeClock
from horae.triggers import DateTrigger

pytestmark = pytest.mark.anyio

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
TIMEOUT = 10
HOUR = timedelta(hours=1)


@asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[AsyncScheduler]:
    kwargs.setdefault("clock", FakeClock(T0, autojump=True))
    async with AsyncScheduler(**kwargs) as scheduler:
        await scheduler.start_in_background()
        yield scheduler


async def double(value: int) -> int:
    return value * 2


async def boom() -> None:
    raise ValueError("boom")


def thread_double(value: int) -> int:
    return value * 2


# ---- life cycle and events ---------------------------------------------------------------


async def test_every_event_of_a_simple_run_in_order() -> None:
    clock = FakeClock(T0, autojump=True)
    seen: list[events.Event] = []
    scheduler = AsyncScheduler(clock=clock)
    scheduler.subscribe(seen.append)
    done = anyio.Event()
    scheduler.subscribe(lambda event: done.set(), events.JobReleased)
    with anyio.fail_after(TIMEOUT):
        async with scheduler:
            await scheduler.add_schedule(double, DateTrigger(T0 + timedelta(minutes=1)), id="once",
                                         args=[1])  # fmt: skip
            await scheduler.start_in_background()
            await done.wait()
    names = [type(event).__name__ for event in seen]
    assert names == [
        "TaskAdded", "ScheduleAdded", "SchedulerStarted", "JobAdded", "ScheduleRemoved",
        "JobAcquired", "JobReleased", "SchedulerStopped",
    ]  # fmt: skip
    by_name = {type(event).__name__: event for event in seen}
    assert by_name["ScheduleAdded"] == events.ScheduleAdded(
        timestamp=T0, schedule_id="once", task_id=f"{__name__}:double",
        next_fire_time=T0 + timedelta(minutes=1),
    )  # fmt: skip
    removed = by_name["ScheduleRemoved"]
    assert isinstance(removed, events.ScheduleRemoved)
    assert removed.finished
    released = by_name["JobReleased"]
    assert isinstance(released, events.JobReleased)
    assert released.outcome is JobOutcome.success
    assert released.scheduled_fire_time == T0 + timedelta(minutes=1)
    assert released.started_at == released.finished_at == T0 + timedelta(minutes=1)
    stopped = by_name["SchedulerStopped"]
    assert isinstance(stopped, events.SchedulerStopped)
    assert stopped.exception is None


def state(scheduler: AsyncScheduler) -> RunState:
    return scheduler.state  # a call, so that mypy does not narrow it between awaits


async def test_states_through_the_life_cycle() -> None:
    scheduler = AsyncScheduler(clock=FakeClock(T0, autojump=True))
    assert state(scheduler) is RunState.stopped
    with anyio.fail_after(TIMEOUT):
        async with scheduler:
            assert state(scheduler) is RunState.stopped  # services only
            await scheduler.start_in_background()
            assert state(scheduler) is RunState.started
            await scheduler.stop()
            assert state(scheduler) is RunState.stopping
            await scheduler.wait_until_stopped()
            assert state(scheduler) is RunState.stopped
            await scheduler.stop()  # harmless when stopped
            await scheduler.start_in_background()  # and it can start again
            assert state(scheduler) is RunState.started
    assert state(scheduler) is RunState.stopped


async def test_run_until_stopped_returns_when_a_job_stops_the_scheduler() -> None:
    async def stop_it() -> None:
        await current_scheduler.get().stop()

    scheduler = AsyncScheduler(clock=FakeClock(T0, autojump=True))
    with anyio.fail_after(TIMEOUT):
        async with scheduler:
            await scheduler.add_schedule(stop_it, "interval", hours=1, start_date=T0 + HOUR)
            await scheduler.run_until_stopped()
    assert scheduler.clock.now() == T0 + timedelta(hours=1)


async def test_methods_need_the_services() -> None:
    scheduler = AsyncScheduler(clock=FakeClock(T0))
    with pytest.raises(RuntimeError, match=r"start_in_background\(\) needs the scheduler's"):
        await scheduler.start_in_background()
    with pytest.raises(RuntimeError, match=r"add_schedule\(\) needs the scheduler's services"):
        await scheduler.add_schedule(double, "interval", seconds=1)
    with anyio.fail_after(TIMEOUT):
        async with scheduler:
            with pytest.raises(RuntimeError, match="already entered"):
                await scheduler.__aenter__()
            await scheduler.start_in_background()
            with pytest.raises(RuntimeError, match="the scheduler is already running"):
                await scheduler.start_in_background()


async def test_stop_lets_running_jobs_finish_and_releases_them() -> None:
    clock = FakeClock(T0, autojump=True)
    started = anyio.Event()
    proceed = anyio.Event()
    released: list[events.JobReleased] = []

    async def slow() -> str:
        started.set()
        await proceed.wait()
        await clock.sleep(5)  # still inside the 30 s grace period
        return "done"

    with anyio.fail_after(TIMEOUT):
        async with running(clock=clock) as scheduler:
            scheduler.subscribe(released.append, events.JobReleased)
            job_id = await scheduler.add_job(slow, result_expiration_time=60)
            await started.wait()
            await scheduler.stop()
            proceed.set()
            await scheduler.wait_until_stopped()
            assert await scheduler.get_jobs() == []
            result = await scheduler.get_job_result(job_id, wait=False)
    assert result.outcome is JobOutcome.success
    assert result.return_value == "done"
    assert [event.outcome for event in released] == [JobOutcome.success]


async def test_jobs_still_running_after_the_grace_period_are_cancelled() -> None:
    clock = FakeClock(T0, autojump=True)
    started = anyio.Event()

    async def forever() -> None:
        started.set()
        await anyio.sleep_forever()

    with anyio.fail_after(TIMEOUT):
        async with running(clock=clock, stop_grace_period=timedelta(seconds=5)) as scheduler:
            job_id = await scheduler.add_job(forever, result_expiration_time=60)
            await started.wait()
            await scheduler.stop()
            await scheduler.wait_until_stopped()
            assert await scheduler.get_jobs() == []
            result = await scheduler.get_job_result(job_id)
    assert result.outcome is JobOutcome.cancelled
    assert clock.now() == T0 + timedelta(seconds=5)


async def test_a_failing_event_callback_does_not_break_the_scheduler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad_callback(event: events.Event) -> None:
        raise RuntimeError("callback trouble")

    with anyio.fail_after(TIMEOUT):
        async with running() as scheduler:
            scheduler.subscribe(bad_callback, events.JobAdded)
            assert await scheduler.run_job(double, args=[4]) == 8
    assert "callback trouble" in caplog.text


async def test_one_shot_subscription_sees_one_event() -> None:
    seen: list[events.Event] = []
    with anyio.fail_after(TIMEOUT):
        async with running() as scheduler:
            scheduler.subscribe(seen.append, [events.JobReleased], one_shot=True)
            await scheduler.run_job(double, args=[1])
            await scheduler.run_job(double, args=[2])
    assert len(seen) == 1


def test_subscribe_checks_its_arguments() -> None:
    scheduler = AsyncScheduler()
    with pytest.raises(TypeError, match="callback must be callable"):
        scheduler.subscribe("print")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="event_types must hold event classes"):
        scheduler.subscribe(print, [int])  # type: ignore[type-var]


# ---- jobs and results ------------------------------------------------------------------


async def test_run_job_returns_the_value_of_async_and_thread_jobs() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running() as scheduler:
            assert await scheduler.run_job(double, args=[21]) == 42
            assert await scheduler.run_job(thread_double, kwargs={"value": 5}) == 10


async def test_run_job_raises_the_jobs_exception() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running() as scheduler:
            with pytest.raises(ValueError, match="boom"):
                await scheduler.run_job(boom)


async def test_run_job_raises_job_cancelled() -> None:
    started = anyio.Event()

    async def forever() -> None:
        started.set()
        await anyio.sleep_forever()

    outcome: list[BaseException] = []
    with anyio.fail_after(TIMEOUT):
        async with running(stop_grace_period=timedelta(0)) as scheduler:

            async def call() -> None:
                try:
                    await scheduler.run_job(forever)
                except JobCancelled as exc:
                    outcome.append(exc)

            async with anyio.create_task_group() as group:
                group.start_soon(call)
                await started.wait()
                await scheduler.stop()
    assert len(outcome) == 1
    assert "was cancelled" in str(outcome[0])


async def test_run_job_raises_job_deadline_missed() -> None:
    clock = FakeClock(T0, autojump=True)

    @task(id="limited", max_running_jobs=1, misfire_grace_time=timedelta(seconds=10))
    async def hog(seconds: float) -> None:
        await clock.sleep(seconds)

    with anyio.fail_after(TIMEOUT):
        async with running(clock=clock) as scheduler:
            await scheduler.add_job(hog, args=[60])
            with pytest.raises(JobDeadlineMissed, match="could not start before its start"):
                await scheduler.run_job(hog, args=[0])


async def test_a_job_past_its_timeout_is_cancelled() -> None:
    clock = FakeClock(T0, autojump=True)

    @task(job_timeout=timedelta(seconds=5))
    async def too_slow() -> None:
        await clock.sleep(60)

    with anyio.fail_after(TIMEOUT):
        async with running(clock=clock) as scheduler:
            with pytest.raises(TimeoutError, match="ran longer than its job_timeout"):
                await scheduler.run_job(too_slow)
    assert clock.now() == T0 + timedelta(seconds=5)


async def test_job_results_are_kept_until_they_expire() -> None:
    clock = FakeClock(T0, autojump=True)
    with anyio.fail_after(TIMEOUT):
        async with running(clock=clock, cleanup_interval=timedelta(seconds=30)) as scheduler:
            kept = await scheduler.add_job(double, args=[3], result_expiration_time=60)
            result = await scheduler.get_job_result(kept)
            assert result.outcome is JobOutcome.success
            assert result.return_value == 6
            assert result.expires_at == result.finished_at + timedelta(seconds=60)
            await clock.sleep(120)
            with pytest.raises(JobLookupError, match="no job with the id"):
                await scheduler.get_job_result(kept)


async def test_a_result_without_expiration_time_is_not_kept() -> None:
    done = anyio.Event()
    with anyio.fail_after(TIMEOUT):
        async with running() as scheduler:
            scheduler.subscribe(lambda event: done.set(), events.JobReleased)
            job_id = await scheduler.add_job(double, args=[1])
            await done.wait()
            with pytest.raises(JobLookupError):
                await scheduler.get_job_result(job_id)


async def test_failed_job_results_carry_the_exception() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running() as scheduler:
            job_id = await scheduler.add_job(boom, result_expiration_time=60)
            result = await scheduler.get_job_result(str(job_id))
    assert result.outcome is JobOutcome.error
    assert isinstance(result.exception, ValueError)
    assert (result.exception_type, result.exception_message) == ("ValueError", "boom")


async def test_get_job_result_without_waiting() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running(role=SchedulerRole.scheduler) as scheduler:  # nobody runs jobs
            job_id = await scheduler.add_job(double, args=[1])
            with pytest.raises(JobResultNotReady, match="has not finished yet"):
                await scheduler.get_job_result(job_id, wait=False)
            (job,) = await scheduler.get_jobs()
            assert job.id == job_id
            assert job.args == (1,)


async def test_context_variables_inside_async_and_thread_jobs() -> None:
    async def in_loop() -> tuple[str, bool]:
        return str(current_job.get().id), current_scheduler.get() is scheduler

    def in_thread() -> tuple[str, bool, bool]:
        return (
            str(current_job.get().id),
            current_scheduler.get() is scheduler,
            threading.current_thread() is not threading.main_thread(),
        )

    with anyio.fail_after(TIMEOUT):
        async with running() as scheduler:
            job_id = await scheduler.add_job(in_loop, result_expiration_time=60)
            assert (await scheduler.get_job_result(job_id)).return_value == (str(job_id), True)
            job_id = await scheduler.add_job(in_thread, result_expiration_time=60)
            assert (await scheduler.get_job_result(job_id)).return_value == (
                str(job_id), True, True,
            )  # fmt: skip
    with pytest.raises(LookupError):
        current_job.get()


async def test_max_concurrent_jobs_bounds_the_node() -> None:
    clock = FakeClock(T0, autojump=True)
    running_now = 0
    peak = 0

    async def work() -> None:
        nonlocal running_now, peak
        running_now += 1
        peak = max(peak, running_now)
        await clock.sleep(10)
        running_now -= 1

    with anyio.fail_after(TIMEOUT):
        async with running(clock=clock, max_concurrent_jobs=2) as scheduler:
            ids = [await scheduler.add_job(work, result_expiration_time=60) for _ in range(5)]
            for job_id in ids:
                assert (await scheduler.get_job_result(job_id)).outcome is JobOutcome.success
    assert peak == 2
    assert clock.now() == T0 + timedelta(seconds=30)


# ---- tasks ------------------------------------------------------------------------------


@task(id="decorated", max_running_jobs=2, misfire_grace_time=30, metadata={"team": "ops"})
def decorated_job() -> str:
    return "decorated"


async def test_the_task_decorator_configures_the_task() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running() as scheduler:
            assert await scheduler.run_job(decorated_job) == "decorated"
            (stored,) = await scheduler.get_tasks()
    assert stored.id == "decorated"
    assert stored.func_ref == f"{__name__}:decorated_job"
    assert stored.job_executor == "threadpool"
    assert stored.max_running_jobs == 2
    assert stored.misfire_grace_time == timedelta(seconds=30)
    assert dict(stored.metadata) == {"team": "ops"}


async def test_configure_task_creates_and_updates() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running() as scheduler:
            created = await scheduler.configure_task(double, max_running_jobs=3)
            assert created.id == f"{__name__}:double"
            assert created.job_executor == "async"
            assert created.max_running_jobs == 3
            updated = await scheduler.configure_task(created.id, misfire_grace_time=5)
            assert updated.max_running_jobs == 3
            assert updated.misfire_grace_time == timedelta(seconds=5)
            named = await scheduler.configure_task("by-name", func=thread_double)
            assert named.func_ref == f"{__name__}:thread_double"
            assert await scheduler.run_job("by-name", args=[2]) == 4
            assert [t.id for t in await scheduler.get_tasks()] == sorted(
                ["by-name", f"{__name__}:double"]
            )
            with pytest.raises(TaskLookupError, match="no task with the id 'unknown'"):
                await scheduler.configure_task("unknown", max_running_jobs=1)
            with pytest.raises(TaskLookupError, match="no task with the id 'unknown'"):
                await scheduler.add_job("unknown")


async def test_lambdas_get_their_own_tasks_in_the_memory_store() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running() as scheduler:
            first = lambda: "first"  # noqa: E731
            second = lambda: "second"  # noqa: E731
            assert await scheduler.run_job(first) == "first"
            assert await scheduler.run_job(second) == "second"
            assert await scheduler.run_job(first) == "first"
            tasks = await scheduler.get_tasks()
    assert len(tasks) == 2
    assert all(t.id.startswith(f"{__name__}:test_lambdas") and t.func_ref is None for t in tasks)


async def test_several_named_stores() -> None:
    other = MemoryDataStore()
    fired: list[str] = []

    async def record(store_name: str) -> None:
        fired.append(store_name)

    stores = {"default": MemoryDataStore(), "other": other}
    with anyio.fail_after(TIMEOUT):
        async with running(data_stores=stores) as scheduler:
            trigger = DateTrigger(T0 + timedelta(seconds=1))
            await scheduler.add_schedule(record, trigger, id="same", args=["default"])
            await scheduler.add_schedule(
                record, trigger, id="same", args=["other"], data_store="other"
            )
            assert [s.args for s in await scheduler.get_schedules()] == [("default",), ("other",)]
            assert (await scheduler.get_schedule("same", data_store="other")).args == ("other",)
            await scheduler.run_job(double, args=[1])
            while len(fired) < 2:
                await scheduler.clock.sleep(1)
            assert await scheduler.get_schedules() == []
    assert sorted(fired) == ["default", "other"]


async def test_roles() -> None:
    store = MemoryDataStore()
    with anyio.fail_after(TIMEOUT):
        async with running(data_store=store, role=SchedulerRole.scheduler) as scheduler:
            await scheduler.add_schedule(
                double, "interval", id="tick", minutes=1, start_time=T0 + timedelta(minutes=1),
                args=[1],
            )  # fmt: skip
            await scheduler.clock.sleep(61)
            assert len(await scheduler.get_jobs()) == 1  # made, not run
        clock = FakeClock(T0 + timedelta(minutes=1), autojump=True)
        async with running(data_store=store, role="worker", clock=clock) as scheduler:
            schedule = await scheduler.get_schedule("tick")
            await clock.sleep(3600)
            assert await scheduler.get_jobs() == []  # run
            assert await scheduler.get_schedule("tick") == schedule  # not advanced
