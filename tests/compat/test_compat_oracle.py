"""horae.compat against the oracle: the same calls on APScheduler 3.11.3 and on compat.

Fire-time sequences of the trigger classes, the jobs a scheduler holds (fields,
``str()``, ``print_jobs``), the events of the calls, and the errors must agree. Nothing
here waits for a job to run: the schedulers start paused, and every time compared is
either fixed or an hour-scale grid point, so both sides compute the same value.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import apscheduler.events as oracle_events
import pytest
from _compat_helpers import Recorder
from apscheduler.jobstores.base import JobLookupError as OracleJobLookupError
from apscheduler.schedulers import SchedulerAlreadyRunningError as OracleAlreadyRunning
from apscheduler.schedulers import SchedulerNotRunningError as OracleNotRunning
from apscheduler.schedulers.background import BackgroundScheduler as OracleScheduler
from apscheduler.triggers.cron import CronTrigger as OracleCron
from apscheduler.triggers.date import DateTrigger as OracleDate
from apscheduler.triggers.interval import IntervalTrigger as OracleInterval

import horae.compat.events as compat_events
from horae.compat import (
    BackgroundScheduler,
    JobLookupError,
    SchedulerAlreadyRunningError,
    SchedulerNotRunningError,
)
from horae.compat.triggers import CronTrigger, DateTrigger, IntervalTrigger

START = datetime(2031, 5, 4, 10, 17, 23, tzinfo=timezone.utc)  # a Sunday, far from DST changes


def job_func(label: str = "") -> str:
    return label


def other_func() -> None: ...


def _sequence(trigger: Any, now: datetime, count: int = 15) -> list[datetime | None]:
    times: list[datetime | None] = []
    current = trigger.get_next_fire_time(None, now)
    while len(times) < count:
        times.append(current)
        if current is None:
            break
        current = trigger.get_next_fire_time(current, current)
    return times


CRON_CASES: list[dict[str, Any]] = [
    {"hour": "*/2", "minute": 1},  # the seed's
    {"day_of_week": "mon-fri", "hour": 9, "minute": 30},
    {"day_of_week": 0, "hour": 0},  # 0 is Monday in APScheduler 3
    {"day_of_week": "sat,sun", "hour": "9-17", "minute": "*/30"},
    {"day": "last", "hour": 12},
    {"day": "1st mon"},
    {"day": "last fri", "hour": 18},
    {"month": "jan,JUL", "day": 15},
    {"week": 10, "day_of_week": "wed"},
    {"second": "*/15"},
    {"minute": "5-50/15"},
    {"year": "2031-2033", "month": 2, "day": 28},
    {},  # every second
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Asia/Shanghai"])
@pytest.mark.parametrize(
    "fields", CRON_CASES, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "none"
)
def test_cron_fire_times_and_text_match(fields: dict[str, Any], zone: str) -> None:
    oracle = OracleCron(**fields, timezone=zone)
    compat = CronTrigger(**fields, timezone=zone)
    assert _sequence(compat, START) == _sequence(oracle, START)
    assert str(compat) == str(oracle)


@pytest.mark.parametrize("expr", ["0 0 * * 0", "*/10 9-17 1 * mon-fri", "30 6 * jan,jun 5"])
def test_from_crontab_keeps_apscheduler_3_weekdays(expr: str) -> None:
    oracle = OracleCron.from_crontab(expr, timezone="Europe/Berlin")
    compat = CronTrigger.from_crontab(expr, timezone="Europe/Berlin")
    assert _sequence(compat, START) == _sequence(oracle, START)
    assert str(compat) == str(oracle)


@pytest.mark.parametrize(
    "arguments",
    [
        {"seconds": 3, "start_date": START},
        {"hours": 5, "start_date": "2031-03-01 08:00:00"},
        {"days": 2, "start_date": START, "end_date": START + timedelta(days=9)},
        {"weeks": 1, "minutes": 30, "start_date": START - timedelta(days=30)},
        {"start_date": START},  # zero: one second
    ],
    ids=["seconds", "hours-string-start", "days-with-end", "weeks-started-before", "zero"],
)
def test_interval_fire_times_and_text_match(arguments: dict[str, Any]) -> None:
    oracle = OracleInterval(**arguments, timezone="Europe/Berlin")
    compat = IntervalTrigger(**arguments, timezone="Europe/Berlin")
    assert _sequence(compat, START) == _sequence(oracle, START)
    assert str(compat) == str(oracle)
    assert (compat.interval, compat.start_date, compat.end_date) == (
        oracle.interval, oracle.start_date, oracle.end_date,
    )  # fmt: skip


@pytest.mark.parametrize(
    "run_date",
    ["2019-06-28 18:09:00", date(2019, 6, 28), datetime(2019, 6, 28, 1, 0, 2), START],
    ids=["string", "date", "naive-datetime", "aware-datetime"],
)
def test_date_trigger_matches(run_date: Any) -> None:
    oracle = OracleDate(run_date, timezone="Asia/Shanghai")
    compat = DateTrigger(run_date, timezone="Asia/Shanghai")
    assert _sequence(compat, START) == _sequence(oracle, START)
    assert str(compat) == str(oracle)


# ---- a scheduler's jobs ---------------------------------------------------------------


def _add_jobs(sched: Any) -> None:
    """The same add_job calls, on either scheduler (the seed's, and its date forms)."""
    sched.add_job(
        func=job_func, args=("定时任务",), trigger="cron", hour="*/2", minute=1, id="cron_job"
    )
    sched.add_job(
        job_func, "interval", hours=1, start_date="2031-01-01 00:30:00", id="interval_job"
    )
    # the seed's start and end dates: in the past, so the job is added paused
    sched.add_job(
        job_func, "interval", seconds=2, id="ended",
        start_date="2018-12-11 09:30:00", end_date="2018-12-15 11:00:00",
    )  # fmt: skip
    sched.add_job(
        job_func, "date", run_date=date(2040, 6, 28), id="date_job", kwargs={"label": "d"}
    )
    sched.add_job(job_func, "date", run_date=datetime(2040, 6, 28, 1, 0, 2), id="datetime_job")
    sched.add_job(
        job_func, "cron", day_of_week="mon-fri", hour=9, jitter=30, id="jittery", name="weekdays"
    )
    sched.add_job(
        job_func,
        "interval",
        hours=2,
        start_date=START,
        next_run_time=None,
        id="held",
        misfire_grace_time=None,
    )
    sched.add_job(
        job_func,
        "cron",
        minute=0,
        next_run_time=datetime(2040, 1, 1, 8),
        id="first_set",
        max_instances=4,
    )
    sched.add_job(other_func, "interval", days=1, start_date=START, coalesce=False, id="daily")


def _snapshot(sched: Any) -> list[tuple[Any, ...]]:
    return [
        (
            job.id,
            job.name,
            job.func,
            job.args,
            job.kwargs,
            str(job.trigger),
            *_run_time(job),
            job.misfire_grace_time,
            job.coalesce,
            job.max_instances,
            job.executor,
            job.pending,
        )
        for job in sched.get_jobs()
    ]


def _run_time(job: Any) -> tuple[datetime | None, str]:
    """The next run time and ``str(job)``. APScheduler 3 adds the jitter to
    ``next_run_time``, compat when the job runs: for a jittered job only the minute of
    the next run time is compared."""
    if getattr(job.trigger, "jitter", None) and job.next_run_time is not None:
        return job.next_run_time.replace(second=0, microsecond=0), ""
    return job.next_run_time, str(job).replace(job.id, "<id>")


def _printed(sched: Any) -> str:
    """What print_jobs prints, without the jittered job's line (see :func:`_run_time`)."""
    out = io.StringIO()
    sched.print_jobs(out=out)
    return "".join(line for line in out.getvalue().splitlines(True) if "weekdays (" not in line)


@pytest.fixture
def pair() -> Iterator[tuple[Any, BackgroundScheduler, Recorder, Recorder]]:
    """An oracle scheduler and a compat one (UTC), each with a recording listener."""
    oracle, compat = OracleScheduler(timezone="UTC"), BackgroundScheduler(timezone="UTC")
    oracle_recorder, compat_recorder = Recorder(), Recorder()
    oracle.add_listener(oracle_recorder)
    compat.add_listener(compat_recorder)
    yield oracle, compat, oracle_recorder, compat_recorder
    for sched in (oracle, compat):
        if sched.running:
            sched.shutdown()


def test_pending_jobs_match(pair: tuple[Any, BackgroundScheduler, Recorder, Recorder]) -> None:
    oracle, compat, _, _ = pair
    for sched in (oracle, compat):
        _add_jobs(sched)
    assert _printed(compat) == _printed(oracle)
    oracle_job, compat_job = oracle.get_job("cron_job"), compat.get_job("cron_job")
    assert compat_job is not None
    assert compat_job.pending
    assert oracle_job.pending
    assert (
        str(compat_job)
        == str(oracle_job)
        == "job_func (trigger: cron[hour='*/2', minute='1'], pending)"
    )
    for job in (oracle_job, compat_job):
        with pytest.raises(AttributeError, match="next_run_time"):
            _ = job.next_run_time


def test_started_jobs_operations_and_events_match(
    pair: tuple[Any, BackgroundScheduler, Recorder, Recorder],
) -> None:
    oracle, compat, oracle_recorder, compat_recorder = pair
    for sched in (oracle, compat):
        _add_jobs(sched)
        sched.start(paused=True)
    assert _snapshot(compat) == _snapshot(oracle)
    assert _printed(compat) == _printed(oracle)

    operations: list[Callable[[Any], Any]] = [
        lambda s: s.pause_job("cron_job"),
        lambda s: s.resume_job("cron_job"),
        lambda s: s.modify_job("interval_job", name="renamed", misfire_grace_time=5, args=("x",)),
        lambda s: s.reschedule_job("interval_job", trigger="cron", minute="*/30", hour="*/3"),
        lambda s: s.resume_job("held"),
        lambda s: s.get_job("cron_job").modify(max_instances=2),
        lambda s: s.remove_job("date_job"),
        lambda s: s.get_job("nope"),
    ]
    for operation in operations:
        result_oracle, result_compat = operation(oracle), operation(compat)
        assert (result_compat is None) == (result_oracle is None)
        assert _snapshot(compat) == _snapshot(oracle)
    for sched in (oracle, compat):
        sched.remove_all_jobs(jobstore="default")
        assert sched.get_jobs() == []
        sched.shutdown()
    assert compat_recorder.codes() == oracle_recorder.codes()
    assert _fields(compat_recorder) == _fields(oracle_recorder)


def _fields(recorder: Recorder) -> list[tuple[Any, ...]]:
    return [
        (event.code, getattr(event, "job_id", None), getattr(event, "jobstore", None), event.alias)
        for event in recorder.events
    ]


def test_the_seed_date_forms_give_the_same_run_times(
    pair: tuple[Any, BackgroundScheduler, Recorder, Recorder],
) -> None:
    oracle, compat, _, _ = pair
    forms = ["2019-06-28 18:09:00", date(2019, 6, 28), datetime(2019, 6, 28, 1, 0, 2)]
    for sched in (oracle, compat):
        for index, when in enumerate(forms):
            sched.add_job(job_func, "date", next_run_time=when, id=f"d{index}")
            sched.add_job(job_func, "date", run_date=when, id=f"r{index}")
        sched.start(paused=True)
    expected = [
        datetime(2019, 6, 28, 18, 9, tzinfo=timezone.utc),
        datetime(2019, 6, 28, tzinfo=timezone.utc),
        datetime(2019, 6, 28, 1, 0, 2, tzinfo=timezone.utc),
    ]
    for sched in (oracle, compat):
        times = {job.id: job.next_run_time for job in sched.get_jobs()}
        assert [times[f"d{i}"] for i in range(3)] == expected
        assert [times[f"r{i}"] for i in range(3)] == expected


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"misfire_grace_time": 0},
        {"max_instances": 0},
        {"name": ""},
        {"id": 5},
        {"args": 5},
        {"kwargs": [1]},
        {"args": (1, 2, 3)},  # more arguments than job_func takes
        {"executor": 5},
    ],
    ids=lambda options: ",".join(f"{k}={v!r}" for k, v in options.items()),
)
def test_bad_job_options_fail_alike(options: dict[str, Any]) -> None:
    results: list[tuple[type[BaseException], str]] = []
    for make in (OracleScheduler, BackgroundScheduler):
        with pytest.raises((TypeError, ValueError)) as raised:
            make().add_job(job_func, "interval", hours=1, **options)
        results.append((type(raised.value), str(raised.value)))
    (oracle_type, oracle_text), (compat_type, compat_text) = results
    assert compat_type is oracle_type
    if compat_type is TypeError:
        assert compat_text.startswith(oracle_text.split(" (")[0].rstrip("."))


