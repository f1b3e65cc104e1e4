"""Schedule processing: turning due schedules into jobs (steps 1-3 of DESIGN.md).

For every data store, in batches: ``acquire_schedules`` (a lease on the due ones) →
compute, without I/O, the fire times each one missed and its next fire time, by its
coalesce policy → ``release_schedules`` (jobs inserted and schedules advanced in one
atomic, fenced step). Then sleep until the earliest next fire time any store reports,
woken early by broker events.

Catch-up costs a bounded number of trigger evaluations per schedule for ``latest`` and
``earliest``, however long the downtime and however many fire times it missed:
``earliest`` needs only ``trigger.next(now)``, and ``latest`` finds the last fire time
before *now* by probing ``trigger.next(now - w)`` with a window ``w`` that doubles until
it holds a fire time (at most about 60 probes, for the longest gap a datetime can
hold), then walks that window, or bisects it when it is dense. ``all`` must visit every
missed fire time; it does so at most :data:`MAX_FIRES_PER_RELEASE` per release, leaving
the schedule due so the next round continues where this one stopped.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from ._clock import Clock
from ._enums import CoalescePolicy, OverlapPolicy
from ._logging import job_fields
from ._structures import Job, Schedule, Task
from ._tasks import TaskCache
from ._wakeup import RECHECK_DELAY, Backoff, Wakeup, earliest
from .datastores._base import DataStore, ScheduleUpdate
from .events import Event, ScheduleFireSkipped, SchedulerCaughtUp

#: Schedules acquired per round trip.
SCHEDULE_BATCH_SIZE = 100
#: Jobs one schedule may create in one release under ``CoalescePolicy.all``.
MAX_FIRES_PER_RELEASE = 1000
#: The first window of the backwards search for the latest missed fire time.
_FIRST_PROBE_WINDOW = timedelta(seconds=1)
#: Fire times walked one by one before switching to bisection.
_MAX_WALK = 32
_ONE_MICROSECOND = timedelta(microseconds=1)


def _utc(value: datetime) -> datetime:
    # Aware datetimes that share a tzinfo compare by wall time, ignoring the UTC offset
    # (wrong inside a DST fold); compared in UTC they compare as instants.
    return value.astimezone(timezone.utc)


def latest_fire_time(schedule: Schedule, first: datetime, now: datetime) -> datetime:
    """The latest fire time of *schedule*'s trigger that is at or before *now*.

    *first* is a fire time known to be at or before *now* (the schedule's stored next
    fire time). A backwards probe with a doubling window finds a fire time close to
    *now* in about log2((now - latest) / 1 s) evaluations; from there a short walk, or a
    bisection when the trigger is dense, finds the last one. The cost never grows with
    the number of fire times missed.
    """
    trigger = schedule.trigger
    now_utc = _utc(now)
    gap = now_utc - _utc(first)
    window = _FIRST_PROBE_WINDOW
    lower = first
    while window < gap:
        probe = trigger.next(now_utc - window)
        if probe is not None and _utc(probe) <= now_utc:
            lower = probe
            break
        window *= 2
    for _ in range(_MAX_WALK):
        following = trigger.next(lower)
        if following is None or _utc(following) > now_utc:
            return lower
        lower = following
    return _bisect_latest(schedule, lower, now_utc)


def _bisect_latest(schedule: Schedule, lower: datetime, now_utc: datetime) -> datetime:
    # Invariants: `lower` is a fire time <= now; no fire time lies in (high, now]; so
    # the answer is in [lower, high]. next(mid) either finds a later fire time <= now
    # (raise lower to it) or proves (mid, now] empty (lower high to mid).
    trigger = schedule.trigger
    high = now_utc
    while high - _utc(lower) > _ONE_MICROSECOND:
        middle = _utc(lower) + (high - _utc(lower)) / 2
        found = trigger.next(middle)
        if found is not None and _utc(found) <= now_utc:
            lower = found
        else:
            high = middle
    following = trigger.next(lower)
    if following is not None and _utc(following) <= now_utc:
        return following
    return lower


def due_fire_times(
    schedule: Schedule, now: datetime
) -> tuple[list[tuple[datetime, datetime | None]], datetime | None]:
    """The fire times to make jobs for, by the schedule's coalesce policy.

    Returns ``([(fire_time, the fire time after it), ...], next_fire_time)``. The
    following fire time bounds the job's jitter. ``next_fire_time`` is what the
    schedule advances to (``None``: the trigger is exhausted); under
    ``CoalescePolicy.all`` it may still be due when the per-release cap was reached.
    """
    first = schedule.next_fire_time
    assert first is not None, "acquired schedules always have a next fire time"
    trigger = schedule.trigger
    now_utc = _utc(now)
    if schedule.coalesce is CoalescePolicy.latest:
        # The common case, one fire time due: its successor is already in the future,
        # and that one evaluation serves as the jitter bound and the next fire time.
        following = trigger.next(first)
        if following is None or _utc(following) > now_utc:
            return [(first, following)], following
        latest = latest_fire_time(schedule, following, now)
        following = trigger.next(latest)
        return [(latest, following)], following
    if schedule.coalesce is CoalescePolicy.earliest:
        following = trigger.next(first)
        if following is not None and _utc(following) <= now_utc:
            following_now = trigger.next(now_utc)  # jump over the coalesced ones
            return [(first, following)], following_now
        return [(first, following)], following
    fires: list[tuple[datetime, datetime | None]] = []
    current: datetime | None = first
    while current is not None and _utc(current) <= now_utc and len(fires) < MAX_FIRES_PER_RELEASE:
        following = trigger.next(current)
        fires.append((current, following))
        current = following
    return fires, current


def capped_fire_times(
    schedule: Schedule, now: datetime, cap: int
) -> tuple[list[tuple[datetime, datetime | None]], datetime | None, int]:
    """``CoalescePolicy.all`` with ``max_catchup=cap``: the latest *cap* missed fire
    times, the next fire time, and how many fire times were missed in all.

    Every missed fire time is visited once (they must be counted), but only *cap* of
    them are kept, so memory and the jobs made stay bounded however long the downtime.
    """
    first = schedule.next_fire_time
    assert first is not None, "acquired schedules always have a next fire time"
    trigger = schedule.trigger
    now_utc = _utc(now)
    kept: deque[tuple[datetime, datetime | None]] = deque(maxlen=cap)
    missed = 0
    current: datetime | None = first
    while current is not None and _utc(current) <= now_utc:
        following = trigger.next(current)
        kept.append((current, following))
        missed += 1
        current = following
    return list(kept), current, missed


def make_job(
    schedule: Schedule,
    task: Task | None,
    fire_time: datetime,
    following: datetime | None,
    now: datetime,
    rng: random.Random,
) -> Job:
    """The job for one fire time of *schedule*.

    Jitter is random in ``[0, max_jitter]`` but never reaches past the following fire
    time. The start deadline is the start time (fire time plus jitter: the jitter is a
    deliberate delay, not lateness) plus the misfire grace time of the schedule, or of
    its task when the schedule sets none.
    """
    jitter = timedelta(0)
    if schedule.max_jitter:
        bound = schedule.max_jitter
        if following is not None:
            bound = min(bound, _utc(following) - _utc(fire_time))
        jitter = timedelta(seconds=rng.uniform(0, bound.total_seconds()))
    return schedule_job(schedule, task, fire_time, fire_time + jitter, now, jitter)


def schedule_job(
    schedule: Schedule,
    task: Task | None,
    fire_time: datetime | None,
    start_time: datetime,
    now: datetime,
    jitter: timedelta = timedelta(0),
) -> Job:
    """A job of *schedule* that may start at *start_time*, with the schedule's
    arguments and policies (those it leaves unset from its task) and its grace time
    counted from *start_time*. *fire_time* is ``None`` for a job made outside the
    schedule's fire times (``run_schedule_now``)."""
    grace = schedule.misfire_grace_time
    if grace is None and task is not None:
        grace = task.misfire_grace_time
    return Job(
        task_id=schedule.task_id,
        args=schedule.args,
        kwargs=schedule.kwargs,
        schedule_id=schedule.id,
        scheduled_fire_time=fire_time,
        jitter=jitter,
        start_time=start_time,
        start_deadline=None if grace is None else start_time + grace,
        job_executor=schedule.job_executor,
        max_running_jobs=schedule_job_limit(schedule),
        job_timeout=schedule.job_timeout or (task.job_timeout if task else None),
        retry=schedule.retry or (task.retry if task else None),
        result_expiration_time=schedule.job_result_expiration_time,
        created_at=now,
        metadata=schedule.metadata,
    )


