"""APScheduler 3 behaviours, each checked through horae.compat (real, short waits).

Where a behaviour depends on timing, the same scenario also runs on the APScheduler
3.11.3 installed as the test oracle, and both must agree.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from _compat_helpers import Recorder, shut_down_afterwards, wait_until
from apscheduler.schedulers.background import BackgroundScheduler as OracleScheduler

import horae
from horae._clock import SystemClock
from horae.compat import (
    STATE_PAUSED,
    STATE_RUNNING,
    STATE_STOPPED,
    BackgroundScheduler,
    BlockingScheduler,
    ConflictingIdError,
    JobLookupError,
    SchedulerAlreadyRunningError,
    SchedulerNotRunningError,
)
from horae.compat.events import (
    EVENT_ALL,
    EVENT_EXECUTOR_ADDED,
    EVENT_JOB_ADDED,
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_MODIFIED,
    EVENT_JOB_REMOVED,
    EVENT_JOB_SUBMITTED,
    EVENT_JOBSTORE_ADDED,
    EVENT_SCHEDULER_PAUSED,
    EVENT_SCHEDULER_RESUMED,
    EVENT_SCHEDULER_SHUTDOWN,
    EVENT_SCHEDULER_STARTED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from horae.compat.jobstores import MemoryJobStore
from horae.compat.triggers import IntervalTrigger

UTC = timezone.utc


def now() -> datetime:
    return SystemClock().now()


class Counter:
    """A job that counts its runs (thread-safe) and returns its argument."""

    def __init__(self) -> None:
        self.runs: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, value: Any = None) -> Any:
        with self._lock:
            self.runs.append(value)
        return value

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.runs)


def fail(message: str) -> None:
    raise ValueError(message)


# ---- misfires and coalescing ------------------------------------------------------------


@pytest.mark.parametrize(
    ("grace", "expected"),
    [
        pytest.param(1, EVENT_JOB_MISSED, id="grace-1s-missed"),
        pytest.param(None, EVENT_JOB_EXECUTED, id="no-grace-runs"),
    ],
)
def test_a_run_later_than_misfire_grace_time_is_dropped_and_reported(
    grace: int | None, expected: int
) -> None:
    sched = BackgroundScheduler(timezone="UTC")
    recorder = Recorder()
    sched.add_listener(recorder)
    run_date = now() - timedelta(seconds=5)
    counter = Counter()
    sched.add_job(counter, "date", run_date=run_date, misfire_grace_time=grace, id="late")
    with shut_down_afterwards(sched):
        sched.start()
        (event,) = recorder.wait_for(expected, job_id="late")
        recorder.wait_for(EVENT_JOB_REMOVED, job_id="late")  # a date job is done either way
    assert isinstance(event, JobExecutionEvent)
    assert (event.job_id, event.jobstore, event.scheduled_run_time) == (
        "late",
        "default",
        run_date,
    )
    assert counter.count == (0 if expected == EVENT_JOB_MISSED else 1)
    submitted = recorder.of(EVENT_JOB_SUBMITTED, "late")
    assert [e.scheduled_run_times for e in submitted] == [[run_date]]  # as APScheduler 3


def _run_missed_runs(make: Callable[..., Any], coalesce: bool) -> int:
    """Four runs of a 10 s interval missed (misfire_grace_time=None): how many happen."""
    sched = make(timezone="UTC")
    counter = Counter()
    first = now() - timedelta(seconds=35)
    sched.add_job(
        counter,
        "interval",
        seconds=10,
        next_run_time=first,
        coalesce=coalesce,
        misfire_grace_time=None,
    )
    sched.start()
    try:
        expected = 1 if coalesce else 4
        wait_until(lambda: counter.count >= expected)
        time.sleep(0.3)  # and no more
    finally:
        sched.shutdown()
    return counter.count


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesce", "no-coalesce"])
def test_coalesce_runs_missed_runs_once_or_each(coalesce: bool) -> None:
    compat_runs = _run_missed_runs(BackgroundScheduler, coalesce)
    oracle_runs = _run_missed_runs(OracleScheduler, coalesce)
    assert compat_runs == oracle_runs == (1 if coalesce else 4)


# ---- max_instances ------------------------------------------------------------------------


@pytest.mark.parametrize("max_instances", [1, 2])
def test_max_instances_blocks_extra_runs_and_reports_them(max_instances: int) -> None:
    release = threading.Event()
    running: list[int] = []
    peak: list[int] = []
    lock = threading.Lock()

    def slow() -> None:
        with lock:
            running.append(1)
            peak.append(len(running))
        release.wait(10)
        with lock:
            running.pop()

    sched = BackgroundScheduler()
    recorder = Recorder()
    sched.add_listener(recorder, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_EXECUTED)
    sched.add_job(
        slow,
        "interval",
        seconds=0.3,
        misfire_grace_time=0.2,
        max_instances=max_instances,
        id="slow",
    )
    with shut_down_afterwards(sched):
        sched.start()
        (event, *_) = recorder.wait_for(EVENT_JOB_MAX_INSTANCES, 2, job_id="slow")
        with lock:
            assert max(peak) == max_instances
        release.set()
        recorder.wait_for(EVENT_JOB_EXECUTED, job_id="slow")
    assert isinstance(event, JobSubmissionEvent)
    assert event.jobstore == "default"
    assert len(event.scheduled_run_times) == 1


# ---- ids, replacing, modifying -----------------------------------------------------------


def test_job_ids_are_uuid4_hex_and_duplicates_need_replace_existing() -> None:
    sched = BackgroundScheduler()
    counter = Counter()
    job = sched.add_job(counter, "interval", hours=1)
    assert len(job.id) == 32
    assert int(job.id, 16) >= 0
    with shut_down_afterwards(sched):
        sched.start()
        sched.add_job(counter, "interval", hours=1, id="same", args=[1])
        with pytest.raises(ConflictingIdError) as raised:
            sched.add_job(counter, "interval", hours=1, id="same", args=[2])
        assert isinstance(raised.value, KeyError)
        assert isinstance(raised.value, horae.ConflictingIdError)
        assert "Job identifier (same) conflicts with an existing job" in str(raised.value)
        sched.add_job(
            counter, "interval", hours=2, id="same", args=[3], name="new", replace_existing=True
        )
        same = sched.get_job("same")
        assert same is not None
        assert (same.name, same.args, str(same.trigger)) == ("new", (3,), "interval[2:00:00]")

        @sched.scheduled_job("interval", hours=3, id="same")  # always replaces
        def decorated() -> None: ...

        same = sched.get_job("same")
        assert same is not None
        assert same.func is decorated


def test_pending_duplicates_fail_at_start() -> None:
    sched = BackgroundScheduler()
    sched.add_job(Counter(), "interval", hours=1, id="dup")
    sched.add_job(Counter(), "interval", hours=1, id="dup")
    with pytest.raises(ConflictingIdError):
        sched.start()
    assert sched.state == STATE_STOPPED


def test_modify_and_reschedule() -> None:
    sched = BackgroundScheduler(timezone="UTC")
    recorder = Recorder()
    sched.add_listener(recorder, EVENT_JOB_MODIFIED)
    counter = Counter()
    job = sched.add_job(counter, "interval", hours=1, id="m", args=["a"])
    with shut_down_afterwards(sched):
        sched.start()
        changed = sched.modify_job(
            "m", name="renamed", args=["b"], max_instances=3, coalesce=False
        )
        assert (changed.name, changed.args, changed.max_instances, changed.coalesce) == (
            "renamed", ("b",), 3, False,
        )  # fmt: skip
        job.modify(misfire_grace_time=30)
        stored = sched.get_job("m")
        assert stored is not None
        assert (stored.name, stored.args, stored.misfire_grace_time) == ("renamed", ("b",), 30)
        with pytest.raises(AttributeError, match="not modifiable attributes of Job: colour"):
            job.modify(colour="red")

        rescheduled = sched.reschedule_job("m", trigger="cron", minute="*/5")
        assert str(rescheduled.trigger) == "cron[minute='*/5']"
        next_run = rescheduled.next_run_time
        assert next_run is not None
        assert next_run.minute % 5 == 0
        assert next_run.second == 0
        assert next_run - now() <= timedelta(minutes=5)
        job.reschedule("interval", seconds=0.2)  # and it runs on the new trigger
        wait_until(lambda: counter.count >= 1)
        assert counter.runs[0] == "b"
        assert [e.job_id for e in recorder.of(EVENT_JOB_MODIFIED)] == ["m"] * 4


def test_pause_and_resume_a_job() -> None:
    sched = BackgroundScheduler()
    counter = Counter()
    job = sched.add_job(counter, "interval", seconds=0.2, id="p")
    with shut_down_afterwards(sched):
        sched.start()
        wait_until(lambda: counter.count >= 1)
        job.pause()
        assert job.next_run_time is None
        assert str(job).endswith("paused)")
        paused = sched.get_job("p")
        assert paused is not None
        assert paused.next_run_time is None
        time.sleep(0.3)  # a run that had already started may still finish
        frozen = counter.count
        time.sleep(0.5)
        assert counter.count == frozen
        resumed = sched.resume_job("p")
        assert resumed is not None
        assert resumed.next_run_time is not None
        wait_until(lambda: counter.count > frozen)


def test_a_job_added_with_next_run_time_none_is_paused() -> None:
    sched = BackgroundScheduler()
    counter = Counter()
    sched.add_job(counter, "interval", seconds=0.1, next_run_time=None, id="held")
    with shut_down_afterwards(sched):
        sched.start()
        job = sched.get_job("held")
        assert job is not None
        assert job.next_run_time is None
        time.sleep(0.4)
        assert counter.count == 0


def test_resume_job_removes_a_job_whose_trigger_is_done() -> None:
    sched = BackgroundScheduler()
    sched.add_job(
        Counter(),
        "interval",
        seconds=0.2,
        end_date=now() + timedelta(seconds=0.3),
        next_run_time=None,
        id="ending",
    )
    with shut_down_afterwards(sched):
        sched.start()
        time.sleep(0.4)  # the trigger's last fire time has passed
        assert sched.resume_job("ending") is None
        assert sched.get_job("ending") is None


# ---- the scheduler's own state ------------------------------------------------------------


def test_pause_and_resume_the_scheduler() -> None:
    sched = BackgroundScheduler()
    recorder = Recorder()
    life_cycle = EVENT_SCHEDULER_STARTED | EVENT_SCHEDULER_PAUSED | EVENT_SCHEDULER_RESUMED
    sched.add_listener(recorder, life_cycle | EVENT_SCHEDULER_SHUTDOWN)
    counter = Counter()
    sched.add_job(counter, "interval", seconds=0.2, misfire_grace_time=None)
    with pytest.raises(SchedulerNotRunningError, match="Scheduler is not running"):
        sched.pause()
    sched.start(paused=True)
    with shut_down_afterwards(sched):
        assert (sched.state, sched.running) == (STATE_PAUSED, True)
        with pytest.raises(SchedulerAlreadyRunningError, match="Scheduler is already running"):
            sched.start()
        time.sleep(0.5)
        assert counter.count == 0
        sched.resume()
        assert sched.state == STATE_RUNNING
        wait_until(lambda: counter.count >= 1)
        sched.pause()
        time.sleep(0.3)
        frozen = counter.count
        time.sleep(0.5)
        assert counter.count == frozen
        sched.resume()
        wait_until(lambda: counter.count > frozen)
    assert sched.state == STATE_STOPPED
    assert not sched.running
    assert recorder.codes() == [
        EVENT_SCHEDULER_STARTED, EVENT_SCHEDULER_RESUMED, EVENT_SCHEDULER_PAUSED,
        EVENT_SCHEDULER_RESUMED, EVENT_SCHEDULER_SHUTDOWN,
    ]  # fmt: skip
    with pytest.raises(SchedulerNotRunningError):
        sched.shutdown()


def test_a_scheduler_can_be_started_again_and_keeps_memory_jobs() -> None:
    store = MemoryJobStore()
    sched = BackgroundScheduler(jobstores={"default": store})
    sched.add_job(Counter(), "interval", hours=1, id="kept")
    sched.start()
    sched.shutdown()
    assert sched.get_jobs() == []  # stopped: only pending jobs are listed, as in APScheduler 3
    sched.start(paused=True)
    with shut_down_afterwards(sched):
        assert [job.id for job in sched.get_jobs()] == ["kept"]


# ---- listeners and event objects -------------------------------------------------------------


def test_listeners_get_the_events_their_mask_selects_with_their_fields() -> None:
    sched = BackgroundScheduler(timezone="UTC")
    everything, executions = Recorder(), Recorder()
    sched.add_listener(everything)
    sched.add_listener(executions, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    dropped = Recorder()
    sched.add_listener(dropped, EVENT_ALL)
    sched.remove_listener(dropped)
    counter = Counter()
    run_date = now() + timedelta(seconds=0.2)
    sched.add_job(counter, "date", run_date=run_date, args=[42], id="ok")
    sched.add_job(fail, "date", run_date=run_date, args=["boom"], id="bad")
    with shut_down_afterwards(sched):
        sched.start()
        (executed,) = executions.wait_for(EVENT_JOB_EXECUTED)
        (error,) = executions.wait_for(EVENT_JOB_ERROR)
        everything.wait_for(EVENT_JOB_REMOVED, 2)
    assert {e.code for e in executions.events} == {EVENT_JOB_EXECUTED, EVENT_JOB_ERROR}
    assert (executed.job_id, executed.jobstore, executed.retval) == ("ok", "default", 42)
    assert executed.scheduled_run_time == run_date
    assert executed.exception is None
    assert (error.job_id, error.retval) == ("bad", None)
    assert isinstance(error.exception, ValueError)
    assert str(error.exception) == "boom"
    assert error.traceback is not None
    assert "in fail" in error.traceback
    assert everything.codes()[:5] == [
        EVENT_EXECUTOR_ADDED, EVENT_JOBSTORE_ADDED,  # the defaults, made at start()
        EVENT_JOB_ADDED, EVENT_JOB_ADDED, EVENT_SCHEDULER_STARTED,
    ]  # fmt: skip
    assert everything.codes()[-1] == EVENT_SCHEDULER_SHUTDOWN
    assert len(everything.of(EVENT_JOB_SUBMITTED)) == 2
    assert dropped.events == []
    # events caused by a call come in the caller's thread, job events on one event thread
    assert everything.threads[0] == threading.current_thread().name
    assert executions.threads == ["horae-compat-events"] * 2


def test_a_listener_may_call_the_scheduler_and_shut_it_down() -> None:
    sched = BlockingScheduler()
    seen: list[Any] = []

    def listener(event: Any) -> None:
        seen.append(sched.get_job(event.job_id))
        sched.shutdown()

    sched.add_listener(listener, EVENT_JOB_EXECUTED)
    sched.add_job(Counter(), "interval", seconds=0.2, id="once")
    sched.start()  # returns once the listener has shut it down
    assert sched.state == STATE_STOPPED
    assert seen
    assert seen[0] is not None
    assert seen[0].id == "once"


# ---- lookups and listings --------------------------------------------------------------------


def test_lookups_of_unknown_jobs() -> None:
    sched = BackgroundScheduler()
    with shut_down_afterwards(sched):
        sched.start()
        assert sched.get_job("nope") is None
        with pytest.raises(JobLookupError) as raised:
            sched.remove_job("nope")
        assert str(raised.value) == "'No job by the id of nope was found'"
        assert isinstance(raised.value, KeyError)
        assert isinstance(raised.value, horae.JobLookupError)
        with pytest.raises(JobLookupError):
            sched.modify_job("nope", name="x")
        with pytest.raises(KeyError, match="No such job store: elsewhere"):
            sched.add_job(Counter(), "interval", hours=1, jobstore="elsewhere")


def test_job_defaults_override_apscheduler_3_defaults() -> None:
    sched = BackgroundScheduler(
        job_defaults={"misfire_grace_time": 30, "coalesce": False, "max_instances": 3}
    )
    plain = BackgroundScheduler()
    for scheduler in (sched, plain):
        scheduler.add_job(Counter(), "interval", hours=1, id="j")
        scheduler.start(paused=True)
    with shut_down_afterwards(sched, plain):
        job, default = sched.get_job("j"), plain.get_job("j")
        assert job is not None
        assert default is not None
        assert (job.misfire_grace_time, job.coalesce, job.max_instances) == (30, False, 3)
        assert (default.misfire_grace_time, default.coalesce, default.max_instances) == (
            1,
            True,
            1,
        )


def test_date_without_run_date_runs_at_once_and_interval_one_interval_after_adding() -> None:
    sched = BackgroundScheduler()
    soon, later = Counter(), Counter()
    added = time.monotonic()
    sched.add_job(soon)  # no trigger: a date trigger for now
    sched.add_job(later, IntervalTrigger(seconds=1))
    with shut_down_afterwards(sched):
        sched.start()
        wait_until(lambda: soon.count == 1, timeout=1.0)
        assert later.count == 0
        wait_until(lambda: later.count == 1, timeout=2.0)
        assert time.monotonic() - added >= 0.95


def test_next_run_time_of_handed_out_jobs_stays_current() -> None:
    sched = BackgroundScheduler()
    job = sched.add_job(Counter(), "interval", seconds=0.3)
    with shut_down_afterwards(sched):
        sched.start()
        first = job.next_run_time
        assert first is not None
        wait_until(lambda: job.next_run_time is not None and job.next_run_time > first)
        following = job.next_run_time
        assert following is not None
        assert following - first == timedelta(seconds=0.3)


# ---- configuration ------------------------------------------------------------------------------


def test_apscheduler_3_global_configuration(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/jobs.sqlite"  # an absolute path: sqlite:////...
    sched = BackgroundScheduler(
        {
            "apscheduler.jobstores.default.type": "sqlalchemy",
            "apscheduler.jobstores.default.url": url,
            "apscheduler.executors.default.class": "apscheduler.executors.pool:ThreadPoolExecutor",
            "apscheduler.executors.default.max_workers": "20",
            "apscheduler.executors.processpool.type": "processpool",
            "apscheduler.executors.processpool.max_workers": "5",
            "apscheduler.job_defaults.coalesce": "false",
            "apscheduler.job_defaults.max_instances": "3",
            "apscheduler.timezone": "UTC",
        }
    )
    sched.add_job(Counter, "interval", hours=1, id="configured")
    sched.start(paused=True)
    with shut_down_afterwards(sched):
        job = sched.get_job("configured")
        assert job is not None
        assert (job.coalesce, job.max_instances) == (False, 3)
        assert sched.timezone is UTC
    assert (tmp_path / "jobs.sqlite").exists()


def test_job_stores_can_be_added_and_removed_while_running() -> None:
    sched = BackgroundScheduler()
    recorder = Recorder()
    sched.add_listener(recorder, EVENT_JOBSTORE_ADDED)
    counter = Counter()
    sched.add_job(counter, "interval", seconds=0.2, id="default-job")
    with shut_down_afterwards(sched):
        sched.start()
        sched.add_jobstore("memory", "extra")
        sched.add_job(counter, "interval", hours=1, id="extra-job", jobstore="extra")
        assert [job.id for job in sched.get_jobs(jobstore="extra")] == ["extra-job"]
        wait_until(lambda: counter.count >= 1)  # the default store's job still runs
        with pytest.raises(ValueError, match='already has a job store by the alias of "extra"'):
            sched.add_jobstore(MemoryJobStore(), "extra")
        sched.remove_jobstore("extra")
        assert sched.get_job("extra-job") is None
        assert [job.id for job in sched.get_jobs()] == ["default-job"]
    assert [e.alias for e in recorder.events] == ["default", "extra"]  # default: at start()
