"""Scheduler, the synchronous facade: blocking calls from the creating thread, from worker
threads inside jobs, and the clear error from the event loop thread itself."""

from __future__ import annotations

import os
import signal
import threading
from datetime import datetime, timedelta, timezone

import pytest

from horae import RunState, Scheduler, SchedulerClosedError, events
from horae.testing import FakeClock
from horae.triggers import DateTrigger, IntervalTrigger

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)

pytestmark = pytest.mark.timeout(30)


def double(value: int) -> int:
    return value * 2


def fail() -> None:
    raise ValueError("sync boom")


def scheduler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "horae-scheduler"]


def test_a_thread_job_removes_a_schedule_through_the_facade() -> None:
    clock = FakeClock(T0)
    removed = threading.Event()
    with Scheduler(clock=clock) as scheduler:

        def clear_job(schedule_id: str) -> None:
            scheduler.remove_schedule(schedule_id)
            removed.set()

        scheduler.add_schedule(double, IntervalTrigger(seconds=1, start_time=T0), id="tick",
                               args=[1])  # fmt: skip
        scheduler.add_schedule(clear_job, DateTrigger(T0 + timedelta(seconds=2)), id="clear",
                               args=["tick"])  # fmt: skip
        scheduler.start_in_background()
        assert scheduler.state.value == "started"
        clock.advance(2)  # from this thread: the loop thread wakes up
        assert removed.wait(10)
        assert [s.id for s in scheduler.get_schedules()] in ([], ["clear"])
        with pytest.raises(LookupError):
            scheduler.get_schedule("tick")
    assert scheduler.state is RunState.stopped
    assert scheduler_threads() == []


def test_run_job_returns_values_and_raises_exceptions() -> None:
    with Scheduler() as scheduler:
        scheduler.start_in_background()
        assert scheduler.run_job(double, args=[21]) == 42
        with pytest.raises(ValueError, match="sync boom"):
            scheduler.run_job(fail)


def test_calling_the_facade_from_the_event_loop_thread_is_refused() -> None:
    with Scheduler() as scheduler:

        async def calls_the_facade() -> None:
            scheduler.get_schedules()

        scheduler.start_in_background()
        with pytest.raises(RuntimeError, match="cannot be called from the scheduler's event"):
            scheduler.run_job(calls_the_facade)


def test_closing_from_inside_a_job_is_refused() -> None:
    with Scheduler() as scheduler:

        def closes_its_own_scheduler() -> None:
            scheduler.close()

        scheduler.start_in_background()
        with pytest.raises(RuntimeError, match=r"close\(\) waits for the scheduler to stop"):
            scheduler.run_job(closes_its_own_scheduler)


def test_run_until_stopped_blocks_until_a_job_stops_it() -> None:
    # the threshold gives the thread job real time to finish before the clock jumps on
    clock = FakeClock(T0, autojump=True, autojump_threshold=0.05)
    scheduler = Scheduler(clock=clock)
    seen: list[str] = []
    scheduler.subscribe(lambda event: seen.append(type(event).__name__))

    def stop_it() -> None:
        scheduler.stop()

    scheduler.add_schedule(stop_it, DateTrigger(T0 + timedelta(hours=1)))
    scheduler.run_until_stopped()  # seed style: add first, then block
    assert scheduler.state is RunState.stopped
    assert clock.now() >= T0 + timedelta(hours=1)
    assert "SchedulerStopped" in seen
    assert scheduler_threads() == []  # closed, since it was not used with 'with'


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs SIGTERM")
def test_sigterm_stops_run_until_stopped_cleanly() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    with Scheduler() as scheduler:
        scheduler.subscribe(
            lambda event: os.kill(os.getpid(), signal.SIGTERM), events.SchedulerStarted
        )
        scheduler.run_until_stopped()
        assert scheduler.state is RunState.stopped
    assert signal.getsignal(signal.SIGTERM) is not None


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
def test_ctrl_c_stops_run_until_stopped_cleanly() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("KeyboardInterrupt is raised in the main thread")
    with Scheduler() as scheduler:

        def press_ctrl_c() -> None:
            os.kill(os.getpid(), signal.SIGINT)

        # a moment later, so that the main thread is waiting in run_until_stopped
        timer = threading.Timer(0.2, press_ctrl_c)
        scheduler.subscribe(lambda event: timer.start(), events.SchedulerStarted)
        scheduler.run_until_stopped()
        assert scheduler.state is RunState.stopped


def test_subscriptions_end_from_any_thread() -> None:
    seen: list[events.Event] = []
    with Scheduler() as scheduler:
        scheduler.start_in_background()
        subscription = scheduler.subscribe(seen.append, events.JobReleased)
        scheduler.run_job(double, args=[1])
        thread = threading.Thread(target=subscription.unsubscribe)
        thread.start()
        thread.join()
        scheduler.run_job(double, args=[2])
    assert len(seen) == 1


