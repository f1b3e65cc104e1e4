"""Job control through the public API, on a FakeClock: timeouts, retries, cancel_job,
run_schedule_now, overlap policies, backfill, max_catchup, sync_schedules and pause
with intent."""

from __future__ import annotations

import itertools
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import anyio
import pytest

from horae import (
    AsyncScheduler,
    JobCancelled,
    JobLookupError,
    JobOutcome,
    OverlapPolicy,
    RetryPolicy,
    ScheduleLookupError,
    SchedulerRole,
    ScheduleSpec,
    current_job,
    current_scheduler,
    events,
)
from horae.testing import FakeClock
from horae.triggers import CronTrigger, DateTrigger, IntervalTrigger

pytestmark = pytest.mark.anyio

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
TIMEOUT = 15
MINUTE = timedelta(minutes=1)


@asynccontextmanager
async def running(clock: FakeClock | None = None, **kwargs: Any) -> AsyncIterator[AsyncScheduler]:
    with anyio.fail_after(TIMEOUT):
        async with AsyncScheduler(clock=clock or FakeClock(T0, autojump=True), **kwargs) as s:
            await s.start_in_background()
            yield s


CALLS: dict[str, int] = {}


class Flaky:
    """Fails the first *failures* calls, then returns the attempt number."""

    @staticmethod
    async def run(key: str, failures: int, exc: str = "ValueError") -> int:
        CALLS[key] = CALLS.get(key, 0) + 1
        job = current_job.get()
        if CALLS[key] <= failures:
            raise {"ValueError": ValueError, "KeyError": KeyError}[exc](f"fail {job.attempt}")
        return job.attempt


async def sleep_on_clock(seconds: float) -> str:
    await current_scheduler.get().clock.sleep(seconds)
    return "slept"


def released(seen: list[events.Event]) -> list[events.JobReleased]:
    return [event for event in seen if isinstance(event, events.JobReleased)]


# ---- retries ------------------------------------------------------------------------------


async def test_retries_with_exponential_backoff_until_success() -> None:
    seen: list[events.Event] = []
    policy = RetryPolicy(max_attempts=3, backoff=timedelta(seconds=10), jitter=False)
    async with running() as scheduler:
        scheduler.subscribe(seen.append, {events.JobReleased})
        await scheduler.configure_task(Flaky.run, retry=policy)
        key = str(uuid4())
        assert await scheduler.run_job(Flaky.run, args=[key, 2]) == 3
    attempts = released(seen)
    assert [(e.attempt, e.outcome) for e in attempts] == [
        (1, JobOutcome.error),
        (2, JobOutcome.error),
        (3, JobOutcome.success),
    ]
    assert {e.job_id for e in attempts} == {attempts[0].job_id}  # one job, three attempts
    assert attempts[0].retry_at == attempts[0].finished_at + timedelta(seconds=10)
    assert attempts[1].retry_at == attempts[1].finished_at + timedelta(seconds=20)
    assert attempts[2].retry_at is None
    assert attempts[1].started_at is not None
    assert attempts[0].retry_at is not None
    assert attempts[1].started_at >= attempts[0].retry_at


async def test_final_failure_is_an_error_with_the_last_attempt() -> None:
    async with running() as scheduler:
        await scheduler.configure_task(
            Flaky.run, retry=RetryPolicy(max_attempts=2, backoff=timedelta(0))
        )
        job_id = await scheduler.add_job(
            Flaky.run, args=[str(uuid4()), 5], result_expiration_time=60
        )
        result = await scheduler.get_job_result(job_id)
    assert (result.outcome, result.attempt, result.exception_type) == (
        JobOutcome.error,
        2,
        "ValueError",
    )


async def test_retry_on_limits_which_exceptions_are_retried() -> None:
    policy = RetryPolicy(max_attempts=5, backoff=timedelta(0), retry_on=(KeyError,))
    async with running() as scheduler:
        await scheduler.configure_task(Flaky.run, retry=policy)
        with pytest.raises(ValueError, match="fail 1"):
            await scheduler.run_job(Flaky.run, args=[str(uuid4()), 3, "ValueError"])
        assert await scheduler.run_job(Flaky.run, args=[str(uuid4()), 3, "KeyError"]) == 4


