"""RedisDataStore: tasks, schedules, jobs and results in Redis, changed by Lua scripts.

The key layout and the scripts live in :mod:`horae.datastores._redis_scripts` and
:mod:`horae.datastores._redis_job_scripts`; records become hashes through
:mod:`horae.datastores._redis_codec`; :mod:`horae.datastores._redis_client` owns the
connection. Each method is one round trip: a script for every change (atomic, as Redis
runs a script without interleaving other commands), a MULTI pipeline for reads.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from logging import Logger
from typing import Any
from uuid import UUID, uuid4

import attrs
from redis.asyncio import Redis

from horae._clock import Clock
from horae._enums import ConflictPolicy, JobOutcome
from horae._exceptions import (
    ConflictingIdError,
    DeserializationError,
    JobLookupError,
    ScheduleLookupError,
    TaskLookupError,
)
from horae._structures import Job, JobResult, Schedule, Task
from horae.datastores._base import DataStore, ScheduleUpdate, StoreCapabilities
from horae.datastores._events import job_acquired_events
from horae.datastores._redis_client import RedisConnection
from horae.datastores._redis_codec import (
    Arg,
    Reply,
    flat_pairs,
    from_hash,
    job_args,
    opt_us,
    to_hash,
    us,
)
from horae.eventbrokers._base import EventBroker
from horae.events import (
    Event,
    JobAdded,
    JobCancellationRequested,
    JobReleased,
    ScheduleAdded,
    ScheduleDeserializationFailed,
    SchedulePaused,
    ScheduleRemoved,
    ScheduleUnpaused,
    ScheduleUpdated,
    TaskAdded,
    TaskRemoved,
    TaskUpdated,
)
from horae.serializers import Serializer
from horae.serializers._records import (
    JOB_FIELDS,
    JOB_RESULT_FIELDS,
    SCHEDULE_FIELDS,
    TASK_FIELDS,
    from_epoch_us,
    job_from_dict,
    job_result_from_dict,
    job_result_to_dict,
    schedule_from_dict,
    schedule_to_dict,
    task_from_dict,
    task_to_dict,
)

_CLEANUP_BATCH = 1000


def _opt_time(value: int | None) -> datetime | None:
    return None if value is None else from_epoch_us(value)


class RedisDataStore(RedisConnection, DataStore):
    """Keeps tasks, schedules, jobs and results in Redis (``redis[hiredis]``).

    Sorted sets index what the scheduler asks for (due schedules by next fire time,
    startable jobs by start time, leases by expiry, results by expiry) and Lua scripts
    make each change atomic, so any number of scheduler processes on any number of
    machines can share one Redis. ``acquire_schedules``, ``release_schedules`` and
    ``acquire_jobs`` are one script call per batch; running limits are checked inside
    the script; every fire time makes at most one job, guarded by a per-schedule
    watermark. Every time that a script compares comes from the caller's ``now``.

    A call that fails on a connection error is retried with back-off for up to a minute
    (the scripts are written so that repeating one cannot duplicate anything); then, or
    for any other Redis error, it raises :exc:`~horae.DataStoreError`.

    Args:
        url_or_client: a ``redis://``, ``rediss://`` or ``unix://`` URL (the store makes
            its own client and closes it in :meth:`stop`), or a ready
            ``redis.asyncio.Redis`` client (the caller owns and closes it; it must not
            use ``decode_responses=True``).
        prefix: every key starts with ``"<prefix>:"``, so several stores can share one
            database. Use ``"{name}"`` (with braces) to keep every key in one Redis
            Cluster slot.
        serializer: encodes job arguments, results and metadata
            (:class:`~horae.serializers.JSONSerializer` by default).

    Raises:
        ConfigurationError: for a URL of another scheme, an empty prefix, or a client
            that decodes responses.

    Example::

        store = RedisDataStore("redis://localhost:6379/0", prefix="myapp")
        async with AsyncScheduler(store) as scheduler:
            ...
    """

    def __init__(
        self,
        url_or_client: str | Redis,
        prefix: str = "horae",
        *,
        serializer: Serializer | None = None,
    ) -> None:
        super().__init__(url_or_client, prefix, serializer)

    @property
    def capabilities(self) -> StoreCapabilities:
        """Persistent and shared; exception objects are kept only with pickle."""
        return self._capabilities

    async def start(
        self, event_broker: EventBroker, logger: Logger, *, clock: Clock | None = None
    ) -> None:
        """Connect, record (or check) the schema version, and register the scripts.

        Raises:
            DataStoreError: when Redis cannot be reached (naming the host, within the
                5 second connect timeout) or refuses the credentials.
            SchemaVersionError: when the prefix was written by a newer horae.
        """
        await self._open(event_broker, logger, clock)

    async def stop(self) -> None:
        """Stop publishing and close the client if the store made it."""
        await self._close()

    # ---- tasks ------------------------------------------------------------------------

    async def add_task(self, task: Task) -> None:
        fields = to_hash(task_to_dict(task, self._serializer))
        limit = "" if task.max_running_jobs is None else str(task.max_running_jobs)
        existed = await self._eval("add_task", [task.id, limit, *flat_pairs(fields)])
        event_class = TaskUpdated if existed else TaskAdded
        await self._publish([event_class(timestamp=self._clock.now(), task_id=task.id)])

    async def remove_task(self, task_id: str) -> None:
        if not await self._eval("remove_task", [task_id]):
            raise TaskLookupError(task_id)
        await self._publish([TaskRemoved(timestamp=self._clock.now(), task_id=task_id)])

    async def get_task(self, task_id: str) -> Task:
        (raw,) = await self._pipeline("get_task", lambda p: p.hgetall(self._key("task", task_id)))
        if not raw:
            raise TaskLookupError(task_id)
        return task_from_dict(from_hash(raw, TASK_FIELDS), self._serializer)

    async def get_tasks(self) -> list[Task]:
        raws = await self._read_all("get_tasks", "tasks", "task")
        tasks = [task_from_dict(from_hash(raw, TASK_FIELDS), self._serializer) for raw in raws]
        return sorted(tasks, key=lambda task: task.id)

    # ---- schedules --------------------------------------------------------------------

    async def add_schedule(self, schedule: Schedule, conflict_policy: ConflictPolicy) -> bool:
        # A stored schedule starts unheld; replacing a held one fences its holder.
        schedule = attrs.evolve(schedule, acquired_by=None, acquired_until=None)
        fields = to_hash(schedule_to_dict(schedule, self._serializer))
        args = [uuid4().hex, schedule.id, ConflictPolicy(conflict_policy).value]
        outcome = await self._eval("add_schedule", [*args, *flat_pairs(fields)])
        if outcome == b"conflict":
            raise ConflictingIdError(schedule.id)
        if outcome == b"kept":
            return False
        event_class = ScheduleUpdated if outcome == b"replaced" else ScheduleAdded
        event = event_class(
            timestamp=self._clock.now(),
            schedule_id=schedule.id,
            task_id=schedule.task_id,
            next_fire_time=schedule.next_fire_time,
        )
        await self._publish([event])
        return True

    async def remove_schedules(self, ids: Iterable[str], *, finished: bool = False) -> None:
        unique = list(dict.fromkeys(ids))
        if not unique:
            self._started()
            return
        reply = Reply(await self._eval("remove_schedules", [uuid4().hex, *unique]))
        now = self._clock.now()
        events = []
        while reply:
            schedule_id, task_id = reply.text(), reply.text()
            events.append(
                ScheduleRemoved(
                    timestamp=now, schedule_id=schedule_id, task_id=task_id, finished=finished
                )
            )
        await self._publish(events)

    async def get_schedules(self, ids: Iterable[str] | None = None) -> list[Schedule]:
        if ids is None:
            raws = await self._read_all("get_schedules", "schedules", "schedule")
        else:
            raws = await self._read_hashes("get_schedules", "schedule", list(dict.fromkeys(ids)))
        events: list[Event] = []
        schedules = self._decode_schedules(raws, events, self._clock.now())
        await self._publish(events)
        return sorted(schedules, key=lambda schedule: schedule.id)

    def _decode_schedules(
        self, raws: Iterable[dict[bytes, bytes]], events: list[Event], now: datetime
    ) -> list[Schedule]:
        """Schedules from hashes; undecodable ones are left out and reported."""
        schedules = []
        for raw in raws:
            decoded = self._decode_schedule(raw)
            if isinstance(decoded, Schedule):
                schedules.append(decoded)
                continue
            schedule_id = raw.get(b"id", b"").decode(errors="replace")
            self._logger.error("cannot read the schedule %r: %s", schedule_id, decoded)
            events.append(
                ScheduleDeserializationFailed(
                    timestamp=now, schedule_id=schedule_id, exception=str(decoded)
                )
            )
        return schedules

    def _decode_schedule(self, raw: dict[bytes, bytes]) -> Schedule | DeserializationError:
        try:
            return schedule_from_dict(from_hash(raw, SCHEDULE_FIELDS), self._serializer)
        except DeserializationError as exc:
            return exc

    def _decode_job(self, raw: dict[bytes, bytes]) -> Job | DeserializationError:
        try:
            return job_from_dict(from_hash(raw, JOB_FIELDS), self._serializer)
        except DeserializationError as exc:
            return exc

    async def _set_paused(
        self, schedule_id: str, paused: bool, fields: dict[str, datetime | str | None]
    ) -> Schedule:
        present = {name: value for name, value in fields.items() if value is not None}
        encoded = {
            name: us(value) if isinstance(value, datetime) else value
            for name, value in present.items()
        }
        deleted = [name for name, value in fields.items() if value is None]
        args = [schedule_id, "1" if paused else "0", *flat_pairs(encoded)]
        raw = Reply(await self._eval("set_paused", [*args, str(len(deleted)), *deleted]))
        if not raw:
            raise ScheduleLookupError(schedule_id)
        return schedule_from_dict(from_hash(raw.rest(), SCHEDULE_FIELDS), self._serializer)

    async def pause_schedule(
        self, schedule_id: str, *, reason: str | None = None, until: datetime | None = None
    ) -> Schedule:
        fields = {"pause_reason": reason, "paused_until": until}
        schedule = await self._set_paused(schedule_id, True, fields)
        event = SchedulePaused(
            timestamp=self._clock.now(), schedule_id=schedule_id, reason=reason, paused_until=until
        )
        await self._publish([event])
        return schedule

    async def unpause_schedule(
        self, schedule_id: str, *, next_fire_time: datetime | None
    ) -> Schedule:
        fields: dict[str, datetime | str | None] = {"pause_reason": None, "paused_until": None}
        if next_fire_time is not None:
            fields["next_fire_time"] = next_fire_time
        schedule = await self._set_paused(schedule_id, False, fields)
        event = ScheduleUnpaused(
            timestamp=self._clock.now(),
            schedule_id=schedule_id,
            next_fire_time=schedule.next_fire_time,
        )
        await self._publish([event])
        return schedule

    async def acquire_schedules(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Schedule]:
        args = [scheduler_id, us(now), us(now + lease_duration), str(max(limit, 0))]
        reply = Reply(await self._eval("acquire_schedules", args))
        events: list[Event] = []
        for _ in range(reply.integer()):
            schedule_id, next_fire_time = reply.text(), reply.opt_integer()
            events.append(
                ScheduleUnpaused(
                    timestamp=now,
                    schedule_id=schedule_id,
                    next_fire_time=_opt_time(next_fire_time),
                )
            )
        schedules = self._decode_schedules(list(reply.hashes()), events, now)
        await self._publish(events)
        return schedules

    async def release_schedules(
        self, scheduler_id: str, updates: Sequence[ScheduleUpdate]
    ) -> list[Job]:
        # Everything is encoded before anything is sent: a payload that cannot be
        # serialized fails the call without changing the store.
        args: list[Arg] = [uuid4().hex, scheduler_id, str(len(updates))]
        jobs: dict[str, Job] = {}
        next_fire_times: dict[str, datetime | None] = {}
        for update in updates:
            args += (
                update.schedule_id,
                opt_us(update.next_fire_time),
                opt_us(update.last_fire_time),
                str(len(update.jobs)),
            )
            next_fire_times[update.schedule_id] = update.next_fire_time
            for job in update.jobs:
                args += job_args(job, self._serializer)
                jobs[str(job.id)] = attrs.evolve(
                    job, acquired_by=None, acquired_until=None, started_at=None
                )
        if not updates:
            self._started()
            return []
        reply = Reply(await self._eval("release_schedules", args))
        now = self._clock.now()
        created: list[Job] = []
        events: list[Event] = []
        while reply:
            schedule_id, task_id, advanced = reply.text(), reply.text(), reply.opt_integer()
            for _ in range(reply.integer()):
                job = jobs[reply.text()]
                created.append(job)
                events.append(self._job_added(job, now))
            if advanced is None:
                events.append(
                    ScheduleRemoved(
                        timestamp=now, schedule_id=schedule_id, task_id=task_id, finished=True
                    )
                )
            else:
                events.append(
                    ScheduleUpdated(
                        timestamp=now,
                        schedule_id=schedule_id,
                        task_id=task_id,
                        next_fire_time=next_fire_times[schedule_id],
                    )
                )
        await self._publish(events)
        return created

    async def get_next_schedule_time(self) -> datetime | None:
        return await self._earliest(
            "get_next_schedule_time",
            [("schedules:due", 0), ("schedules:paused", 0), ("schedules:leased", 1)],
        )

    async def _earliest(self, description: str, indexes: list[tuple[str, int]]) -> datetime | None:
        """The smallest score of these sorted sets, each plus its offset in microseconds.

        The offset of 1 µs on lease and deadline indexes gives the first instant at which
        the lease counts as lapsed (or the deadline as missed): waking at the boundary
        itself would find nothing to do, and spin.
        """

        def build(pipe: Any) -> None:
            for name, _ in indexes:
                pipe.zrange(self._key(name), 0, 0, withscores=True)

        tops = await self._pipeline(description, build)
        times = [
            int(top[0][1]) + offset for top, (_, offset) in zip(tops, indexes, strict=True) if top
        ]
        return from_epoch_us(min(times)) if times else None

    # ---- jobs -------------------------------------------------------------------------

    @staticmethod
    def _job_added(job: Job, now: datetime) -> JobAdded:
        return JobAdded(
            timestamp=now, job_id=job.id, task_id=job.task_id, schedule_id=job.schedule_id
        )

    async def add_jobs(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            self._started()
            return
        args: list[Arg] = [uuid4().hex, str(len(jobs))]
        by_id: dict[str, Job] = {}
        for job in jobs:
            args += job_args(job, self._serializer)
            by_id[str(job.id)] = attrs.evolve(
                job, acquired_by=None, acquired_until=None, started_at=None
            )
        inserted = await self._eval("add_jobs", args)
        now = self._clock.now()
        await self._publish([self._job_added(by_id[job_id.decode()], now) for job_id in inserted])

    async def get_jobs(self, ids: Iterable[UUID] | None = None) -> list[Job]:
        if ids is None:
            raws = await self._read_all("get_jobs", "jobs", "job")
        else:
            unique = list(dict.fromkeys(str(job_id) for job_id in ids))
            raws = await self._read_hashes("get_jobs", "job", unique)
        return self._sorted_jobs(raws)

    async def get_schedule_jobs(self, schedule_ids: Iterable[str]) -> list[Job]:
        keys = [self._key("jobs", "schedule", schedule_id) for schedule_id in set(schedule_ids)]
        if not keys:
            self._started()
            return []
        # the per-schedule sets of job ids are kept by the scripts that add and end jobs
        (members,) = await self._pipeline("get_schedule_jobs", lambda p: p.sunion(keys))
        ids = sorted(member.decode() for member in members)
        return self._sorted_jobs(await self._read_hashes("get_schedule_jobs", "job", ids))

    def _sorted_jobs(self, raws: Iterable[dict[bytes, bytes]]) -> list[Job]:
        """Jobs from hashes in ``start_time`` order; undecodable ones are logged."""
        decoded = []
        for raw in raws:
            job = self._decode_job(raw)
            if isinstance(job, Job):
                # ties in start_time keep insertion order, as acquisition does
                decoded.append((job.start_time, int(raw.get(b"seq", b"0")), job))
            else:
                self._logger.error("cannot read the job %r: %s", raw.get(b"id"), job)
        decoded.sort(key=lambda item: item[:2])
        return [job for _, _, job in decoded]

    async def acquire_jobs(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Job]:
        # the seed draws the jitter of abandoned jobs that are retried
        seed = str(random.randrange(2**31))  # noqa: S311 - jitter, not crypto
        args = [
            uuid4().hex,
            scheduler_id,
            us(now),
            us(now + lease_duration),
            str(max(limit, 0)),
            seed,
        ]
        reply = Reply(await self._eval("acquire_jobs", args))
        events: list[Event] = []
        for _ in range(reply.integer()):
            job_id, outcome, holder = reply.text(), reply.text(), reply.opt_text()
            task_id, schedule_id = reply.text(), reply.opt_text()
            fire_time, started_at = reply.opt_integer(), reply.opt_integer()
            attempt, retry_at = reply.integer(), reply.opt_integer()
            events.append(
                JobReleased(
                    timestamp=now,
                    job_id=UUID(job_id),
                    scheduler_id=holder,
                    task_id=task_id,
                    schedule_id=schedule_id,
                    outcome=JobOutcome(outcome),
                    scheduled_fire_time=_opt_time(fire_time),
                    started_at=_opt_time(started_at),
                    finished_at=now,
                    attempt=attempt,
                    retry_at=_opt_time(retry_at),
                )
            )
        acquired: list[Job] = []
        undecodable: list[tuple[dict[bytes, bytes], DeserializationError]] = []
        for raw in reply.hashes():
            job = self._decode_job(raw)
            if isinstance(job, Job):
                acquired.append(job)
            else:
                undecodable.append((raw, job))
        events += job_acquired_events(acquired, scheduler_id, now)
        await self._publish(events)
        for raw, error in undecodable:
            await self._end_undecodable(scheduler_id, raw, error, now)
        return acquired

    async def _end_undecodable(
        self, scheduler_id: str, raw: dict[bytes, bytes], exc: DeserializationError, now: datetime
    ) -> None:
        """End a job that this node acquired but cannot read, as ``deserialization_failed``
        (its id, task and times are plain fields, so they are still readable)."""
        self._logger.error("cannot read the job %r: %s", raw.get(b"id"), exc)
        fire_time = raw.get(b"scheduled_fire_time")
        schedule_id = raw.get(b"schedule_id")
        result = JobResult(
            job_id=UUID(raw[b"id"].decode()),
            task_id=raw[b"task_id"].decode(),
            schedule_id=None if schedule_id is None else schedule_id.decode(),
            scheduled_fire_time=None if fire_time is None else from_epoch_us(int(fire_time)),
            outcome=JobOutcome.deserialization_failed,
            started_at=now,
            finished_at=now,
            expires_at=now,
            attempt=int(raw.get(b"attempt", b"1")),
            exception_type=f"{DeserializationError.__module__}.DeserializationError",
            exception_message=str(exc),
        )
        await self.release_job(scheduler_id, result)

    async def extend_job_leases(
        self,
        scheduler_id: str,
        job_ids: Iterable[UUID],
        now: datetime,
        lease_duration: timedelta,
    ) -> set[UUID]:
        unique = list(dict.fromkeys(str(job_id) for job_id in job_ids))
        if not unique:
            self._started()
            return set()
        args = [scheduler_id, us(now + lease_duration), *unique]
        held = await self._eval("extend_job_leases", args)
        return {UUID(job_id.decode()) for job_id in held}

    async def release_job(
        self, scheduler_id: str, result: JobResult, *, retry_at: datetime | None = None
    ) -> bool:
        record = job_result_to_dict(result, self._serializer)
        record["expires_at"] = None  # the script sets it from the job's lifetime
        fields = to_hash(record)
        args = [
            uuid4().hex,
            scheduler_id,
            str(result.job_id),
            us(result.finished_at),
            opt_us(retry_at),
        ]
        reply = Reply(await self._eval("release_job", [*args, *flat_pairs(fields)]))
        if reply.integer() == 0:
            return False
        task_id, schedule_id = reply.text(), reply.opt_text()
        fire_time, started_at = reply.opt_integer(), reply.opt_integer()
        # None when the job was cancelled meanwhile (then it ended instead)
        retried_at = reply.opt_integer()
        if result.started_at is None and started_at is not None:
            result = attrs.evolve(result, started_at=from_epoch_us(started_at))
        event = JobReleased(
            timestamp=self._clock.now(),
            job_id=result.job_id,
            scheduler_id=scheduler_id,
            task_id=task_id,
            schedule_id=schedule_id,
            outcome=result.outcome,
            scheduled_fire_time=_opt_time(fire_time),
            started_at=result.started_at,
            finished_at=result.finished_at,
            exception_type=result.exception_type,
            exception_message=result.exception_message,
            attempt=result.attempt,
            retry_at=None if retried_at is None else retry_at,
        )
        await self._publish([event])
        return True

    async def cancel_job(self, job_id: UUID, now: datetime) -> Job | None:
        reply = Reply(await self._eval("cancel_job", [uuid4().hex, str(job_id), us(now)]))
        kind = reply.text()
        if kind == "none":
            return None
        event: Event
        if kind == "ended":
            holder, task_id, schedule_id = reply.opt_text(), reply.text(), reply.opt_text()
            fire_time, started_at = reply.opt_integer(), reply.opt_integer()
            event = JobReleased(
                timestamp=now,
                job_id=job_id,
                scheduler_id=holder,
                task_id=task_id,
                schedule_id=schedule_id,
                outcome=JobOutcome.cancelled,
                scheduled_fire_time=_opt_time(fire_time),
                started_at=_opt_time(started_at),
                finished_at=now,
                attempt=reply.integer(),
            )
        else:
            holder, task_id, schedule_id = reply.text(), reply.text(), reply.opt_text()
            event = JobCancellationRequested(
                timestamp=now,
                job_id=job_id,
                scheduler_id=holder,
                task_id=task_id,
                schedule_id=schedule_id,
            )
        await self._publish([event])
        job = self._decode_job(reply.rest())
        if isinstance(job, DeserializationError):
            raise job
        return job

    async def get_next_job_time(self) -> datetime | None:
        return await self._earliest(
            "get_next_job_time", [("jobs:ready", 0), ("jobs:leases", 1), ("jobs:deadlines", 1)]
        )

    # ---- results and housekeeping -----------------------------------------------------

    async def get_job_result(self, job_id: UUID) -> JobResult | None:
        def build(pipe: Any) -> None:
            pipe.exists(self._key("job", str(job_id)))
            pipe.hgetall(self._key("result", str(job_id)))

        exists, raw = await self._pipeline("get_job_result", build)
        if exists:
            return None
        if not raw:
            raise JobLookupError(job_id)
        return job_result_from_dict(from_hash(raw, JOB_RESULT_FIELDS), self._serializer)

    async def cleanup(self, now: datetime) -> None:
        # In batches, so that one script never blocks Redis for long.
        while await self._eval("cleanup", [us(now), str(_CLEANUP_BATCH)]) >= _CLEANUP_BATCH:
            pass