def test_error_texts_match() -> None:
    assert str(JobLookupError("x")) == str(OracleJobLookupError("x"))
    assert str(SchedulerNotRunningError()) == str(OracleNotRunning())
    assert str(SchedulerAlreadyRunningError()) == str(OracleAlreadyRunning())
    for make in (OracleScheduler, BackgroundScheduler):
        job = make().add_job(job_func, "interval", hours=1)
        with pytest.raises(AttributeError, match="not modifiable attributes of Job: colour"):
            job.modify(colour="red")


def test_event_codes_and_objects_match() -> None:
    for name in oracle_events.__all__:
        if name.startswith("EVENT_"):
            assert getattr(compat_events, name) == getattr(oracle_events, name), name
    when = datetime(2031, 1, 1, tzinfo=ZoneInfo("UTC"))
    pairs = [
        ("SchedulerEvent", (1, "alias")),
        ("JobEvent", (2, "job", "store")),
        ("JobSubmissionEvent", (3, "job", "store", [when])),
        ("JobExecutionEvent", (4, "job", "store", when, 42, ValueError("x"), "tb")),
    ]
    for name, arguments in pairs:
        oracle = getattr(oracle_events, name)(*arguments)
        compat = getattr(compat_events, name)(*arguments)
        assert vars(compat).keys() == vars(oracle).keys()
        assert all(
            vars(compat)[key] == vars(oracle)[key] for key in vars(oracle) if key != "exception"
        )