async def test_schedule_retry_policy_applies_to_its_jobs() -> None:
    seen: list[events.Event] = []
    key = str(uuid4())
    async with running() as scheduler:
        scheduler.subscribe(seen.append, {events.JobReleased})
        done = anyio.Event()
        scheduler.subscribe(
            lambda e: done.set() if e.outcome is JobOutcome.success else None,
            {events.JobReleased},
        )
        await scheduler.add_schedule(
            Flaky.run, DateTrigger(T0 + MINUTE), args=[key, 1],
            retry=RetryPolicy(max_attempts=2, backoff=timedelta(seconds=5)),
        )  # fmt: skip
        await done.wait()
    assert [e.attempt for e in released(seen)] == [1, 2]


def test_retry_policy_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(backoff=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="retry_on"):
        RetryPolicy(retry_on=("ValueError",))
    assert RetryPolicy(retry_on=KeyError).retry_on == (KeyError,)


def test_retry_delay_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(
        backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=5), jitter=False
    )
    assert [policy.delay(n).total_seconds() for n in (1, 2, 3, 4, 100)] == [1, 2, 4, 5, 5]
    jittered = RetryPolicy(backoff=timedelta(seconds=8))
    delays = {jittered.delay(1).total_seconds() for _ in range(50)}
    assert all(4 <= delay <= 8 for delay in delays)
    assert len(delays) > 1


# ---- timeouts -----------------------------------------------------------------------------


async def test_async_job_timeout() -> None:
    async with running() as scheduler:
        await scheduler.configure_task(sleep_on_clock, job_timeout=30)
        with pytest.raises(TimeoutError):
            await scheduler.run_job(sleep_on_clock, args=[3600])
        assert await scheduler.run_job(sleep_on_clock, args=[10]) == "slept"


async def test_timed_out_jobs_are_retried_and_end_timed_out() -> None:
    seen: list[events.Event] = []
    async with running() as scheduler:
        scheduler.subscribe(seen.append, {events.JobReleased})
        await scheduler.configure_task(
            sleep_on_clock, job_timeout=5, retry=RetryPolicy(max_attempts=2, backoff=timedelta(0))
        )
        with pytest.raises(TimeoutError):
            await scheduler.run_job(sleep_on_clock, args=[60])
    assert [(e.attempt, e.outcome) for e in released(seen)] == [
        (1, JobOutcome.timed_out),
        (2, JobOutcome.timed_out),
    ]


def blocking(release: threading.Event) -> str:
    release.wait(10)
    return "finished late"


async def test_thread_job_timeout_abandons_the_thread() -> None:
    release = threading.Event()
    try:
        async with running(clock=FakeClock(T0)) as scheduler:
            await scheduler.configure_task(blocking, job_timeout=timedelta(seconds=1))
            acquired = anyio.Event()
            scheduler.subscribe(lambda e: acquired.set(), {events.JobAcquired})
            job_id = await scheduler.add_job(blocking, args=[release], result_expiration_time=60)
            with anyio.fail_after(TIMEOUT):
                await acquired.wait()
            scheduler.clock.advance(2)  # type: ignore[attr-defined]
            result = await scheduler.get_job_result(job_id)
            assert result.outcome is JobOutcome.timed_out
    finally:
        release.set()


def test_job_timeout_must_be_positive() -> None:
    async def check() -> None:
        async with AsyncScheduler(clock=FakeClock(T0)) as scheduler:
            with pytest.raises(ValueError, match="job_timeout must be positive"):
                await scheduler.configure_task(sleep_on_clock, job_timeout=0)
            with pytest.raises(ValueError, match="job_timeout must not be negative"):
                await scheduler.add_schedule(sleep_on_clock, "* * * * *", job_timeout=-1)
            assert await scheduler.get_schedules() == []

    anyio.run(check)


# ---- cancel_job -----------------------------------------------------------------------------


async def test_cancel_a_pending_job() -> None:
    async with AsyncScheduler(clock=FakeClock(T0)) as scheduler:  # no worker runs
        job_id = await scheduler.add_job(sleep_on_clock, args=[1], result_expiration_time=60)
        assert await scheduler.cancel_job(job_id)
        assert await scheduler.get_jobs() == []
        result = await scheduler.get_job_result(job_id)
        assert result.outcome is JobOutcome.cancelled
        assert not await scheduler.cancel_job(str(job_id))  # already finished
        with pytest.raises(JobLookupError):
            await scheduler.cancel_job(uuid4())
        with pytest.raises(TypeError, match="job_id must be a UUID"):
            await scheduler.cancel_job(42)  # type: ignore[arg-type]


