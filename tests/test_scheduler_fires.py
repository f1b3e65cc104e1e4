"""AsyncScheduler: from schedules to jobs. Coalescing after downtime, misfires, jitter,
pause/unpause, id conflicts, running limits and idleness (on a FakeClock)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest

from horae import (
    AsyncScheduler,
    CoalescePolicy,
    ConflictingIdError,
    ConflictPolicy,
    Job,
    JobOutcome,
    ScheduleLookupError,
    SchedulerRole,
    events,
)
from horae.datastores.memory import MemoryDataStore
from horae.testing import FakeClock
from horae.triggers import CronTrigger, IntervalTrigger, Trigger

pytestmark = pytest.mark.anyio

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
TIMEOUT = 10
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


async def nothing() -> None:
    """A job that does nothing."""


@asynccontextmanager
async def scheduler_at(clock: FakeClock, **kwargs: Any) -> AsyncIterator[AsyncScheduler]:
    """A scheduler whose services run; processing starts when the test says so."""
    async with AsyncScheduler(clock=clock, **kwargs) as scheduler:
        yield scheduler


async def jobs_after_downtime(
    trigger: Trigger, downtime: timedelta, **schedule_args: Any
) -> tuple[list[Job], AsyncScheduler]:
    """Add a schedule, let *downtime* pass with nobody processing, then let a scheduler
    (that does not run jobs) catch up once; return the jobs it made."""
    clock = FakeClock(T0, autojump=True)
    made = anyio.Event()
    async with scheduler_at(clock, role=SchedulerRole.scheduler) as scheduler:
        scheduler.subscribe(lambda event: made.set(), events.ScheduleUpdated)
        await scheduler.add_schedule(nothing, trigger, id="s", **schedule_args)
        clock.advance(downtime)
        await scheduler.start_in_background()
        await made.wait()
        jobs = await scheduler.get_jobs()
        schedule = await scheduler.get_schedule("s")
        assert schedule.next_fire_time is not None
        assert schedule.next_fire_time > clock.now()
        return jobs, scheduler


# ---- coalescing after downtime ------------------------------------------------------------


class CountingTrigger(Trigger):
    """Wraps a trigger and counts the ``next()`` calls the scheduler makes on it, so a
    test can check that catch-up jumps instead of walking every missed fire."""

    def __init__(self, inner: Trigger) -> None:
        self.inner = inner
        self.exclude = None
        self.calls = 0

    def _next(self, after: datetime | None) -> datetime | None:
        self.calls += 1
        return self.inner.next(after)

    def _to_state(self) -> dict[str, Any]:
        return self.inner.to_state()

    @classmethod
    def _from_state(cls, state: Mapping[str, Any], version: int, exclude: Any) -> Trigger:
        return cls(Trigger.from_state(state))


async def test_latest_makes_one_job_after_two_years_of_a_one_second_interval() -> None:
    trigger = CountingTrigger(IntervalTrigger(seconds=1, start_time=T0))
    downtime = timedelta(days=730, microseconds=500)
    with anyio.fail_after(TIMEOUT):
        jobs, _ = await jobs_after_downtime(trigger, downtime)
    assert [job.scheduled_fire_time for job in jobs] == [T0 + timedelta(days=730)]
    # O(1): a handful of next() calls, not a walk through 63 million missed fires
    assert trigger.calls <= 10


async def test_latest_after_downtime_with_a_sparse_cron_trigger() -> None:
    trigger = CronTrigger(hour=9, minute=30, timezone="Europe/Berlin", start_time=T0)
    with anyio.fail_after(TIMEOUT):
        jobs, _ = await jobs_after_downtime(trigger, timedelta(days=400, hours=3))
    (job,) = jobs
    assert job.scheduled_fire_time == datetime(2031, 2, 4, 8, 30, tzinfo=timezone.utc)


async def test_earliest_makes_one_job_for_the_first_missed_fire() -> None:
    trigger = IntervalTrigger(seconds=1, start_time=T0)
    with anyio.fail_after(TIMEOUT):
        jobs, scheduler = await jobs_after_downtime(
            trigger, timedelta(days=730), coalesce=CoalescePolicy.earliest
        )
        async with scheduler:
            schedule = await scheduler.get_schedule("s")
    assert [job.scheduled_fire_time for job in jobs] == [T0]
    assert schedule.next_fire_time == T0 + timedelta(days=730, seconds=1)


async def test_all_makes_one_job_per_missed_fire() -> None:
    trigger = IntervalTrigger(minutes=1, start_time=T0)
    with anyio.fail_after(TIMEOUT):
        jobs, _ = await jobs_after_downtime(
            trigger, timedelta(hours=1, seconds=30), coalesce="all"
        )
    assert [job.scheduled_fire_time for job in jobs] == [T0 + i * MINUTE for i in range(61)]


async def test_all_catches_up_in_rounds_of_bounded_size() -> None:
    clock = FakeClock(T0, autojump=True)
    caught_up = anyio.Event()
    releases: list[datetime | None] = []

    def on_update(event: events.ScheduleUpdated) -> None:
        releases.append(event.next_fire_time)
        if event.next_fire_time is not None and event.next_fire_time > clock.now():
            caught_up.set()

    with anyio.fail_after(TIMEOUT):
        async with scheduler_at(clock, role=SchedulerRole.scheduler) as scheduler:
            scheduler.subscribe(on_update, events.ScheduleUpdated)
            trigger = IntervalTrigger(seconds=1, start_time=T0)
            await scheduler.add_schedule(nothing, trigger, coalesce=CoalescePolicy.all)
            clock.advance(2500.5)
            await scheduler.start_in_background()
            await caught_up.wait()
            jobs = await scheduler.get_jobs()
    assert len(jobs) == 2501
    assert len({job.scheduled_fire_time for job in jobs}) == 2501
    assert releases == [T0 + 1000 * SECOND, T0 + 2000 * SECOND, T0 + 2501 * SECOND]


# ---- misfires ----------------------------------------------------------------------------


async def test_a_job_that_cannot_start_in_time_misses_its_start_deadline() -> None:
    clock = FakeClock(T0, autojump=True)
    released: list[events.JobReleased] = []
    with anyio.fail_after(TIMEOUT):
        async with scheduler_at(clock) as scheduler:
            scheduler.subscribe(released.append, events.JobReleased)
            await scheduler.add_schedule(
                nothing, IntervalTrigger(hours=1, start_time=T0), id="late",
                misfire_grace_time=10, job_result_expiration_time=60,
            )  # fmt: skip
            clock.advance(timedelta(hours=1, seconds=30))  # downtime: 30 s late
            await scheduler.start_in_background()
            while not released:
                await clock.sleep(1)
    (event,) = released
    assert event.outcome is JobOutcome.missed_start_deadline
    assert event.scheduled_fire_time == T0 + timedelta(hours=1)
    assert event.started_at is None


async def test_a_job_blocked_by_max_running_jobs_misses_its_deadline() -> None:
    clock = FakeClock(T0, autojump=True)
    outcomes: list[JobOutcome] = []

    async def hog() -> None:
        await clock.sleep(60)

    with anyio.fail_after(TIMEOUT):
        async with scheduler_at(clock) as scheduler:
            scheduler.subscribe(lambda e: outcomes.append(e.outcome), events.JobReleased)
            await scheduler.configure_task(hog, max_running_jobs=1, misfire_grace_time=5)
            await scheduler.add_job(hog)
            await scheduler.add_job(hog)
            await scheduler.start_in_background()
            while len(outcomes) < 2:
                await clock.sleep(1)
    assert sorted(outcomes) == [JobOutcome.missed_start_deadline, JobOutcome.success]


# ---- jitter -------------------------------------------------------------------------------


async def test_jitter_never_reaches_past_the_next_fire_time() -> None:
    trigger = IntervalTrigger(seconds=10, start_time=T0)
    with anyio.fail_after(TIMEOUT):
        jobs, _ = await jobs_after_downtime(
            trigger, timedelta(seconds=995), coalesce="all", max_jitter=timedelta(hours=1)
        )
    assert len(jobs) == 100
    for job in jobs:
        assert job.scheduled_fire_time is not None
        assert timedelta(0) <= job.jitter <= 10 * SECOND
        assert job.start_time == job.scheduled_fire_time + job.jitter
    assert len({job.jitter for job in jobs}) > 1


async def test_jitter_stays_within_max_jitter() -> None:
    trigger = IntervalTrigger(seconds=10, start_time=T0)
    with anyio.fail_after(TIMEOUT):
        jobs, _ = await jobs_after_downtime(trigger, timedelta(seconds=995), coalesce="all",
                                            jitter=2)  # fmt: skip
    assert all(timedelta(0) <= job.jitter <= 2 * SECOND for job in jobs)
    assert any(job.jitter > timedelta(0) for job in jobs)


# ---- pause and unpause -------------------------------------------------------------------


@asynccontextmanager
async def paused_for_an_hour() -> AsyncIterator[tuple[AsyncScheduler, FakeClock]]:
    clock = FakeClock(T0, autojump=True)
    async with scheduler_at(clock, role=SchedulerRole.scheduler) as scheduler:
        await scheduler.add_schedule(nothing, IntervalTrigger(minutes=10, start_time=T0),
                                     id="p", paused=True)  # fmt: skip
        await scheduler.start_in_background()
        await clock.sleep(3600 + 30)
        assert await scheduler.get_jobs() == []
        yield scheduler, clock


async def test_unpause_without_resume_from_follows_the_coalesce_policy() -> None:
    with anyio.fail_after(TIMEOUT):
        async with paused_for_an_hour() as (scheduler, clock):
            await scheduler.unpause_schedule("p")
            await clock.sleep(1)
            jobs = await scheduler.get_jobs()
            assert [job.scheduled_fire_time for job in jobs] == [T0 + timedelta(hours=1)]
            assert (await scheduler.get_schedule("p")).next_fire_time == T0 + 70 * MINUTE


async def test_unpause_from_now_skips_the_missed_fires() -> None:
    with anyio.fail_after(TIMEOUT):
        async with paused_for_an_hour() as (scheduler, clock):
            await scheduler.unpause_schedule("p", resume_from="now")
            await clock.sleep(1)
            assert await scheduler.get_jobs() == []
            schedule = await scheduler.get_schedule("p")
            assert not schedule.paused
            assert schedule.next_fire_time == T0 + 70 * MINUTE


async def test_unpause_from_a_later_time() -> None:
    with anyio.fail_after(TIMEOUT):
        async with paused_for_an_hour() as (scheduler, _):
            await scheduler.unpause_schedule("p", resume_from=T0 + 90 * MINUTE)
            assert (await scheduler.get_schedule("p")).next_fire_time == T0 + 90 * MINUTE
            with pytest.raises(ValueError, match="resume_from must be a timezone-aware"):
                await scheduler.unpause_schedule("p", resume_from=datetime(2031, 1, 1))
            with pytest.raises(ValueError, match="resume_from must be None, 'now' or an aware"):
                await scheduler.unpause_schedule("p", resume_from="later")  # type: ignore[arg-type]
            with pytest.raises(ScheduleLookupError, match="no schedule with the id 'nope'"):
                await scheduler.unpause_schedule("nope")


async def test_pause_stops_the_jobs() -> None:
    clock = FakeClock(T0, autojump=True)
    with anyio.fail_after(TIMEOUT):
        async with scheduler_at(clock, role=SchedulerRole.scheduler) as scheduler:
            await scheduler.add_schedule(nothing, IntervalTrigger(minutes=1, start_time=T0),
                                         id="p")  # fmt: skip
            await scheduler.start_in_background()
            await clock.sleep(30)
            await scheduler.pause_schedule("p")
            assert (await scheduler.get_schedule("p")).paused
            await clock.sleep(600)
            assert len(await scheduler.get_jobs()) == 1  # only the fire before the pause


# ---- conflicts ---------------------------------------------------------------------------


async def test_conflict_policies() -> None:
    clock = FakeClock(T0)
    first = IntervalTrigger(minutes=1, start_time=T0)
    second = IntervalTrigger(minutes=2, start_time=T0)
    with anyio.fail_after(TIMEOUT):
        async with scheduler_at(clock) as scheduler:
            assert await scheduler.add_schedule(nothing, first, id="x") == "x"
            assert await scheduler.add_schedule(nothing, second, id="x") == "x"
            assert (await scheduler.get_schedule("x")).trigger == first  # do_nothing
            with pytest.raises(ConflictingIdError, match="a schedule with the id 'x' already"):
                await scheduler.add_schedule(nothing, second, id="x",
                                             conflict_policy=ConflictPolicy.exception)  # fmt: skip
            assert (await scheduler.get_schedule("x")).trigger == first
            await scheduler.add_schedule(nothing, second, id="x", conflict_policy="replace")
            assert (await scheduler.get_schedule("x")).trigger == second
            generated = await scheduler.add_schedule(nothing, first)
            assert len(generated) == 36  # a uuid4 string
            assert [s.id for s in await scheduler.get_schedules()] == sorted([generated, "x"])
            await scheduler.remove_schedule("x")
            with pytest.raises(ScheduleLookupError):
                await scheduler.get_schedule("x")
            with pytest.raises(ScheduleLookupError):
                await scheduler.remove_schedule("x")


# ---- running limits -----------------------------------------------------------------------


async def peak_concurrency(**schedule_args: Any) -> tuple[int, int]:
    """Run a 1-second schedule of 3-second jobs for a while; return (peak, jobs run)."""
    clock = FakeClock(T0, autojump=True)
    running = peak = done = 0

    async def slow() -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await clock.sleep(3)
        running -= 1
        done += 1

    async with scheduler_at(clock) as scheduler:
        await scheduler.configure_task(slow, **schedule_args.pop("task", {}))
        await scheduler.add_schedule(slow, IntervalTrigger(seconds=1, start_time=T0),
                                     **schedule_args)  # fmt: skip
        await scheduler.start_in_background()
        await clock.sleep(30)
    return peak, done


async def test_task_max_running_jobs() -> None:
    with anyio.fail_after(TIMEOUT):
        peak, done = await peak_concurrency(task={"max_running_jobs": 2})
    assert peak == 2
    assert done >= 15


async def test_schedule_max_running_jobs() -> None:
    with anyio.fail_after(TIMEOUT):
        peak, done = await peak_concurrency(max_running_jobs=1)
    assert peak == 1
    assert done >= 9


async def test_without_limits_jobs_overlap() -> None:
    with anyio.fail_after(TIMEOUT):
        peak, _ = await peak_concurrency()
    assert peak == 3


# ---- idleness ----------------------------------------------------------------------------


class CountingStore(MemoryDataStore):
    """A memory store that counts the calls the scheduler's loops make."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    async def acquire_schedules(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Any]:
        self._count("acquire_schedules")
        return await super().acquire_schedules(scheduler_id, now, lease_duration, limit)

    async def acquire_jobs(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Job]:
        self._count("acquire_jobs")
        return await super().acquire_jobs(scheduler_id, now, lease_duration, limit)

    async def get_next_schedule_time(self) -> datetime | None:
        self._count("get_next_schedule_time")
        return await super().get_next_schedule_time()

    async def get_next_job_time(self) -> datetime | None:
        self._count("get_next_job_time")
        return await super().get_next_job_time()


