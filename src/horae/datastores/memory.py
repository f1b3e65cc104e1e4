"""MemoryDataStore: the default store, in this process's memory."""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from logging import Logger
from uuid import UUID

import attrs

from horae._clock import Clock, SystemClock
from horae._enums import ConflictPolicy, JobOutcome
from horae._evolve import replace
from horae._exceptions import (
    ConflictingIdError,
    JobLookupError,
    ScheduleLookupError,
    TaskLookupError,
)
from horae._structures import Job, JobResult, Schedule, Task
from horae._wallclock import to_utc
from horae.datastores._base import DataStore, ScheduleUpdate, StoreCapabilities
from horae.datastores._events import ended_result, job_acquired_events, job_released
from horae.datastores._memory_jobs import JobQueue
from horae.datastores._memory_schedules import ScheduleIndex
from horae.eventbrokers._base import EventBroker
from horae.eventbrokers.local import LocalEventBroker, local_only
from horae.events import (
    Event,
    JobAcquired,
    JobAdded,
    JobCancellationRequested,
    JobReleased,
    ScheduleAdded,
    SchedulePaused,
    ScheduleRemoved,
    ScheduleUnpaused,
    ScheduleUpdated,
    TaskAdded,
    TaskRemoved,
    TaskUpdated,
)

_CAPABILITIES = StoreCapabilities(
    persistent=False, shared=False, requires_references=False, keeps_exception_objects=True
)