async def test_cancel_a_running_job_is_not_retried() -> None:
    seen: list[events.Event] = []
    async with running() as scheduler:
        scheduler.subscribe(seen.append, {events.JobReleased, events.JobCancellationRequested})
        await scheduler.configure_task(
            sleep_on_clock, retry=RetryPolicy(max_attempts=3, backoff=timedelta(0))
        )
        acquired = anyio.Event()
        scheduler.subscribe(lambda e: acquired.set(), {events.JobAcquired})
        job_id = await scheduler.add_job(sleep_on_clock, args=[3600], result_expiration_time=60)
        await acquired.wait()
        assert await scheduler.cancel_job(job_id)
        result = await scheduler.get_job_result(job_id)
        assert result.outcome is JobOutcome.cancelled
    assert [type(e).__name__ for e in seen] == ["JobCancellationRequested", "JobReleased"]
    assert released(seen)[0].retry_at is None


async def test_run_job_raises_job_cancelled() -> None:
    async with running() as scheduler:
        acquired = anyio.Event()
        scheduler.subscribe(lambda e: acquired.set(), {events.JobAcquired})

        async def cancel_when_running() -> None:
            await acquired.wait()
            [job] = await scheduler.get_jobs()
            await scheduler.cancel_job(job.id)

        async with anyio.create_task_group() as group:
            group.start_soon(cancel_when_running)
            with pytest.raises(JobCancelled):
                await scheduler.run_job(sleep_on_clock, args=[3600])


# ---- run_schedule_now ---------------------------------------------------------------------


async def record(value: str) -> tuple[str, datetime | None, str | None]:
    job = current_job.get()
    return value, job.scheduled_fire_time, job.schedule_id


async def test_run_schedule_now_leaves_the_schedule_alone() -> None:
    async with running() as scheduler:
        await scheduler.add_schedule(
            record,
            DateTrigger(T0 + timedelta(days=30)),
            id="nightly",
            args=["x"],
            job_result_expiration_time=60,
        )
        before = await scheduler.get_schedule("nightly")
        job_id = await scheduler.run_schedule_now("nightly")
        result = await scheduler.get_job_result(job_id)
        assert result.return_value == ("x", None, "nightly")
        after = await scheduler.get_schedule("nightly")
        assert (after.next_fire_time, after.last_fire_time) == (
            before.next_fire_time,
            before.last_fire_time,
        )
        with pytest.raises(ScheduleLookupError):
            await scheduler.run_schedule_now("missing")


# ---- overlap --------------------------------------------------------------------------------


async def overlap_run(
    policy: OverlapPolicy, job_seconds: float, minutes: int
) -> tuple[list[events.Event], list[tuple[datetime, datetime]]]:
    """An every-minute schedule whose jobs take *job_seconds*, for *minutes* minutes;
    returns the events and each job's (start, end)."""
    seen: list[events.Event] = []
    runs: list[tuple[datetime, datetime]] = []
    clock = FakeClock(T0, autojump=True)

    async def work() -> None:
        start = clock.now()
        await clock.sleep(job_seconds)
        runs.append((start, clock.now()))

    async with running(clock=clock) as scheduler:
        scheduler.subscribe(seen.append)
        await scheduler.add_schedule(
            work, IntervalTrigger(minutes=1, start_time=T0 + MINUTE,
                                  end_time=T0 + minutes * MINUTE),
            id="every-minute", overlap=policy,
        )  # fmt: skip
        await clock.sleep(minutes * 60 + 10 * job_seconds)
    return seen, runs


def never_overlapping(runs: list[tuple[datetime, datetime]]) -> bool:
    ordered = sorted(runs)
    return all(first[1] <= second[0] for first, second in itertools.pairwise(ordered))


async def test_overlap_allow_runs_side_by_side() -> None:
    seen, runs = await overlap_run(OverlapPolicy.allow, 150, 5)
    assert len(runs) == 5
    assert not never_overlapping(runs)
    assert not [e for e in seen if isinstance(e, events.ScheduleFireSkipped)]


async def test_overlap_skip() -> None:
    seen, runs = await overlap_run(OverlapPolicy.skip, 150, 6)
    skipped = [e for e in seen if isinstance(e, events.ScheduleFireSkipped)]
    # fires at 1..6 min; a job runs 2.5 min: 1 runs, 2 and 3 skipped, 4 runs, 5 and 6 skipped
    assert [r[0] - T0 for r in runs] == [MINUTE, 4 * MINUTE]
    assert [e.fire_time - T0 for e in skipped] == [2 * MINUTE, 3 * MINUTE, 5 * MINUTE, 6 * MINUTE]
    assert all(e.schedule_id == "every-minute" and "skip" in e.reason for e in skipped)