async def test_an_idle_scheduler_does_not_wake_up() -> None:
    clock = FakeClock(T0, autojump=True)
    store = CountingStore()
    with anyio.fail_after(TIMEOUT):
        async with scheduler_at(clock, data_store=store, cleanup_interval=None) as scheduler:
            await scheduler.start_in_background()
            await clock.sleep(3600)
            idle_calls = dict(store.calls)
            await clock.sleep(30 * 86400)
            assert store.calls == idle_calls
            # a daily schedule costs a few calls per fire, not per poll interval
            await scheduler.add_schedule(
                nothing, CronTrigger(hour=3, timezone="UTC", start_time=clock.now())
            )
            await clock.sleep(10 * 86400)
    assert idle_calls == {
        "acquire_schedules": 1, "get_next_schedule_time": 1,
        "acquire_jobs": 1, "get_next_job_time": 1,
    }  # fmt: skip
    assert store.calls["acquire_schedules"] <= 1 + 10 * 2
    assert store.calls["acquire_jobs"] <= 1 + 10 * 4


class FlakyStore(MemoryDataStore):
    """A memory store whose acquisitions fail a few times, as a lost database would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts: list[datetime] = []

    async def acquire_schedules(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Any]:
        self.attempts.append(now)
        if len(self.attempts) <= self.failures:
            raise ConnectionError("database unreachable")
        return await super().acquire_schedules(scheduler_id, now, lease_duration, limit)


async def test_store_errors_are_logged_and_retried_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(T0, autojump=True)
    store = FlakyStore(failures=4)
    released = anyio.Event()
    with anyio.fail_after(TIMEOUT):
        async with scheduler_at(clock, data_store=store) as scheduler:
            scheduler.subscribe(lambda event: released.set(), events.JobReleased)
            await scheduler.add_schedule(nothing, IntervalTrigger(hours=1, start_time=T0))
            await scheduler.start_in_background()
            await released.wait()
    gaps = [b - a for a, b in zip(store.attempts, store.attempts[1:], strict=False)]
    assert gaps[:4] == [timedelta(seconds=s) for s in (0.5, 1, 2, 4)]
    assert caplog.text.count("Error while processing schedules; retrying in") == 4
    assert "database unreachable" in caplog.text


# ---- leases --------------------------------------------------------------------------------


async def test_running_jobs_renew_their_leases() -> None:
    clock = FakeClock(T0, autojump=True)

    async def long_job() -> str:
        await clock.sleep(300)  # ten lease durations
        return "done"

    with anyio.fail_after(TIMEOUT):
        async with scheduler_at(clock, lease_duration=timedelta(seconds=30)) as scheduler:
            await scheduler.start_in_background()
            assert await scheduler.run_job(long_job) == "done"


class LeaseLosingStore(MemoryDataStore):
    """A memory store that reports every job lease as taken over by another node."""

    async def extend_job_leases(
        self, scheduler_id: str, job_ids: Any, now: datetime, lease_duration: timedelta
    ) -> set[Any]:
        return set()


async def test_a_job_whose_lease_was_taken_over_is_cancelled_and_not_released() -> None:
    clock = FakeClock(T0, autojump=True)
    cancelled = anyio.Event()
    released: list[events.JobReleased] = []

    async def long_job() -> None:
        try:
            await clock.sleep(300)
        finally:
            cancelled.set()

    with anyio.fail_after(TIMEOUT):
        async with scheduler_at(
            clock, data_store=LeaseLosingStore(), lease_duration=timedelta(seconds=30)
        ) as scheduler:
            scheduler.subscribe(released.append, events.JobReleased)
            await scheduler.start_in_background()
            await scheduler.add_job(long_job)
            await cancelled.wait()
            assert clock.now() == T0 + timedelta(seconds=10)  # at the first renewal
            assert released == []  # the new holder records the outcome, not us
            while not released:
                await clock.sleep(1)
    # nobody took it over here, so the lapsed lease ends it as abandoned
    assert [event.outcome for event in released] == [JobOutcome.abandoned]