def test_stop_and_wait_until_stopped() -> None:
    with Scheduler() as scheduler:
        scheduler.start_in_background()
        scheduler.stop()
        scheduler.wait_until_stopped()
        assert scheduler.state is RunState.stopped
        scheduler.add_schedule(double, "interval", seconds=10, args=[1], id="kept")
        assert [s.id for s in scheduler.get_schedules()] == ["kept"]


# ---- after close(), and call() ----------------------------------------------------------

CLOSED = r"cannot {} a closed Scheduler: close\(\) .* create a new Scheduler with the same"


def test_methods_after_close_raise_instead_of_restarting_the_loop() -> None:
    with Scheduler() as scheduler:
        scheduler.add_schedule(double, "interval", seconds=10, args=[1], id="kept")
    assert scheduler_threads() == []
    with pytest.raises(SchedulerClosedError, match=CLOSED.format(r"call add_schedule\(\) on")):
        scheduler.add_schedule(double, "interval", seconds=10, args=[1])
    with pytest.raises(SchedulerClosedError, match=CLOSED.format(r"call get_schedules\(\) on")):
        scheduler.get_schedules()
    with pytest.raises(SchedulerClosedError, match=CLOSED.format(r"enter \('with'\)")):
        scheduler.__enter__()
    with pytest.raises(RuntimeError):  # also a RuntimeError, for 'except RuntimeError' code
        scheduler.start_in_background()
    assert scheduler_threads() == []  # no loop thread was started again
    scheduler.stop()  # nothing to stop: these return at once
    scheduler.wait_until_stopped()
    scheduler.close()
    assert scheduler.state is RunState.stopped


def test_run_until_stopped_outside_with_leaves_the_scheduler_closed() -> None:
    scheduler = Scheduler()
    scheduler.subscribe(lambda event: scheduler.async_scheduler.stop(), events.SchedulerStarted)
    scheduler.run_until_stopped()
    with pytest.raises(
        SchedulerClosedError, match=CLOSED.format(r"call run_until_stopped\(\) on")
    ):
        scheduler.run_until_stopped()
    assert scheduler_threads() == []


def test_a_scheduler_closed_before_it_started_cannot_start() -> None:
    scheduler = Scheduler()
    scheduler.close()
    with pytest.raises(SchedulerClosedError, match=CLOSED.format(r"call call\(\) on")):
        scheduler.call(scheduler.async_scheduler.get_schedules)
    assert scheduler_threads() == []


async def add_async(a: int, b: int) -> int:
    return a + b


async def fail_async() -> None:
    raise ValueError("async boom")


def test_call_runs_coroutine_functions_on_the_loop_from_any_thread() -> None:
    with Scheduler() as scheduler:
        assert scheduler.call(add_async, 1, 2) == 3
        schedules = scheduler.call(scheduler.async_scheduler.get_schedules)
        assert schedules == []
        with pytest.raises(ValueError, match="async boom"):
            scheduler.call(fail_async)
        # a plain function runs on the loop thread
        assert scheduler.call(threading.current_thread).name == "horae-scheduler"
        results: list[int] = []
        thread = threading.Thread(target=lambda: results.append(scheduler.call(add_async, 2, 3)))
        thread.start()
        thread.join()
        assert results == [5]


def test_call_is_refused_on_the_loop_thread() -> None:
    with Scheduler() as scheduler:

        async def calls_back() -> int:
            return scheduler.call(add_async, 1, 1)

        scheduler.start_in_background()
        with pytest.raises(RuntimeError, match="cannot be called from the scheduler's event"):
            scheduler.run_job(calls_back)


def test_job_control_through_the_facade() -> None:
    from horae import OverlapPolicy, RetryPolicy, ScheduleSpec

    with Scheduler(clock=FakeClock(T0)) as scheduler:  # not started: jobs stay pending
        synced = scheduler.sync_schedules(
            [ScheduleSpec(id="d", func=double, trigger=DateTrigger(T0 + timedelta(days=1)),
                          args=[2], overlap=OverlapPolicy.skip,
                          retry=RetryPolicy(max_attempts=2))]
        )  # fmt: skip
        assert synced.added == ("d",)
        scheduler.pause_schedule("d", reason="why", until=T0 + timedelta(hours=1))
        assert scheduler.get_schedule("d").pause_reason == "why"
        job_id = scheduler.run_schedule_now("d")
        assert scheduler.backfill("d", T0, T0 + timedelta(days=2), dry_run=True) == [
            T0 + timedelta(days=1)
        ]
        assert scheduler.cancel_job(job_id)
        assert [job.id for job in scheduler.get_jobs()] == []
        with pytest.raises(LookupError):
            scheduler.get_job_result(job_id)  # no result kept: expiration time 0
        task = scheduler.configure_task(double, job_timeout=5, retry=RetryPolicy())
        assert task.job_timeout == timedelta(seconds=5)