async def test_overlap_buffer_one() -> None:
    seen, runs = await overlap_run(OverlapPolicy.buffer_one, 150, 5)
    skipped = [e.fire_time - T0 for e in seen if isinstance(e, events.ScheduleFireSkipped)]
    assert never_overlapping(runs)
    # 1 runs (1-3.5), 2 waits; 3 is skipped (2 is waiting); 2 runs 3.5-6, 4 waits, 5 skipped
    assert skipped == [3 * MINUTE, 5 * MINUTE]
    assert len(runs) == 3


async def test_overlap_cancel_running() -> None:
    seen, runs = await overlap_run(OverlapPolicy.cancel_running, 150, 4)
    outcomes = [e.outcome for e in released(seen)]
    # every job but the last is cancelled by the next fire
    assert outcomes == [JobOutcome.cancelled] * 3 + [JobOutcome.success]
    assert len(runs) == 1


# ---- backfill ---------------------------------------------------------------------------------


async def test_backfill_runs_one_job_per_fire_time_in_order() -> None:
    seen: list[events.Event] = []
    async with running() as scheduler:
        scheduler.subscribe(seen.append, {events.JobReleased})
        await scheduler.add_schedule(
            record, CronTrigger(hour=2, timezone="UTC"), id="daily", args=["d"],
            overlap="skip",
        )  # fmt: skip
        start, end = T0 - timedelta(days=3), T0
        planned = await scheduler.backfill("daily", start, end, dry_run=True)
        assert planned == [T0 - timedelta(days=n, hours=-2) for n in (3, 2, 1)]
        assert await scheduler.get_jobs() == []
        made = await scheduler.backfill("daily", start, end)
        assert made == planned
        with anyio.fail_after(TIMEOUT):
            while len(released(seen)) < 3:  # noqa: ASYNC110 - events arrive in a list
                await anyio.sleep(0.01)
    # the schedule's own fires (the clock jumps to them) come after the backfill
    assert [e.scheduled_fire_time for e in released(seen)[:3]] == planned
    assert all(e.outcome is JobOutcome.success for e in released(seen))


async def test_backfill_rejects_bad_ranges() -> None:
    async with AsyncScheduler(clock=FakeClock(T0)) as scheduler:
        await scheduler.add_schedule(record, "* * * * * *", id="every-second", args=["s"])
        with pytest.raises(ValueError, match="before start"):
            await scheduler.backfill("every-second", T0, T0 - MINUTE)
        with pytest.raises(ValueError, match="shorter ranges"):
            await scheduler.backfill("every-second", T0 - timedelta(days=1), T0)
        with pytest.raises(ValueError, match="timezone-aware"):
            await scheduler.backfill("every-second", datetime(2030, 1, 1), T0)
        assert await scheduler.get_jobs() == []


# ---- max_catchup --------------------------------------------------------------------------------


async def test_max_catchup_bounds_the_catch_up_and_reports_it() -> None:
    seen: list[events.Event] = []
    clock = FakeClock(T0, autojump=True)
    async with AsyncScheduler(clock=clock, role=SchedulerRole.scheduler) as scheduler:
        scheduler.subscribe(seen.append, {events.SchedulerCaughtUp, events.JobAdded})
        await scheduler.add_schedule(
            record, IntervalTrigger(minutes=1, start_time=T0), id="m", args=["m"],
            coalesce="all", max_catchup=3,
        )  # fmt: skip
        clock.advance(timedelta(minutes=10, seconds=30))  # downtime: 11 fire times missed
        with anyio.fail_after(TIMEOUT):
            await scheduler.start_in_background()
            while not [e for e in seen if isinstance(e, events.SchedulerCaughtUp)]:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        jobs = await scheduler.get_jobs()
    [caught_up] = [e for e in seen if isinstance(e, events.SchedulerCaughtUp)]
    assert (caught_up.schedule_id, caught_up.missed, caught_up.created) == ("m", 11, 3)
    assert [job.scheduled_fire_time for job in jobs] == [T0 + n * MINUTE for n in (8, 9, 10)]