def schedule_job_limit(schedule: Schedule) -> int | None:
    """How many jobs of *schedule* may run at once: its ``max_running_jobs``, and one
    under every overlap policy but ``allow``."""
    if schedule.overlap is OverlapPolicy.allow:
        return schedule.max_running_jobs
    return 1


def apply_overlap(
    schedule: Schedule, jobs: list[Job], existing: Sequence[Job]
) -> tuple[list[Job], list[tuple[Job, str]], list[Job]]:
    """Sort this round's *jobs* of *schedule* by its overlap policy, given the jobs of
    the schedule that are still pending or running (*existing*, on any node).

    Returns ``(jobs to create, [(job skipped, why)], existing jobs to cancel)``.
    """
    policy = schedule.overlap
    if policy is OverlapPolicy.allow or not jobs:
        return jobs, [], []
    if policy is OverlapPolicy.skip:
        if existing:
            why = f"overlap=skip: job {existing[0].id} of this schedule has not finished"
            return [], [(job, why) for job in jobs], []
        why = "overlap=skip: an earlier fire time of the same round runs first"
        return jobs[:1], [(job, why) for job in jobs[1:]], []
    if policy is OverlapPolicy.buffer_one:
        # one job runs and at most one waits behind it (jobs of the schedule run one at
        # a time under this policy), wherever they were made
        room = max(0, 2 - len(existing))
        why = "overlap=buffer_one: a job of this schedule is already waiting"
        return jobs[:room], [(job, why) for job in jobs[room:]], []
    why = "overlap=cancel_running: superseded by a later fire time of the same round"
    return jobs[-1:], [(job, why) for job in jobs[:-1]], list(existing)


