"""The DataStore interface: where tasks, schedules, jobs and results live.

Read ``DESIGN.md`` (shipped as docs/design.md) before implementing one. In short, one fire
takes this path through a store::

    acquire_schedules ──► (scheduler computes fire times, no I/O) ──► release_schedules
         lease                                                  jobs inserted + schedules
                                                                advanced, atomically, fenced
    acquire_jobs ──► extend_job_leases ... ──► release_job
       lease            while running           result written + job removed, fenced
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from logging import Logger
from typing import TYPE_CHECKING
from uuid import UUID

import attrs

from horae._enums import ConflictPolicy
from horae._structures import Job, JobResult, Schedule, Task

if TYPE_CHECKING:
    from horae._clock import Clock
    from horae.eventbrokers._base import EventBroker


@attrs.frozen(kw_only=True)
class StoreCapabilities:
    """What a store can and cannot do; tests and the scheduler read these, never
    ``isinstance``.

    Attributes:
        persistent: data survives a restart of the process.
        shared: several processes (or machines) can use the same store at once.
        requires_references: callables must be importable ``"module:qualname"``
            references and arguments must pass the store's serializer (checked by the
            scheduler at ``add_schedule``/``add_job`` time).
        keeps_exception_objects: ``JobResult.exception`` is the original object (else
            only ``exception_type``/``exception_message`` are guaranteed).
    """

    persistent: bool
    shared: bool
    requires_references: bool
    keeps_exception_objects: bool = False


@attrs.frozen(kw_only=True)
class ScheduleUpdate:
    """What a scheduler decided for one acquired schedule (input to ``release_schedules``).

    Attributes:
        schedule_id: the schedule.
        next_fire_time: its new next fire time; ``None`` means the trigger is exhausted
            and the schedule is removed (``ScheduleRemoved(finished=True)``).
        last_fire_time: the latest fire time that has now been handled (``None`` = no
            change).
        jobs: the jobs to create for the handled fire times.
    """

    schedule_id: str
    next_fire_time: datetime | None
    last_fire_time: datetime | None = None
    jobs: Sequence[Job] = ()


class DataStore(ABC):
    """Stores tasks, schedules, jobs and job results, and hands out leases on them.

    Every implementation passes ``horae.testing.DataStoreContract``. The contract:

    **Life cycle.** ``start(broker, logger)`` connects, creates the schema/indexes on
    first use, records a schema version and raises :exc:`~horae.SchemaVersionError` for a
    newer one; it may be called again after ``stop()``. Methods other than
    ``start``/``capabilities`` may only be called while started.

    **Time.** No store method reads a clock to decide anything. Every method that
    compares times takes ``now`` (aware) from the caller's :class:`~horae._clock.Clock`;
    the clock given to ``start`` only stamps the ``timestamp`` of published events
    (methods that take ``now`` stamp theirs with it). A lease is live while
    ``acquired_until >= now`` and lapsed once ``acquired_until < now``; a start deadline
    is missed once ``start_deadline < now``.

    **Events.** The store publishes, through the broker given to ``start``, the events
    about what it changed: ``TaskAdded``/``TaskUpdated``/``TaskRemoved``,
    ``ScheduleAdded``/``ScheduleUpdated``/``ScheduleRemoved``/``SchedulePaused``/
    ``ScheduleUnpaused``, ``JobAdded``, ``JobAcquired``, ``JobReleased`` (also for jobs it
    ends itself: missed start deadlines, abandoned and cancelled jobs, and for attempts
    that are retried), ``JobCancellationRequested`` and
    ``ScheduleDeserializationFailed``. Events are published after the change is durable.

    **Exactly once.** (1) ``acquire_schedules`` hands each due schedule to one scheduler
    at a time, under a lease. (2) ``release_schedules`` inserts the jobs and advances the
    schedules in one atomic step, and only for schedules the caller still holds
    (fencing); for the others it changes nothing. (3) A job for a (schedule id, fire
    time) pair is never created twice, even after the first one has finished and been
    deleted, and even when a takeover recomputes the same fire time: the store keeps
    a durable guard (a unique key, or a per-schedule watermark of the last fire time
    that made jobs). (4) ``acquire_jobs`` hands each job to one worker, under a lease.

    **Limits.** ``acquire_jobs`` never lets more jobs run at once than the task's
    ``max_running_jobs`` (across all workers), nor more jobs of one schedule than the
    job's own ``max_running_jobs``. Running counts come from live leases
    (``acquired_until >= now``), not counters. A job blocked by a limit does not stop
    other tasks' jobs from being acquired.

    **Failure.** A job whose lease expired while it was running belongs to a dead
    worker: ``acquire_jobs`` ends it as ``JobOutcome.abandoned`` exactly once (result
    stored, ``JobReleased`` published). A job that could not start before its
    ``start_deadline`` ends as ``JobOutcome.missed_start_deadline`` in the same way.

    **Errors.** Lookups of unknown ids raise the matching ``*LookupError``. Driver
    exceptions never escape: transient connection errors are retried with back-off;
    others are raised as :exc:`~horae.DataStoreError` (``raise ... from exc``).
    """

    __slots__ = ()

    @property
    @abstractmethod
    def capabilities(self) -> StoreCapabilities:
        """What this store guarantees (see :class:`StoreCapabilities`)."""

    # ---- life cycle -------------------------------------------------------------------

    @abstractmethod
    async def start(
        self, event_broker: EventBroker, logger: Logger, *, clock: Clock | None = None
    ) -> None:
        """Connect, create or check the schema, and remember the broker to publish to.

        Args:
            event_broker: where the store publishes its events.
            logger: where the store logs (including events it failed to publish).
            clock: stamps the events of methods that take no ``now``;
                :class:`~horae._clock.SystemClock` when ``None``. Pass the scheduler's
                clock so that a ``FakeClock`` also governs event timestamps.
        """

    @abstractmethod
    async def stop(self) -> None:
        """Close connections that the store opened itself (not ones the user passed)."""

    # ---- tasks ------------------------------------------------------------------------

    @abstractmethod
    async def add_task(self, task: Task) -> None:
        """Insert or replace the task (``TaskAdded`` or ``TaskUpdated``)."""

    @abstractmethod
    async def remove_task(self, task_id: str) -> None:
        """Remove the task (``TaskRemoved``); ``TaskLookupError`` if there is none."""

    @abstractmethod
    async def get_task(self, task_id: str) -> Task:
        """Return the task; ``TaskLookupError`` if there is none."""

    @abstractmethod
    async def get_tasks(self) -> list[Task]:
        """Return every task, sorted by id."""

    # ---- schedules --------------------------------------------------------------------

    @abstractmethod
    async def add_schedule(self, schedule: Schedule, conflict_policy: ConflictPolicy) -> bool:
        """Store a new schedule; return True if it was stored.

        On an id clash: ``replace`` overwrites it (``ScheduleUpdated``), ``do_nothing``
        keeps the old one and returns False, ``exception`` raises
        :exc:`~horae.ConflictingIdError`. A new schedule publishes ``ScheduleAdded``.
        The stored schedule is not held by anyone (``acquired_by``/``acquired_until``
        of the argument are ignored), so replacing a schedule that a node holds fences
        that node's pending release.
        """

    @abstractmethod
    async def remove_schedules(self, ids: Iterable[str], *, finished: bool = False) -> None:
        """Remove these schedules (unknown ids are ignored), publishing
        ``ScheduleRemoved`` for each one that existed."""

    @abstractmethod
    async def get_schedules(self, ids: Iterable[str] | None = None) -> list[Schedule]:
        """Return the schedules with these ids (all if ``None``), sorted by id.

        Schedules that cannot be deserialized are left out, and
        ``ScheduleDeserializationFailed`` is published for each.
        """

    @abstractmethod
    async def pause_schedule(
        self, schedule_id: str, *, reason: str | None = None, until: datetime | None = None
    ) -> Schedule:
        """Pause the schedule (``SchedulePaused``); ``ScheduleLookupError`` if absent."""

    @abstractmethod
    async def unpause_schedule(
        self, schedule_id: str, *, next_fire_time: datetime | None
    ) -> Schedule:
        """Unpause the schedule, setting its next fire time (``ScheduleUnpaused``).

        ``next_fire_time=None`` keeps the stored one (missed fires then follow the
        schedule's coalesce policy). ``ScheduleLookupError`` if absent.
        """

    @abstractmethod
    async def acquire_schedules(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Schedule]:
        """Lease up to *limit* due schedules to *scheduler_id*, earliest first.

        Due: not paused (or paused with ``paused_until <= now``, which unpauses it),
        ``next_fire_time <= now``, and not held by another node (``acquired_until <
        now`` or ``acquired_by == scheduler_id``). Marks them ``acquired_by`` /
        ``acquired_until = now + lease_duration`` in the same atomic step.
        """

    @abstractmethod
    async def release_schedules(
        self, scheduler_id: str, updates: Sequence[ScheduleUpdate]
    ) -> list[Job]:
        """Create the updates' jobs and advance their schedules, atomically; drop leases.

        Only schedules still held by *scheduler_id* (``acquired_by == scheduler_id``)
        are changed; updates for others are ignored whole (their jobs are not created).
        Once a lease lapses, the next ``acquire_schedules`` of any node may take the
        schedule over, and from then on the old holder's release is ignored. A job whose
        (schedule id, scheduled fire time) already made a job is not created again; the
        guard outlives the job and survives ``add_schedule(..., replace)`` of the same
        id (a store that guards with a watermark also drops fire times before it).
        A ``next_fire_time`` of ``None`` removes the schedule. Returns the jobs actually
        created, and publishes ``JobAdded``, ``ScheduleUpdated`` or
        ``ScheduleRemoved(finished=True)``.
        """

    @abstractmethod
    async def get_next_schedule_time(self) -> datetime | None:
        """The earliest moment a schedule may need ``acquire_schedules``, or ``None``.

        That is the earliest of: the ``next_fire_time`` of an unpaused schedule that
        nobody holds, the ``paused_until`` of a paused one, and, for a held schedule,
        the first instant after its lease (``acquired_until`` plus at most a second;
        the memory store uses 1 µs). It is never at or before the end of a live lease,
        so a node that sleeps until this time and finds nothing to acquire does not
        spin. Served by an index, not a scan.
        """

    # ---- jobs -------------------------------------------------------------------------

    @abstractmethod
    async def add_jobs(self, jobs: Sequence[Job]) -> None:
        """Insert jobs not made by a schedule fire (``JobAdded`` for each inserted one).

        A job whose id is already stored is left alone (no event), so repeating a call
        whose outcome was unknown cannot duplicate jobs. Their ``acquired_by`` /
        ``acquired_until`` / ``started_at`` are stored as ``None`` (new jobs are
        pending). The fire-time guard of ``release_schedules`` does not apply here.
        """

    @abstractmethod
    async def get_jobs(self, ids: Iterable[UUID] | None = None) -> list[Job]:
        """Return the pending and running jobs with these ids (all if ``None``), in
        ``start_time`` order."""

    @abstractmethod
    async def acquire_jobs(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Job]:
        """Lease up to *limit* jobs whose ``start_time <= now`` to *scheduler_id*.

        Earliest ``start_time`` first; respects the running limits (see the class
        docstring); sets ``acquired_by``, ``acquired_until = now + lease_duration`` and
        ``started_at = now``, and publishes ``JobAcquired``. A job already running is
        never handed out again, not even to its own holder. In the same step it ends
        pending jobs past their ``start_deadline`` (``start_deadline < now``:
        ``missed_start_deadline``) and running jobs whose lease lapsed
        (``acquired_until < now``: ``abandoned``), storing their results as
        ``release_job`` does and publishing ``JobReleased`` (whose ``scheduler_id`` is
        the lapsed holder for abandoned jobs, ``None`` for missed ones).

        An abandoned job is retried instead when its ``retry`` policy gives it another
        attempt (``job.retry.retries(job.attempt, None)``) and no cancellation was
        requested: it becomes pending again exactly as ``release_job(...,
        retry_at=now + job.retry.delay(job.attempt))`` would make it, and its
        ``JobReleased`` (outcome ``abandoned``) carries ``retry_at``. An abandoned job
        whose cancellation was requested ends as ``cancelled`` instead.
        """

    @abstractmethod
    async def extend_job_leases(
        self,
        scheduler_id: str,
        job_ids: Iterable[UUID],
        now: datetime,
        lease_duration: timedelta,
    ) -> set[UUID]:
        """Extend the leases of these jobs held by *scheduler_id* to ``now +
        lease_duration``; return the ids it still held (the others were taken from it).

        A job counts as held while it exists with ``acquired_by == scheduler_id``: a
        lease that lapsed but that no ``acquire_jobs`` has ended yet is still renewed
        (nothing else happened to the job meanwhile). A job whose cancellation was
        requested is still renewed (its holder is cancelling it).
        """

    @abstractmethod
    async def release_job(
        self, scheduler_id: str, result: JobResult, *, retry_at: datetime | None = None
    ) -> bool:
        """Store the result and delete the job, atomically, fenced by the lease.

        Returns False (and changes nothing) when the job is no longer held by
        *scheduler_id* (held as in :meth:`extend_job_leases`). The result is kept only
        when the job's ``result_expiration_time`` is positive, with ``expires_at =
        result.finished_at + result_expiration_time`` (the store sets it; the value
        passed in is not used); otherwise ``get_job_result`` raises ``JobLookupError``
        once the job is gone. Publishes ``JobReleased`` (with ``attempt`` =
        ``result.attempt``).

        With *retry_at* (the caller's retry policy gave the job another attempt) the job
        is not deleted and no result is stored: in the same atomic step it becomes
        pending again with ``attempt + 1``, ``start_time = retry_at``, its
        ``start_deadline`` moved by as much as its ``start_time`` (``None`` stays
        ``None``) and no lease (``acquired_by``, ``acquired_until``, ``started_at`` all
        ``None``); ``JobReleased`` carries ``retry_at``. A job whose cancellation was
        requested is never retried: *retry_at* is then ignored and the job ends with
        *result*.
        """

    @abstractmethod
    async def cancel_job(self, job_id: UUID, now: datetime) -> Job | None:
        """Cancel a pending or running job; return it as it was, or ``None`` if there
        is no such job (it finished, or never existed).

        A pending job, or a running one whose lease has lapsed (``acquired_until <
        now``), ends at once as ``JobOutcome.cancelled`` (result stored as
        ``release_job`` does, with ``finished_at = now``; ``JobReleased`` published, its
        ``scheduler_id`` the lapsed holder or ``None``). A running job with a live
        lease gets ``cancel_requested = True`` and ``JobCancellationRequested`` is
        published (each call publishes it again, so a lost event can be repeated): its
        holder cancels it and releases it. Atomic against ``acquire_jobs`` and
        ``release_job``.
        """

    @abstractmethod
    async def get_schedule_jobs(self, schedule_ids: Iterable[str]) -> list[Job]:
        """The pending and running jobs made by these schedules (by fire,
        ``run_schedule_now`` or ``backfill``), in ``start_time`` order; served by an
        index on the schedule id, not a scan."""

    @abstractmethod
    async def get_next_job_time(self) -> datetime | None:
        """The earliest moment a job may need ``acquire_jobs``, or ``None``.

        That is the earliest of: a pending job's ``start_time``, the first instant after
        a running job's lease (``acquired_until`` plus at most a second; the memory
        store uses 1 µs) and the first instant after a pending job's
        ``start_deadline``. A pending job held back by a running limit does not count
        with its ``start_time`` (it becomes acquirable when a running job ends, which
        publishes ``JobReleased``, or when a lease lapses, which is counted above), so a
        worker that sleeps until this time and finds nothing to acquire does not spin.
        """

    # ---- results and housekeeping -----------------------------------------------------

    @abstractmethod
    async def get_job_result(self, job_id: UUID) -> JobResult | None:
        """Return the job's result; ``None`` while the job exists but has not finished;
        ``JobLookupError`` when there is neither a job nor a result."""

    @abstractmethod
    async def cleanup(self, now: datetime) -> None:
        """Remove results whose ``expires_at <= now`` and other finished leftovers."""