class MemoryDataStore(DataStore):
    """Keeps tasks, schedules, jobs and results in this process's memory.

    The default store: nothing to install, nothing survives the process, one process
    only (``persistent=False, shared=False``). Callables need not be importable and
    results keep the original exception objects. Data stays in the object across
    ``stop()``/``start()``.

    Every operation is atomic: it changes everything it changes without awaiting, then
    publishes its events. Due schedules and startable jobs are found through heaps, so
    ``acquire_schedules``/``acquire_jobs`` cost O(k log n) for k results and
    ``get_next_schedule_time``/``get_next_job_time`` O(1) amortized; nothing on those
    paths scans all schedules or jobs. A task at its ``max_running_jobs`` costs nothing
    per ``acquire_jobs`` and does not hold up other tasks. Each schedule keeps a
    watermark (the latest fire time that made a job), so no fire time makes a job
    twice, even after its job has finished.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._schedules = ScheduleIndex()
        self._jobs = JobQueue(self._task_limit)
        self._results: dict[UUID, JobResult] = {}
        self._result_expiry: list[tuple[datetime, UUID]] = []
        self._broker: EventBroker | None = None
        #: the broker when it only reaches this process's subscribers (see _wanted)
        self._local_broker: LocalEventBroker | None = None
        self._logger: Logger = logging.getLogger(__name__)
        self._clock: Clock = SystemClock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @property
    def capabilities(self) -> StoreCapabilities:
        """Not persistent, not shared, no references needed, exceptions kept."""
        return _CAPABILITIES

    # ---- life cycle -------------------------------------------------------------------

    async def start(
        self, event_broker: EventBroker, logger: Logger, *, clock: Clock | None = None
    ) -> None:
        """Remember the broker, the logger and the clock that stamps events."""
        self._broker = event_broker
        self._local_broker = local_only(event_broker)
        self._logger = logger
        self._clock = clock if clock is not None else SystemClock()

    async def stop(self) -> None:
        """Stop publishing; the data stays for a later :meth:`start`."""
        self._broker = None
        self._local_broker = None

    def _wanted(self, event_type: type[Event]) -> bool:
        # Events that no subscriber would get are not built when the broker reaches
        # this process only (a remote broker must get them all for other nodes).
        local = self._local_broker
        return local is None or local.has_subscribers(event_type)

    def _started(self) -> EventBroker:
        if self._broker is None:
            raise RuntimeError(
                "the MemoryDataStore is not started; call 'await store.start(broker, "
                "logger)' first (a scheduler does this when it starts)"
            )
        return self._broker

    async def _publish(self, broker: EventBroker, events: Iterable[Event]) -> None:
        local = self._local_broker
        if local is not None and local is broker:
            # LocalEventBroker.publish is exactly deliver(); calling it directly saves a
            # coroutine per event (delivery logs callback errors itself).
            for event in events:
                local.deliver(event)
            return
        for event in events:
            await self._publish_one(broker, event)

    async def _publish_one(self, broker: EventBroker, event: Event) -> None:
        # The change is already made; a broker failure must not make the caller believe
        # it was not (it would retry and, say, add a job twice). Nodes that miss the
        # event find the change by polling.
        try:
            await broker.publish(event)
        except Exception:
            self._logger.exception("could not publish %s", type(event).__name__)

    # ---- tasks ------------------------------------------------------------------------

    def _task_limit(self, task_id: str) -> int | None:
        task = self._tasks.get(task_id)
        return None if task is None else task.max_running_jobs

    async def add_task(self, task: Task) -> None:
        broker = self._started()
        old = self._tasks.get(task.id)
        self._tasks[task.id] = task
        if old is not None and old.max_running_jobs != task.max_running_jobs:
            self._jobs.task_limit_changed(task.id)
        event_class = TaskAdded if old is None else TaskUpdated
        await self._publish(broker, [event_class(timestamp=self._clock.now(), task_id=task.id)])

    async def remove_task(self, task_id: str) -> None:
        broker = self._started()
        if self._tasks.pop(task_id, None) is None:
            raise TaskLookupError(task_id)
        self._jobs.task_limit_changed(task_id)
        await self._publish(broker, [TaskRemoved(timestamp=self._clock.now(), task_id=task_id)])

    async def get_task(self, task_id: str) -> Task:
        self._started()
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskLookupError(task_id) from None

    async def get_tasks(self) -> list[Task]:
        self._started()
        return [self._tasks[task_id] for task_id in sorted(self._tasks)]

    # ---- schedules --------------------------------------------------------------------

    async def add_schedule(self, schedule: Schedule, conflict_policy: ConflictPolicy) -> bool:
        broker = self._started()
        exists = self._schedules.get(schedule.id) is not None
        if exists and conflict_policy is ConflictPolicy.exception:
            raise ConflictingIdError(schedule.id)
        if exists and conflict_policy is ConflictPolicy.do_nothing:
            return False
        # A stored schedule starts unheld; replacing a held one fences its holder.
        if schedule.acquired_by is not None or schedule.acquired_until is not None:
            schedule = replace(schedule, acquired_by=None, acquired_until=None)
        self._schedules.put(schedule)
        event_class = ScheduleUpdated if exists else ScheduleAdded
        event = event_class(
            timestamp=self._clock.now(),
            schedule_id=schedule.id,
            task_id=schedule.task_id,
            next_fire_time=schedule.next_fire_time,
        )
        await self._publish(broker, [event])
        return True

    async def remove_schedules(self, ids: Iterable[str], *, finished: bool = False) -> None:
        broker = self._started()
        removed = [
            schedule
            for schedule_id in dict.fromkeys(ids)
            if (schedule := self._schedules.remove(schedule_id)) is not None
        ]
        now = self._clock.now()
        events = [
            ScheduleRemoved(
                timestamp=now, schedule_id=schedule.id, task_id=schedule.task_id, finished=finished
            )
            for schedule in removed
        ]
        await self._publish(broker, events)

    async def get_schedules(self, ids: Iterable[str] | None = None) -> list[Schedule]:
        self._started()
        return self._schedules.get_many(ids)

    def _get_schedule(self, schedule_id: str) -> Schedule:
        schedule = self._schedules.get(schedule_id)
        if schedule is None:
            raise ScheduleLookupError(schedule_id)
        return schedule

    async def pause_schedule(
        self, schedule_id: str, *, reason: str | None = None, until: datetime | None = None
    ) -> Schedule:
        broker = self._started()
        schedule = attrs.evolve(
            self._get_schedule(schedule_id), paused=True, pause_reason=reason, paused_until=until
        )
        self._schedules.put(schedule)
        event = SchedulePaused(
            timestamp=self._clock.now(), schedule_id=schedule_id, reason=reason, paused_until=until
        )
        await self._publish(broker, [event])
        return schedule

    async def unpause_schedule(
        self, schedule_id: str, *, next_fire_time: datetime | None
    ) -> Schedule:
        broker = self._started()
        schedule = self._get_schedule(schedule_id)
        schedule = attrs.evolve(
            schedule,
            paused=False,
            pause_reason=None,
            paused_until=None,
            next_fire_time=schedule.next_fire_time if next_fire_time is None else next_fire_time,
        )
        self._schedules.put(schedule)
        event = ScheduleUnpaused(
            timestamp=self._clock.now(),
            schedule_id=schedule_id,
            next_fire_time=schedule.next_fire_time,
        )
        await self._publish(broker, [event])
        return schedule

    async def acquire_schedules(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Schedule]:
        broker = self._started()
        acquired, unpaused = self._schedules.acquire(scheduler_id, now, lease_duration, limit)
        events = [
            ScheduleUnpaused(
                timestamp=now, schedule_id=schedule.id, next_fire_time=schedule.next_fire_time
            )
            for schedule in unpaused
        ]
        await self._publish(broker, events)
        return acquired

    async def release_schedules(
        self, scheduler_id: str, updates: Sequence[ScheduleUpdate]
    ) -> list[Job]:
        broker = self._started()
        # Jobs and schedule advances happen in this one synchronous stretch, so no other
        # coroutine can see the schedule advanced without its jobs, or the reverse.
        created: list[Job] = []
        events: list[Event] = []
        now = self._clock.now()
        for released in self._schedules.release(scheduler_id, updates):
            for job in released.jobs:
                stored = self._jobs.add(job)
                if stored is not None:
                    created.append(stored)
                    events.append(self._job_added(stored, now))
            before, after = released.before, released.after
            if after is None:
                events.append(
                    ScheduleRemoved(
                        timestamp=now, schedule_id=before.id, task_id=before.task_id, finished=True
                    )
                )
            else:
                events.append(
                    ScheduleUpdated(
                        timestamp=now,
                        schedule_id=after.id,
                        task_id=after.task_id,
                        next_fire_time=after.next_fire_time,
                    )
                )
        await self._publish(broker, events)
        return created

    async def get_next_schedule_time(self) -> datetime | None:
        self._started()
        return self._schedules.next_time()

    # ---- jobs -------------------------------------------------------------------------

    @staticmethod
    def _job_added(job: Job, now: datetime) -> JobAdded:
        return JobAdded(
            timestamp=now, job_id=job.id, task_id=job.task_id, schedule_id=job.schedule_id
        )

    async def add_jobs(self, jobs: Sequence[Job]) -> None:
        broker = self._started()
        now = self._clock.now()
        added = [stored for job in jobs if (stored := self._jobs.add(job)) is not None]
        await self._publish(broker, [self._job_added(job, now) for job in added])

    async def get_jobs(self, ids: Iterable[UUID] | None = None) -> list[Job]:
        self._started()
        return self._jobs.get_many(ids)

    async def acquire_jobs(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Job]:
        broker = self._started()
        acquired, abandoned, missed = self._jobs.acquire(scheduler_id, now, lease_duration, limit)
        if not (acquired or abandoned or missed):
            return acquired  # nothing happened, nothing to publish (a frequent round)
        events: list[Event] = [self._end_abandoned(job, now) for job in abandoned]
        events += [
            self._end_job(job, JobOutcome.missed_start_deadline, now, None) for job in missed
        ]
        if self._wanted(JobAcquired):
            events += job_acquired_events(acquired, scheduler_id, now)
        await self._publish(broker, events)
        return acquired

    def _end_abandoned(self, job: Job, now: datetime) -> JobReleased:
        """End (or, by its retry policy, retry) a job whose lease lapsed."""
        if job.cancel_requested:
            return self._end_job(job, JobOutcome.cancelled, now, job.acquired_by)
        if job.retry is None or not job.retry.retries(job.attempt, None):
            return self._end_job(job, JobOutcome.abandoned, now, job.acquired_by)
        retry_at = now + job.retry.delay(job.attempt)
        self._jobs.add(job.for_retry(retry_at))
        result = ended_result(job, JobOutcome.abandoned, now)
        return job_released(job, result, job.acquired_by, now, retry_at)

    def _end_job(
        self, job: Job, outcome: JobOutcome, now: datetime, scheduler_id: str | None
    ) -> JobReleased:
        """Store the result of a job the store ended itself; return its event."""
        result = ended_result(job, outcome, now)
        self._keep_result(job, result)
        return job_released(job, result, scheduler_id, now)

    async def extend_job_leases(
        self,
        scheduler_id: str,
        job_ids: Iterable[UUID],
        now: datetime,
        lease_duration: timedelta,
    ) -> set[UUID]:
        self._started()
        return self._jobs.extend(scheduler_id, job_ids, now, lease_duration)

    async def release_job(
        self, scheduler_id: str, result: JobResult, *, retry_at: datetime | None = None
    ) -> bool:
        broker = self._started()
        job = self._jobs.release(scheduler_id, result.job_id)
        if job is None:
            return False
        if result.started_at is None:
            # the store knows when it handed the job out; keep that in the result
            result = attrs.evolve(result, started_at=job.started_at)
        if retry_at is not None and not job.cancel_requested:
            self._jobs.add(job.for_retry(retry_at))
        else:
            retry_at = None
            self._keep_result(job, result)
        event = job_released(job, result, scheduler_id, self._clock.now(), retry_at)
        await self._publish(broker, [event])
        return True

    async def cancel_job(self, job_id: UUID, now: datetime) -> Job | None:
        broker = self._started()
        job, removed = self._jobs.cancel(job_id, now)
        if job is None:
            return None
        event: Event
        if removed:
            event = self._end_job(job, JobOutcome.cancelled, now, job.acquired_by)
        else:
            assert job.acquired_by is not None
            event = JobCancellationRequested(
                timestamp=now,
                job_id=job.id,
                scheduler_id=job.acquired_by,
                task_id=job.task_id,
                schedule_id=job.schedule_id,
            )
        await self._publish(broker, [event])
        return job

    async def get_schedule_jobs(self, schedule_ids: Iterable[str]) -> list[Job]:
        self._started()
        return self._jobs.of_schedules(schedule_ids)

    def _keep_result(self, job: Job, result: JobResult) -> None:
        # Kept only with a positive expiration time; the store, not the caller, sets
        # expires_at so that every path (release, abandoned, missed) agrees.
        if job.result_expiration_time <= timedelta(0):
            return
        result = attrs.evolve(result, expires_at=result.finished_at + job.result_expiration_time)
        self._results[job.id] = result
        heapq.heappush(self._result_expiry, (to_utc(result.expires_at), job.id))

    async def get_next_job_time(self) -> datetime | None:
        self._started()
        return self._jobs.next_time()

    # ---- results and housekeeping -----------------------------------------------------

    async def get_job_result(self, job_id: UUID) -> JobResult | None:
        self._started()
        if self._jobs.get(job_id) is not None:
            return None
        try:
            return self._results[job_id]
        except KeyError:
            raise JobLookupError(job_id) from None

    async def cleanup(self, now: datetime) -> None:
        self._started()
        while self._result_expiry and self._result_expiry[0][0] <= now:
            expires_at, job_id = heapq.heappop(self._result_expiry)
            result = self._results.get(job_id)
            # a job id reused after its first result was stored has a newer entry
            if result is not None and result.expires_at == expires_at:
                del self._results[job_id]