async def test_max_catchup_needs_coalesce_all() -> None:
    async with AsyncScheduler(clock=FakeClock(T0)) as scheduler:
        with pytest.raises(ValueError, match="coalesce='all'"):
            await scheduler.add_schedule(record, "* * * * *", max_catchup=2)
        with pytest.raises(ValueError, match="max_catchup must be at least 1"):
            await scheduler.add_schedule(record, "* * * * *", coalesce="all", max_catchup=0)


# ---- pause with intent --------------------------------------------------------------------------


async def test_pause_with_reason_and_until() -> None:
    seen: list[events.Event] = []
    clock = FakeClock(T0, autojump=True)
    async with AsyncScheduler(clock=clock, role=SchedulerRole.scheduler) as scheduler:
        scheduler.subscribe(seen.append, {events.SchedulePaused, events.ScheduleUnpaused})
        await scheduler.add_schedule(record, "*/5 * * * *", id="p", args=["p"])
        await scheduler.pause_schedule("p", reason="maintenance", until=T0 + timedelta(hours=1))
        paused = await scheduler.get_schedule("p")
        assert (paused.paused, paused.pause_reason, paused.paused_until) == (
            True,
            "maintenance",
            T0 + timedelta(hours=1),
        )
        await scheduler.start_in_background()
        await clock.sleep(3600 + 1)
        assert not (await scheduler.get_schedule("p")).paused
        with pytest.raises(ValueError, match="timezone-aware"):
            await scheduler.pause_schedule("p", until=datetime(2030, 1, 2))
        with pytest.raises(TypeError):
            await scheduler.pause_schedule("p", reason=42)  # type: ignore[arg-type]
    assert [type(e).__name__ for e in seen] == ["SchedulePaused", "ScheduleUnpaused"]
    assert seen[0].reason == "maintenance"  # type: ignore[attr-defined]


# ---- sync_schedules ---------------------------------------------------------------------------


async def test_sync_schedules_adds_updates_and_prunes() -> None:
    clock = FakeClock(T0)
    async with AsyncScheduler(clock=clock) as scheduler:
        await scheduler.add_schedule(record, "0 * * * *", id="adhoc", args=["a"])
        specs = [
            ScheduleSpec(id="report", func=record, trigger="0 3 * * *", args=["r"]),
            ScheduleSpec(id="poll", func=record, trigger="interval",
                         trigger_args={"seconds": 30}, args=["p"]),
        ]  # fmt: skip
        first = await scheduler.sync_schedules(specs)
        assert (first.added, first.updated, first.unchanged, first.removed) == (
            ("poll", "report"), (), (), (),
        )  # fmt: skip
        poll_before = await scheduler.get_schedule("poll")
        clock.advance(7)  # a redeploy: the interval trigger without a start is rebuilt
        await scheduler.pause_schedule("report", reason="ops")
        changed = [
            ScheduleSpec(id="report", func=record, trigger="0 4 * * *", args=["r"]),
            ScheduleSpec(id="poll", func=record, trigger="interval",
                         trigger_args={"seconds": 30}, args=["p"]),
        ]  # fmt: skip
        second = await scheduler.sync_schedules(changed, prune=True)
        assert (second.added, second.updated, second.unchanged, second.removed) == (
            (), ("report",), ("poll",), ("adhoc",),
        )  # fmt: skip
        report = await scheduler.get_schedule("report")
        assert str(report.trigger) == str(CronTrigger.from_crontab("0 4 * * *"))
        assert (report.paused, report.pause_reason) == (True, "ops")  # pause state kept
        poll = await scheduler.get_schedule("poll")
        assert poll.next_fire_time == poll_before.next_fire_time
        assert [s.id for s in await scheduler.get_schedules()] == ["poll", "report"]


async def test_sync_schedules_keeps_the_next_fire_time_of_an_unchanged_trigger() -> None:
    clock = FakeClock(T0)
    async with AsyncScheduler(clock=clock) as scheduler:
        spec = ScheduleSpec(id="s", func=record, trigger="*/10 * * * *", args=["1"])
        await scheduler.sync_schedules([spec])
        before = await scheduler.get_schedule("s")
        changed = ScheduleSpec(id="s", func=record, trigger="*/10 * * * *", args=["2"])
        clock.advance(3600)
        result = await scheduler.sync_schedules([changed])
        assert result.updated == ("s",)
        after = await scheduler.get_schedule("s")
        assert after.args == ("2",)
        assert after.next_fire_time == before.next_fire_time