def make_adhoc_job(
    task: Task,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    job_executor: str | None,
    result_expiration_time: timedelta,
    now: datetime,
) -> Job:
    """A job for ``add_job``/``run_job``: due now, with its task's grace time, timeout
    and retry policy."""
    grace = task.misfire_grace_time
    return Job(
        task_id=task.id,
        args=args,
        kwargs=kwargs,
        start_time=now,
        start_deadline=None if grace is None else now + grace,
        job_executor=job_executor,
        job_timeout=task.job_timeout,
        retry=task.retry,
        result_expiration_time=result_expiration_time,
        created_at=now,
    )


class ScheduleProcessor:
    """Runs the schedule-processing loop of one scheduler over all its data stores."""

    def __init__(
        self,
        *,
        stores: Mapping[str, DataStore],
        identity: str,
        clock: Clock,
        lease_duration: timedelta,
        poll_interval: timedelta,
        tasks: TaskCache,
        logger: logging.Logger,
        polls: Callable[[], bool],
        publish: Callable[[Iterable[Event]], Awaitable[None]],
    ) -> None:
        self._stores = stores
        self._publish = publish
        self._identity = identity
        self._clock = clock
        self._lease_duration = lease_duration
        self._poll_interval = poll_interval
        self._tasks = tasks
        self._logger = logger
        self._polls = polls
        self._rng = random.Random()  # noqa: S311 - jitter, not crypto
        self.wakeup = Wakeup(clock)
        self._recheck = Backoff(RECHECK_DELAY, poll_interval)
        self._stopping = False

    def request_stop(self) -> None:
        """Finish the current batch, then return from :meth:`run`."""
        self._stopping = True
        self.wakeup.set()

    async def run(self) -> None:
        """Process due schedules until :meth:`request_stop`; store errors are logged and
        retried with exponential back-off, never fatal."""
        backoff = Backoff()
        while not self._stopping:
            try:
                more = False
                round_started: datetime | None = None
                for alias, store in self._stores.items():
                    # read per store: a lease runs from this moment, not the first store's
                    now = self._clock.now()
                    round_started = round_started or now
                    more |= await self._process_batch(alias, store, now)
                if more:
                    continue  # a full batch: there may be more due schedules right now
                assert round_started is not None  # there is always a store
                deadline = await self._next_wakeup(round_started)
                backoff.reset()
            except Exception:
                delay = backoff.next_delay()
                self._logger.exception("Error while processing schedules; retrying in %s", delay)
                deadline = self._clock.now() + delay
            await self.wakeup.wait(deadline)

    async def _process_batch(self, alias: str, store: DataStore, now: datetime) -> bool:
        """Acquire (as of *now*), compute and release one batch; True if there may be
        more due now."""
        schedules = await store.acquire_schedules(
            self._identity, now, self._lease_duration, SCHEDULE_BATCH_SIZE
        )
        if not schedules:
            return False
        existing = await self._existing_jobs(store, schedules)
        updates = []
        events: list[Event] = []
        to_cancel: dict[str, list[Job]] = {}
        for schedule in schedules:
            task = await self._tasks.get_optional(alias, store, schedule.task_id)
            update = self._compute_update(schedule, task, now, events)
            if update.jobs and schedule.overlap is not OverlapPolicy.allow:
                jobs, skipped, cancel = apply_overlap(
                    schedule, list(update.jobs), existing.get(schedule.id, ())
                )
                update = attrs.evolve(update, jobs=jobs)
                events += [
                    ScheduleFireSkipped(
                        timestamp=now, schedule_id=schedule.id, reason=why,
                        fire_time=job.scheduled_fire_time or now,
                    )
                    for job, why in skipped
                ]  # fmt: skip
                if cancel:
                    to_cancel[schedule.id] = cancel
            updates.append(update)
        # Fenced by the lease: if it expired meanwhile and another node took a schedule
        # over, the store ignores that schedule's update, jobs included.
        created = await store.release_schedules(self._identity, updates)
        if to_cancel:
            await self._cancel_superseded(store, to_cancel, created, now)
        if events:
            await self._publish(events)
        still_due = any(
            update.next_fire_time is not None and _utc(update.next_fire_time) <= _utc(now)
            for update in updates
        )  # a CoalescePolicy.all catch-up that reached MAX_FIRES_PER_RELEASE
        return still_due or len(schedules) >= SCHEDULE_BATCH_SIZE

    async def _existing_jobs(
        self, store: DataStore, schedules: Sequence[Schedule]
    ) -> dict[str, list[Job]]:
        """The unfinished jobs of the batch's schedules that have an overlap policy."""
        ids = [s.id for s in schedules if s.overlap is not OverlapPolicy.allow]
        found: dict[str, list[Job]] = {}
        if ids:
            for job in await store.get_schedule_jobs(ids):
                assert job.schedule_id is not None
                found.setdefault(job.schedule_id, []).append(job)
        return found

    async def _cancel_superseded(
        self, store: DataStore, to_cancel: Mapping[str, list[Job]], created: Sequence[Job],
        now: datetime,
    ) -> None:  # fmt: skip
        """``overlap=cancel_running``: cancel the older jobs of each schedule whose new
        job was created (not those of a schedule whose release was fenced off)."""
        made = {job.schedule_id for job in created}
        for schedule_id, jobs in to_cancel.items():
            if schedule_id not in made:
                continue
            for job in jobs:
                self._logger.info(
                    "Cancelling job %s: a new fire of schedule %r supersedes it "
                    "(overlap=cancel_running)", job.id, schedule_id,
                    extra=job_fields(job_id=job.id, schedule_id=schedule_id, task_id=job.task_id),
                )  # fmt: skip
                await store.cancel_job(job.id, now)

    def _compute_update(
        self, schedule: Schedule, task: Task | None, now: datetime, events: list[Event]
    ) -> ScheduleUpdate:
        try:
            if schedule.coalesce is CoalescePolicy.all and schedule.max_catchup is not None:
                fires, next_fire_time, missed = capped_fire_times(
                    schedule, now, schedule.max_catchup
                )
                if missed > len(fires):
                    self._logger.warning(
                        "Schedule %r missed %d fire times; making jobs for the latest %d "
                        "(max_catchup)", schedule.id, missed, len(fires),
                        extra=job_fields(schedule_id=schedule.id, task_id=schedule.task_id),
                    )  # fmt: skip
                    events.append(
                        SchedulerCaughtUp(
                            timestamp=now, schedule_id=schedule.id, missed=missed,
                            created=len(fires),
                        )
                    )  # fmt: skip
            else:
                fires, next_fire_time = due_fire_times(schedule, now)
            jobs = [
                make_job(schedule, task, fire_time, following, now, self._rng)
                for fire_time, following in fires
            ]
        except Exception:
            # A trigger that raises would raise again on every round; like APScheduler
            # we log it and retire the schedule instead of retrying it forever.
            self._logger.exception(
                "The trigger of schedule %r raised while computing its fire times; "
                "removing the schedule",
                schedule.id,
                extra=job_fields(schedule_id=schedule.id, task_id=schedule.task_id),
            )
            return ScheduleUpdate(schedule_id=schedule.id, next_fire_time=None)
        last_fire_time = fires[-1][0] if fires else None
        if fires and self._logger.isEnabledFor(logging.DEBUG):
            self._logger.debug(
                "Schedule %r fired for %s (%d job(s)); next fire time: %s",
                schedule.id, last_fire_time, len(jobs), next_fire_time,
                extra=job_fields(
                    schedule_id=schedule.id, task_id=schedule.task_id, fire_time=last_fire_time
                ),
            )  # fmt: skip
        return ScheduleUpdate(
            schedule_id=schedule.id,
            next_fire_time=next_fire_time,
            last_fire_time=last_fire_time,
            jobs=jobs,
        )

    async def _next_wakeup(self, now: datetime) -> datetime | None:
        """When to look again: the earliest next fire time of any store, with polling
        as the safety net where another process may change a store unannounced.

        *now* is the time the round acquired with. A schedule due at or before it that
        the round did not get is held by another node (or its claim had not committed):
        that needs the back-off of RECHECK_DELAY. One that came due after it, while the
        batch ran (common when fire times are dense), is simply next: the deadline is
        its fire time, already past, so the next round starts at once. Comparing with a
        fresh reading of the clock would put those behind the back-off as well.
        """
        deadline: datetime | None = None
        poll = self._polls()
        due = False
        for store in self._stores.values():
            next_time = await store.get_next_schedule_time()
            if next_time is not None and _utc(next_time) <= _utc(now):
                due = True  # not acquired, yet due: see RECHECK_DELAY
            else:
                deadline = earliest(deadline, next_time)
        if due:
            deadline = earliest(deadline, now + self._recheck.next_delay())
        else:
            self._recheck.reset()
        if poll:
            deadline = earliest(deadline, now + self._poll_interval)
        return deadline
