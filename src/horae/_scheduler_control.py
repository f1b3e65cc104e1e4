"""Job control beyond plain scheduling: cancelling jobs, extra runs of a schedule,
backfills, and declared schedules (``sync_schedules``).

The :class:`~horae.AsyncScheduler` methods of the same names are thin wrappers around
these functions; they hold the decisions that are easy to get wrong:

* ``cancel_job`` asks every store; the store ends a pending job at once and marks a
  running one, whose node cancels it (``JobCancellationRequested``, or the flag read at
  the next lease renewal when the event was lost).
* ``run_schedule_now`` and ``backfill`` add jobs with ``add_jobs`` and never move the
  schedule, so they cannot disturb its fire times or its exactly-once guard.
* ``sync_schedules`` converges many processes on one copy of each declared schedule:
  new ids are added with ``ConflictPolicy.do_nothing`` (the store settles races), and a
  changed spec replaces the stored schedule with the same content on every process
  (idempotent), keeping its next fire time and pause state where the trigger did not
  change. A fire time a replaced schedule repeats is still refused by the store's
  fire-time guard, which survives the replacement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs

from ._enums import CoalescePolicy, ConflictPolicy, OverlapPolicy
from ._exceptions import JobLookupError
from ._scheduler_args import make_schedule
from ._scheduler_loop import schedule_job
from ._structures import Job, RetryPolicy, Schedule, Task
from .datastores._base import DataStore
from .triggers._base import Trigger
from .triggers.calendarinterval import CalendarIntervalTrigger
from .triggers.interval import IntervalTrigger

if TYPE_CHECKING:
    from ._scheduler_args import SchedulerConfig
    from ._tasks import TaskService
    from .executors._base import JobExecutor

#: The most jobs one ``backfill`` call makes (split longer ranges into several calls).
MAX_BACKFILL_JOBS = 10_000
_ONE_MICROSECOND = timedelta(microseconds=1)
#: Schedule fields that running the schedule changes, not its declaration.
_RUNTIME_FIELDS = frozenset(
    {
        "paused", "pause_reason", "paused_until", "next_fire_time", "last_fire_time",
        "acquired_by", "acquired_until", "trigger",
    }
)  # fmt: skip


@attrs.frozen(kw_only=True)
class ScheduleSpec:
    """A schedule declared in code, for :meth:`AsyncScheduler.sync_schedules`.

    The fields are ``add_schedule``'s arguments; ``id`` is required, because it is what
    makes the declarations of several processes (and of successive deployments) the
    same schedule. ``trigger_args`` holds what ``add_schedule`` takes as
    ``**trigger_args`` (``ScheduleSpec(id="r", func=f, trigger="cron",
    trigger_args={"hour": 3})``).
    """

    id: str = attrs.field(validator=attrs.validators.instance_of(str))
    func: Callable[..., Any] | str
    trigger: Trigger | str
    trigger_args: Mapping[str, Any] = attrs.field(factory=dict)
    args: Sequence[Any] | None = None
    kwargs: Mapping[str, Any] | None = None
    job_executor: str | None = None
    coalesce: CoalescePolicy | str = CoalescePolicy.latest
    misfire_grace_time: timedelta | float | None = None
    max_jitter: timedelta | float | None = None
    max_running_jobs: int | None = None
    job_timeout: timedelta | float | None = None
    retry: RetryPolicy | None = None
    overlap: OverlapPolicy | str = OverlapPolicy.allow
    max_catchup: int | None = None
    job_result_expiration_time: timedelta | float = 0
    metadata: Mapping[str, Any] | None = None


@attrs.frozen(kw_only=True)
class SyncResult:
    """What :meth:`AsyncScheduler.sync_schedules` did, by schedule id (each sorted)."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


# ---- cancel, run now, backfill ----------------------------------------------------------


async def cancel_job(config: SchedulerConfig, job_id: UUID) -> bool:
    """See :meth:`AsyncScheduler.cancel_job`."""
    now = config.clock.now()
    for store in config.stores.values():
        if await store.cancel_job(job_id, now) is not None:
            return True
    for store in config.stores.values():
        try:
            await store.get_job_result(job_id)
        except JobLookupError:
            continue
        return False  # it has already finished
    raise JobLookupError(job_id)


async def run_schedule_now(
    store: DataStore, schedule: Schedule, task: Task | None, now: datetime
) -> Job:
    """See :meth:`AsyncScheduler.run_schedule_now`."""
    job = schedule_job(schedule, task, None, now, now)
    await store.add_jobs([job])
    return job