async def test_sync_schedules_checks_everything_first() -> None:
    async with AsyncScheduler(clock=FakeClock(T0)) as scheduler:
        good = ScheduleSpec(id="good", func=record, trigger="* * * * *", args=["g"])
        bad = ScheduleSpec(id="bad", func=record, trigger="not a crontab")
        with pytest.raises(ValueError, match="crontab expression has 5 fields"):
            await scheduler.sync_schedules([good, bad])
        with pytest.raises(ValueError, match="declared twice"):
            await scheduler.sync_schedules([good, good])
        with pytest.raises(TypeError, match="list of ScheduleSpec"):
            await scheduler.sync_schedules(good)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="ScheduleSpec objects"):
            await scheduler.sync_schedules([{"id": "x"}])  # type: ignore[list-item]
        assert await scheduler.get_schedules() == []


async def test_sync_schedules_from_many_schedulers_at_once_converges() -> None:
    """Five schedulers on one store sync the same list concurrently: one copy each."""
    from horae.datastores import MemoryDataStore
    from horae.eventbrokers import LocalEventBroker

    store, broker = MemoryDataStore(), LocalEventBroker()
    specs = [
        ScheduleSpec(id=f"s{n}", func=record, trigger=f"{n} * * * *", args=[str(n)])
        for n in range(20)
    ]
    results = []

    async def sync_one() -> None:
        async with AsyncScheduler(store, event_broker=broker, clock=FakeClock(T0)) as scheduler:
            results.append(await scheduler.sync_schedules(specs))

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(sync_one)
    added = [schedule_id for result in results for schedule_id in result.added]
    assert sorted(added) == sorted(spec.id for spec in specs)
    assert all(not result.updated for result in results)


async def test_cancel_reaches_the_running_job_through_the_event() -> None:
    """With a lease too long to be renewed during the test, only the
    JobCancellationRequested event can cancel the job (real clock)."""

    async def forever() -> None:
        await anyio.sleep_forever()

    with anyio.fail_after(TIMEOUT):
        async with AsyncScheduler(lease_duration=timedelta(minutes=30)) as scheduler:
            await scheduler.start_in_background()
            acquired = anyio.Event()
            scheduler.subscribe(lambda e: acquired.set(), {events.JobAcquired})
            job_id = await scheduler.add_job(forever, result_expiration_time=60)
            await acquired.wait()
            assert await scheduler.cancel_job(job_id)
            result = await scheduler.get_job_result(job_id)
            assert result.outcome is JobOutcome.cancelled


async def test_extra_jobs_get_no_jitter() -> None:
    """run_schedule_now and backfill jobs start when asked, whatever the schedule's
    max_jitter (the jitter spreads fires, not explicit requests)."""
    async with AsyncScheduler(clock=FakeClock(T0)) as scheduler:  # no worker: jobs stay
        await scheduler.add_schedule(
            record, IntervalTrigger(hours=1, start_time=T0 + MINUTE), id="j", args=["j"],
            max_jitter=timedelta(minutes=30), misfire_grace_time=10,
        )  # fmt: skip
        await scheduler.run_schedule_now("j")
        fires = await scheduler.backfill("j", T0 + MINUTE, T0 + timedelta(hours=1, minutes=1))
        assert fires == [T0 + MINUTE, T0 + timedelta(hours=1, minutes=1)]
        jobs = await scheduler.get_jobs()
    assert [job.jitter for job in jobs] == [timedelta(0)] * 3
    assert jobs[0].start_time == T0
    assert jobs[0].start_deadline == T0 + timedelta(seconds=10)
    assert [job.start_time - T0 for job in jobs[1:]] == [
        timedelta(microseconds=0),
        timedelta(microseconds=1),
    ]


async def test_bad_overlap_and_retry_arguments_are_refused() -> None:
    async with AsyncScheduler(clock=FakeClock(T0)) as scheduler:
        with pytest.raises(ValueError, match="overlap must be a OverlapPolicy"):
            await scheduler.add_schedule(record, "* * * * *", overlap="never")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="retry must be a RetryPolicy or None"):
            await scheduler.add_schedule(record, "* * * * *", retry=3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="retry must be a RetryPolicy or None"):
            await scheduler.configure_task(record, retry={"max_attempts": 3})  # type: ignore[arg-type]
        assert await scheduler.get_schedules() == []
