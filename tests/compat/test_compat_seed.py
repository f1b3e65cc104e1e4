"""The seed's APScheduler 3 code on horae.compat, with only its imports changed.

* The verbatim copy raises at its misspelt interval argument (``minute=1``), with horae's
  hint, unchanged by compat.
* The runnable copy (that argument fixed) runs for about four seconds: the interval job
  prints every 3 s; the 2019 date job is reported missed, as APScheduler 3 reports it.
* With the date moved a couple of seconds ahead (and the ``scheduler`` global that
  ``clear_job`` needs), the date job removes the cron job.
* The job stores example (Redis and MongoDB) keeps its jobs across a restart.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import _seed_copy
import pytest
from _compat_helpers import Recorder, compat_mongodb_uri, mongo_database, redis_conf, redis_keys

from horae._clock import SystemClock
from horae.compat import BackgroundScheduler, BlockingScheduler
from horae.compat.events import (
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_REMOVED,
    EVENT_SCHEDULER_STARTED,
)
from horae.compat.jobstores import MongoDBJobStore, RedisJobStore
from horae.triggers._shorthand import build_trigger

__all__ = ["compat_mongodb_uri", "mongo_database", "redis_conf"]


def test_the_verbatim_seed_raises_at_its_misspelt_interval_argument() -> None:
    with pytest.raises(TypeError) as raised:
        _seed_copy.cron_job()  # type: ignore[no-untyped-call]
    assert str(raised.value) == (
        "IntervalTrigger() got an unexpected keyword argument 'minute'; did you mean 'minutes'?"
    )
    # the very message of horae's shorthand, not rewritten by compat
    with pytest.raises(TypeError) as direct:
        build_trigger("interval", {"seconds": 3, "minute": 1})
    assert str(raised.value) == str(direct.value)


def test_the_fixed_seed_runs_for_four_seconds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made: list[BlockingScheduler] = []
    recorder = Recorder()

    class RecordingScheduler(BlockingScheduler):
        """The seed's BlockingScheduler, with a listener (the seed's code is unchanged)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.add_listener(recorder)
            made.append(self)

    monkeypatch.setattr(_seed_copy, "BlockingScheduler", RecordingScheduler)
    started = time.monotonic()
    thread = threading.Thread(target=_seed_copy.cron_job_fixed, name="seed-main")
    thread.start()
    try:
        recorder.wait_for(EVENT_SCHEDULER_STARTED)
        sched = made[0]
        # The date job's run time (2019) is long past its one-second grace time.
        (missed,) = recorder.wait_for(EVENT_JOB_MISSED, job_id="date_job")
        assert missed.scheduled_run_time == datetime(2019, 6, 28, 18, 9, tzinfo=sched.timezone)
        recorder.wait_for(EVENT_JOB_REMOVED, job_id="date_job")  # its trigger is done
        (ran,) = recorder.wait_for(EVENT_JOB_EXECUTED, job_id="interval_job", timeout=4.0)
        assert 2.8 <= recorder.time_of(ran) - started <= 4.1  # every 3 s: once, at ~3 s
        time.sleep(max(0.0, started + 4.2 - time.monotonic()))
        cron = sched.get_job("cron_job")
        assert cron is not None
        assert cron.next_run_time is not None
        assert (cron.next_run_time.minute, cron.next_run_time.hour % 2) == (1, 0)
        assert str(cron.trigger) == "cron[hour='*/2', minute='1']"
    finally:
        if made and made[0].running:
            made[0].shutdown()
        thread.join(10)
    assert not thread.is_alive()
    assert capsys.readouterr().out.count("模式:循环任务") == 1
    assert len(recorder.of(EVENT_JOB_EXECUTED, "interval_job")) == 1


#: The global that the seed's clear_job uses but never defines.
scheduler: BlockingScheduler | None = None


def clear_job(job_id: str) -> None:
    """The seed's clear_job (it finds the scheduler in the global ``scheduler``)."""
    assert scheduler is not None
    scheduler.remove_job(job_id)
    print(f"{job_id}任务被删除了")


def test_the_seed_date_job_removes_the_cron_job(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sched = BlockingScheduler()
    monkeypatch.setattr(sys.modules[__name__], "scheduler", sched)
    recorder = Recorder()
    sched.add_listener(recorder)
    soon = SystemClock().now().astimezone(sched.timezone) + timedelta(seconds=2)
    run_at = soon.strftime("%Y-%m-%d %H:%M:%S")  # the seed's format, a second or two ahead
    print_time = _seed_copy.print_time
    sched.add_job(
        func=print_time, args=("定时任务",), trigger="cron", hour="*/2", minute=1, id="cron_job"
    )
    sched.add_job(
        func=print_time, args=("循环任务",), trigger="interval", seconds=1, id="interval_job"
    )
    sched.add_job(
        func=clear_job, args=("cron_job",), trigger="date", next_run_time=run_at, id="date_job"
    )
    thread = threading.Thread(target=sched.start, name="seed-main")
    thread.start()
    try:
        recorder.wait_for(EVENT_JOB_REMOVED, job_id="cron_job", timeout=5.0)
        assert sched.get_job("cron_job") is None
        assert sched.get_job("interval_job") is not None
    finally:
        sched.shutdown()
        thread.join(10)
    out = capsys.readouterr().out
    assert "cron_job任务被删除了" in out
    assert out.count("模式:循环任务") >= 1


def some_job() -> None:
    """The seed's ``some_job`` (it never shows one)."""


def test_the_seed_job_stores_keep_their_jobs_across_a_restart(
    redis_conf: dict[str, Any], compat_mongodb_uri: str, mongo_database: str
) -> None:
    jobs_key, run_times_key = redis_conf["jobs_key"], redis_conf["run_times_key"]
    REDIS_CONF = {"host": redis_conf["host"], "port": redis_conf["port"], "db": redis_conf["db"]}

    def jobstores() -> dict[str, Any]:
        return {
            "redis": RedisJobStore(jobs_key=jobs_key, run_times_key=run_times_key, **REDIS_CONF),
            "mongo": MongoDBJobStore(database=mongo_database, host=compat_mongodb_uri),
        }

    sched = BackgroundScheduler(jobstores=jobstores())
    sched.add_job(func=some_job, trigger="cron", minute="*/10", jobstore="redis", id="some_job")
    sched.add_job(func=some_job, trigger="cron", minute="*/10", jobstore="mongo", id="some_job")
    sched.start()
    try:
        before = {alias: _describe(sched, alias) for alias in ("redis", "mongo")}
    finally:
        sched.shutdown()
    assert before["redis"] == before["mongo"]
    (job,) = before["redis"]
    assert job[:3] == ("some_job", "some_job", "cron[minute='*/10']")
    assert redis_keys(redis_conf, f"{jobs_key}:")  # horae's keys, under the jobs_key

    restarted = BackgroundScheduler(jobstores=jobstores())  # a new process would do this
    restarted.start(paused=True)
    try:
        after = {alias: _describe(restarted, alias) for alias in ("redis", "mongo")}
        assert after == before
        restarted.remove_all_jobs()
        assert restarted.get_jobs() == []
    finally:
        restarted.shutdown()


def _describe(sched: BackgroundScheduler, alias: str) -> list[tuple[Any, ...]]:
    return [
        (job.id, job.name, str(job.trigger), job.next_run_time, job.func, job.args)
        for job in sched.get_jobs(jobstore=alias)
    ]