def backfill_fire_times(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """The fire times of *schedule*'s trigger in ``[start, end]``.

    Raises:
        ValueError: ``end`` is before ``start``, or the range holds more than
            :data:`MAX_BACKFILL_JOBS` fire times.
    """
    start_utc, end_utc = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    if end_utc < start_utc:
        raise ValueError(f"backfill end {end.isoformat()} is before start {start.isoformat()}")
    fire_times: list[datetime] = []
    current = schedule.trigger.next(start_utc - _ONE_MICROSECOND)
    while current is not None and current.astimezone(timezone.utc) <= end_utc:
        if len(fire_times) == MAX_BACKFILL_JOBS:
            raise ValueError(
                f"the range {start.isoformat()} .. {end.isoformat()} holds more than "
                f"{MAX_BACKFILL_JOBS:,} fire times of schedule {schedule.id!r}; backfill "
                f"it in shorter ranges"
            )
        fire_times.append(current)
        current = schedule.trigger.next(current)
    return fire_times


async def backfill(
    store: DataStore,
    schedule: Schedule,
    task: Task | None,
    fire_times: Sequence[datetime],
    now: datetime,
) -> list[Job]:
    """Add one job per fire time, in fire-time order (see
    :meth:`AsyncScheduler.backfill`)."""
    # One microsecond apart, so that every store starts them in fire-time order; under
    # an overlap policy other than allow they run one at a time (schedule_job_limit).
    jobs = [
        schedule_job(schedule, task, fire_time, now + number * _ONE_MICROSECOND, now)
        for number, fire_time in enumerate(fire_times)
    ]
    await store.add_jobs(jobs)
    return jobs


# ---- declared schedules --------------------------------------------------------------


def _equal_except(old: Any, new: Any, ignored: Iterable[str]) -> bool:
    skip = set(ignored)
    return type(old) is type(new) and all(
        getattr(old, field.name) == getattr(new, field.name)
        for field in attrs.fields(type(old))
        if field.eq and field.name not in skip
    )


def same_trigger(old: Trigger, new: Trigger) -> bool:
    """True if *new* declares the same trigger as the stored *old*.

    Interval and calendar-interval triggers made without a start time start at their
    creation, so a redeployed declaration differs from the stored one in that alone;
    such a pair counts as the same (the stored one keeps its anchor).
    """
    if old == new:
        return True
    if isinstance(new, IntervalTrigger) and new._start_defaulted:
        return _equal_except(old, new, ["start_time"])
    if isinstance(new, CalendarIntervalTrigger) and new._not_before is not None:
        return _equal_except(old, new, ["start_date"])
    return False


def _same_declaration(old: Schedule, new: Schedule) -> bool:
    return same_trigger(old.trigger, new.trigger) and _equal_except(old, new, _RUNTIME_FIELDS)


def declared_schedule(
    executors: Mapping[str, JobExecutor], spec: ScheduleSpec, task_id: str
) -> Schedule:
    """The schedule that *spec* declares (its arguments checked as ``add_schedule``
    checks them)."""
    return make_schedule(
        executors, id=spec.id, task_id=task_id, trigger=spec.trigger,
        trigger_args=spec.trigger_args, args=spec.args, kwargs=spec.kwargs, paused=False,
        job_executor=spec.job_executor, coalesce=spec.coalesce,
        misfire_grace_time=spec.misfire_grace_time, max_jitter=spec.max_jitter,
        max_running_jobs=spec.max_running_jobs,
        job_result_expiration_time=spec.job_result_expiration_time, metadata=spec.metadata,
        job_timeout=spec.job_timeout, retry=spec.retry, overlap=spec.overlap,
        max_catchup=spec.max_catchup,
    )  # fmt: skip


def check_specs(specs: Any) -> list[ScheduleSpec]:
    """The specs as a list; each a :class:`ScheduleSpec` with a non-empty id, no id
    twice."""
    if isinstance(specs, (str, bytes, ScheduleSpec)) or not isinstance(specs, Iterable):
        raise TypeError(f"sync_schedules takes a list of ScheduleSpec, not {specs!r}")
    checked = list(specs)
    seen: set[str] = set()
    for spec in checked:
        if not isinstance(spec, ScheduleSpec):
            raise TypeError(f"sync_schedules takes ScheduleSpec objects, not {spec!r}")
        if not spec.id:
            raise ValueError(f"a declared schedule needs a non-empty str id, not {spec.id!r}")
        if spec.id in seen:
            raise ValueError(f"schedule id {spec.id!r} is declared twice")
        seen.add(spec.id)
    return checked


async def sync_schedules(
    config: SchedulerConfig,
    tasks: TaskService,
    specs: Sequence[ScheduleSpec],
    *,
    prune: bool,
    alias: str,
) -> SyncResult:
    """See :meth:`AsyncScheduler.sync_schedules`."""
    store = config.store(alias)
    # Check every declaration before changing anything.
    declared = [
        (spec, declared_schedule(config.executors, spec, tasks.identify(spec.func)[0]))
        for spec in specs
    ]
    for spec, schedule in declared:
        await tasks.prepare(spec.func, alias, store, schedule.job_executor)
    stored = {s.id: s for s in await store.get_schedules([s.id for _, s in declared])}
    added: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    for _, schedule in declared:
        old = stored.get(schedule.id)
        if old is None:
            if await store.add_schedule(schedule, ConflictPolicy.do_nothing):
                added.append(schedule.id)
                continue
            # another process added it first: compare with theirs
            found = await store.get_schedules([schedule.id])
            if not found:  # ... and it was removed again meanwhile
                await store.add_schedule(schedule, ConflictPolicy.do_nothing)
                added.append(schedule.id)
                continue
            old = found[0]
        if _same_declaration(old, schedule):
            unchanged.append(schedule.id)
            continue
        await store.add_schedule(_merge(old, schedule), ConflictPolicy.replace)
        updated.append(schedule.id)
    removed: list[str] = []
    if prune:
        names = {s.id for _, s in declared}
        removed = [s.id for s in await store.get_schedules() if s.id not in names]
        if removed:
            await store.remove_schedules(removed)
    return SyncResult(
        added=tuple(sorted(added)),
        updated=tuple(sorted(updated)),
        unchanged=tuple(sorted(unchanged)),
        removed=tuple(sorted(removed)),
    )


def _merge(old: Schedule, new: Schedule) -> Schedule:
    """*new*'s declaration with *old*'s pause state, and with its trigger and fire times
    when the trigger is unchanged."""
    merged = attrs.evolve(
        new, paused=old.paused, pause_reason=old.pause_reason, paused_until=old.paused_until
    )
    if same_trigger(old.trigger, new.trigger):
        merged = attrs.evolve(
            merged,
            trigger=old.trigger,
            next_fire_time=old.next_fire_time,
            last_fire_time=old.last_fire_time,
        )
    return merged
