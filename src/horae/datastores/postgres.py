"""PostgresDataStore: a store that many scheduler processes on many hosts share.

The statements are in :mod:`._postgres_queries`, the tables in :mod:`._postgres_schema`,
connecting and error translation in :mod:`._postgres_connection`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from logging import Logger
from typing import Any, TypeVar
from uuid import UUID

import asyncpg  # type: ignore[import-untyped]
import attrs

from horae._clock import Clock, SystemClock
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
from horae.datastores._postgres_connection import (
    DsnInfo,
    Operation,
    PoolRunner,
    create_or_check_schema,
    describe_dsn,
    is_transient,
    open_pool,
)
from horae.datastores._postgres_queries import Queries
from horae.datastores._postgres_schema import (
    ended_result,
    quote_schema,
    released_event,
    settle_acquired,
    to_columns,
    to_record,
    to_values,
)
from horae.datastores._retry import Retrier
from horae.eventbrokers._base import EventBroker
from horae.eventbrokers._batching import Coalescer, CommittedEvents
from horae.events import (
    Event,
    JobAdded,
    JobCancellationRequested,
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
from horae.serializers._base import Serializer
from horae.serializers._records import (
    JOB_FIELDS,
    JOB_RESULT_FIELDS,
    SCHEDULE_FIELDS,
    TASK_FIELDS,
    job_from_dict,
    job_result_from_dict,
    job_result_to_dict,
    job_to_dict,
    schedule_from_dict,
    schedule_to_dict,
    task_from_dict,
    task_to_dict,
)
from horae.serializers.json import JSONSerializer
from horae.serializers.pickle import PickleSerializer

_T = TypeVar("_T")

#: The result fields that release_job sends (the store sets expires_at itself).
_RELEASE_FIELDS = {name: kind for name, kind in JOB_RESULT_FIELDS.items() if name != "expires_at"}


@attrs.frozen
class _Release:
    """One release_job call waiting for its batch."""

    scheduler_id: str
    result: JobResult
    values: list[Any]


class PostgresDataStore(DataStore):
    """Keeps tasks, schedules, jobs and results in PostgreSQL, shared by any number of
    scheduler processes on any number of hosts.

    Each batch operation is one statement: ``acquire_schedules`` selects due schedules
    ``FOR UPDATE SKIP LOCKED`` and leases them in the same statement, so concurrent
    nodes never wait for each other and never get the same schedule; ``release_schedules``
    inserts every job and advances every schedule of a batch at once, fenced by
    ``acquired_by``; ``acquire_jobs`` ends lapsed and late jobs, counts the running
    jobs of each task and schedule from live leases and takes jobs under their limits
    with window functions, in a transaction behind an advisory lock so that the limits
    hold across nodes (three round trips: ``BEGIN`` with the lock, the statement,
    ``COMMIT``). Each fire time of a schedule makes one job, ever: a
    ``(schedule_id, fire_time)`` key in a table of its own outlives the job (see
    :mod:`horae.datastores._postgres_schema`). Times always come from the caller's
    ``now``, never from the database server's clock.

    Everything lives in one PostgreSQL schema, created on the first :meth:`start` with
    a recorded version. Lost connections and server restarts are retried with back-off
    (for up to a minute); every operation can be repeated safely after a connection
    died before its outcome was known.

    Args:
        dsn_or_pool: a ``postgresql://user:password@host:port/database`` DSN (the store
            opens and closes its own pool, whose connections identify themselves as
            ``application_name=horae`` unless the DSN sets another), or an
            ``asyncpg.Pool`` that the caller owns (never closed by the store).
        schema: the PostgreSQL schema that holds the store's tables.
        serializer: encodes job arguments, results and metadata (default
            :class:`~horae.serializers.JSONSerializer`).
        connect_timeout: seconds to wait for the server when connecting.
        fire_guard_retention: how long the exact ``(schedule_id, fire_time)`` keys are
            kept; older ones are folded by :meth:`cleanup` into a per-schedule floor
            below which no fire time makes a job again.

    Raises:
        ConfigurationError: for a DSN that is not a PostgreSQL URL or an unusable schema
            name.
        ValueError: for a connect timeout that is not positive or a negative retention.
    """

    def __init__(
        self,
        dsn_or_pool: str | asyncpg.Pool,
        schema: str = "horae",
        *,
        serializer: Serializer | None = None,
        connect_timeout: float = 10.0,
        fire_guard_retention: timedelta = timedelta(days=1),
    ) -> None:
        self._dsn: DsnInfo | None = None
        self._user_pool: asyncpg.Pool | None = None
        if isinstance(dsn_or_pool, asyncpg.Pool):
            self._user_pool = dsn_or_pool
        else:
            self._dsn = describe_dsn(dsn_or_pool)
            self._dsn_text: str = dsn_or_pool
        if not connect_timeout > 0:
            raise ValueError(f"connect_timeout must be positive, not {connect_timeout!r}")
        if fire_guard_retention < timedelta(0):
            raise ValueError(
                f"fire_guard_retention must not be negative, not {fire_guard_retention!r}"
            )
        self._schema = schema
        self._queries = Queries(quote_schema(schema))
        self._connect_timeout = float(connect_timeout)
        self._retention = fire_guard_retention
        self._serializer = serializer if serializer is not None else JSONSerializer()
        self._capabilities = StoreCapabilities(
            persistent=True,
            shared=True,
            requires_references=True,
            keeps_exception_objects=isinstance(self._serializer, PickleSerializer),
        )
        self._pool: asyncpg.Pool | None = None
        self._runner: PoolRunner | None = None
        self._broker: EventBroker | None = None
        self._logger: Logger = logging.getLogger(__name__)
        self._clock: Clock = SystemClock()
        self._retrier = Retrier(is_transient=is_transient, store_name="PostgreSQL")
        self._events = CommittedEvents()
        self._releases: Coalescer[_Release, bool] = Coalescer(
            self._release_jobs, key=lambda release: release.result.job_id
        )

    def __repr__(self) -> str:
        target = "<pool>" if self._dsn is None else repr(self._dsn.masked)
        return f"{type(self).__name__}({target}, schema={self._schema!r})"

    @property
    def capabilities(self) -> StoreCapabilities:
        """Persistent, shared across hosts, references required."""
        return self._capabilities

    # ---- life cycle -------------------------------------------------------------------

    async def start(
        self, event_broker: EventBroker, logger: Logger, *, clock: Clock | None = None
    ) -> None:
        """Connect, and create the schema and its tables or check their version.

        Raises:
            DataStoreError: when the server cannot be reached (naming its host and port,
                within about ``connect_timeout``) or refuses the credentials.
            SchemaVersionError: when a newer horae created the schema.
        """
        self._logger = logger
        self._clock = clock if clock is not None else SystemClock()
        self._retrier = Retrier(is_transient=is_transient, store_name="PostgreSQL", logger=logger)
        if self._pool is None:
            if self._dsn is None:
                pool = self._user_pool
            else:
                pool = await open_pool(self._dsn_text, self._dsn, self._connect_timeout)
            assert pool is not None
            try:
                await self._retrier.run("start", lambda: self._create_schema(pool))
            except BaseException:
                if self._dsn is not None:
                    await pool.close()
                raise
            self._pool = pool
        self._runner = PoolRunner(self._pool, self._retrier, logger)
        self._broker = event_broker

    async def _create_schema(self, pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            await create_or_check_schema(conn, self._schema, quote_schema(self._schema))

    async def stop(self) -> None:
        """Close the pool if the store opened it; :meth:`start` may open a new one."""
        pool, self._pool = self._pool, None
        self._runner = None
        self._broker = None
        if pool is not None and self._dsn is not None:
            await pool.close()

    def _started(self) -> PoolRunner:
        if self._runner is None or self._broker is None:
            raise RuntimeError(
                "the PostgresDataStore is not started; call 'await store.start(broker, "
                "logger)' first (a scheduler does this when it starts)"
            )
        return self._runner

    async def _run(self, description: str, operation: Operation[_T]) -> _T:
        return await self._started().run(description, operation)

    async def _fetch(self, description: str, query: str, *args: Any) -> list[Any]:
        return await self._started().fetch(description, query, *args)

    async def _publish(self, events: Iterable[Event]) -> None:
        # the events of operations that finish together go out together, never raising
        await self._events.publish(self._broker, events, self._logger)

    # ---- conversions ------------------------------------------------------------------

    def _load_schedules(self, rows: Sequence[Any], now: datetime) -> list[Schedule | Event]:
        """Decode schedule rows; an undecodable one becomes a failure event instead."""
        return [self._load_schedule(row, now) for row in rows]

    def _load_schedule(self, row: Any, now: datetime) -> Schedule | Event:
        try:
            return schedule_from_dict(to_record(row), self._serializer)
        except DeserializationError as exc:
            self._logger.error("cannot load the stored schedule %r: %s", row["id"], exc)
            return ScheduleDeserializationFailed(
                timestamp=now, schedule_id=row["id"], exception=str(exc)
            )

    def _job_values(self, job: Job) -> list[Any]:
        # A stored job starts pending; the lease fields are only ever set by acquire_jobs.
        pending = attrs.evolve(job, acquired_by=None, acquired_until=None, started_at=None)
        return to_values(job_to_dict(pending, self._serializer), JOB_FIELDS)

    def _job_columns(self, jobs: Sequence[Job]) -> list[list[Any]]:
        return to_columns([self._job_values(job) for job in jobs], len(JOB_FIELDS))

    # ---- tasks ------------------------------------------------------------------------

    async def add_task(self, task: Task) -> None:
        values = to_values(task_to_dict(task, self._serializer), TASK_FIELDS)
        [row] = await self._fetch("add_task", self._queries.put_task, *values)
        event_class = TaskAdded if row["inserted"] else TaskUpdated
        await self._publish([event_class(timestamp=self._clock.now(), task_id=task.id)])

    async def remove_task(self, task_id: str) -> None:
        if not await self._fetch("remove_task", self._queries.delete_task, task_id):
            raise TaskLookupError(task_id)
        await self._publish([TaskRemoved(timestamp=self._clock.now(), task_id=task_id)])

    async def get_task(self, task_id: str) -> Task:
        rows = await self._fetch("get_task", self._queries.select_task, task_id)
        if not rows:
            raise TaskLookupError(task_id)
        return task_from_dict(to_record(rows[0]), self._serializer)

    async def get_tasks(self) -> list[Task]:
        rows = await self._fetch("get_tasks", self._queries.select_tasks)
        return [task_from_dict(to_record(row), self._serializer) for row in rows]

    # ---- schedules --------------------------------------------------------------------

    async def add_schedule(self, schedule: Schedule, conflict_policy: ConflictPolicy) -> bool:
        # A stored schedule starts unheld; replacing a held one fences its holder.
        schedule = attrs.evolve(schedule, acquired_by=None, acquired_until=None)
        values = to_values(schedule_to_dict(schedule, self._serializer), SCHEDULE_FIELDS)
        policy = ConflictPolicy(conflict_policy)
        queries = self._queries

        async def operation(conn: Any, retrying: bool) -> str:
            if policy is ConflictPolicy.replace:
                inserted = await conn.fetchval(queries.replace_schedule, *values)
                return "added" if inserted else "updated"
            if await conn.fetchval(queries.insert_schedule, *values):
                return "added"
            # After a lost connection the row we find may be our own earlier attempt,
            # committed just before the connection died: an identical row is ours.
            if retrying and await conn.fetchval(queries.same_schedule, *values):
                return "added"
            return "kept"

        outcome = await self._run("add_schedule", operation)
        if outcome == "kept":
            if policy is ConflictPolicy.exception:
                raise ConflictingIdError(schedule.id)
            return False
        event_class = ScheduleAdded if outcome == "added" else ScheduleUpdated
        event = event_class(
            timestamp=self._clock.now(),
            schedule_id=schedule.id,
            task_id=schedule.task_id,
            next_fire_time=schedule.next_fire_time,
        )
        await self._publish([event])
        return True

    async def remove_schedules(self, ids: Iterable[str], *, finished: bool = False) -> None:
        wanted = list(dict.fromkeys(ids))
        rows = await self._fetch("remove_schedules", self._queries.delete_schedules, wanted)
        now = self._clock.now()
        await self._publish(
            ScheduleRemoved(
                timestamp=now, schedule_id=row["id"], task_id=row["task_id"], finished=finished
            )
            for row in rows
        )

    async def get_schedules(self, ids: Iterable[str] | None = None) -> list[Schedule]:
        if ids is None:
            rows = await self._fetch("get_schedules", self._queries.select_schedules)
        else:
            wanted = list(dict.fromkeys(ids))
            query = self._queries.select_schedules_by_id
            rows = await self._fetch("get_schedules", query, wanted)
        loaded = self._load_schedules(rows, self._clock.now())
        await self._publish(item for item in loaded if isinstance(item, Event))
        return [item for item in loaded if isinstance(item, Schedule)]

    async def pause_schedule(
        self, schedule_id: str, *, reason: str | None = None, until: datetime | None = None
    ) -> Schedule:
        query = self._queries.pause_schedule
        rows = await self._fetch("pause_schedule", query, schedule_id, reason, until)
        if not rows:
            raise ScheduleLookupError(schedule_id)
        event = SchedulePaused(
            timestamp=self._clock.now(), schedule_id=schedule_id, reason=reason, paused_until=until
        )
        await self._publish([event])
        return schedule_from_dict(to_record(rows[0]), self._serializer)

    async def unpause_schedule(
        self, schedule_id: str, *, next_fire_time: datetime | None
    ) -> Schedule:
        query = self._queries.unpause_schedule
        rows = await self._fetch("unpause_schedule", query, schedule_id, next_fire_time)
        if not rows:
            raise ScheduleLookupError(schedule_id)
        schedule = schedule_from_dict(to_record(rows[0]), self._serializer)
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
        # One statement. Repeating it after a lost connection is safe: schedules that a
        # lost attempt leased are held by scheduler_id, and the holder may take them again.
        rows = await self._fetch(
            "acquire_schedules",
            self._queries.acquire_schedules,
            scheduler_id,
            now,
            now + lease_duration,
            limit,
        )
        events: list[Event] = [
            ScheduleUnpaused(
                timestamp=now, schedule_id=row["id"], next_fire_time=row["next_fire_time"]
            )
            for row in rows
            if row["was_paused"]
        ]
        loaded = self._load_schedules([row for row in rows if row["acquired"]], now)
        await self._publish(events + [item for item in loaded if isinstance(item, Event)])
        acquired = [item for item in loaded if isinstance(item, Schedule)]
        return sorted(acquired, key=lambda schedule: (schedule.next_fire_time, schedule.id))

    async def release_schedules(
        self, scheduler_id: str, updates: Sequence[ScheduleUpdate]
    ) -> list[Job]:
        if not updates:
            return []
        jobs = [job for update in updates for job in update.jobs]
        [row] = await self._fetch(
            "release_schedules",
            self._queries.release_schedules,
            scheduler_id,
            [update.schedule_id for update in updates],
            [update.next_fire_time for update in updates],
            [update.last_fire_time for update in updates],
            *self._job_columns(jobs),
        )
        created_ids = {UUID(str(job_id)) for job_id in row["created"]}
        created = [job for job in jobs if job.id in created_ids]
        now = self._clock.now()
        events: list[Event] = [
            JobAdded(
                timestamp=now, job_id=job.id, task_id=job.task_id, schedule_id=job.schedule_id
            )
            for job in created
        ]
        events += [
            ScheduleUpdated(timestamp=now, schedule_id=id_, task_id=task_id, next_fire_time=time)
            for id_, task_id, time in zip(
                row["advanced_ids"], row["advanced_tasks"], row["advanced_times"], strict=True
            )
        ]
        events += [
            ScheduleRemoved(timestamp=now, schedule_id=id_, task_id=task_id, finished=True)
            for id_, task_id in zip(row["finished_ids"], row["finished_tasks"], strict=True)
        ]
        await self._publish(events)
        return created

    async def get_next_schedule_time(self) -> datetime | None:
        [row] = await self._fetch("get_next_schedule_time", self._queries.next_schedule_time)
        next_time: datetime | None = row[0]
        return next_time

    # ---- jobs -------------------------------------------------------------------------

    async def add_jobs(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        rows = await self._fetch("add_jobs", self._queries.insert_jobs, *self._job_columns(jobs))
        now = self._clock.now()
        await self._publish(
            JobAdded(
                timestamp=now,
                job_id=UUID(str(row["id"])),
                task_id=row["task_id"],
                schedule_id=row["schedule_id"],
            )
            for row in rows
        )

    async def get_jobs(self, ids: Iterable[UUID] | None = None) -> list[Job]:
        if ids is None:
            rows = await self._fetch("get_jobs", self._queries.select_jobs)
        else:
            wanted = list(dict.fromkeys(ids))
            rows = await self._fetch("get_jobs", self._queries.select_jobs_by_id, wanted)
        return [job_from_dict(to_record(row), self._serializer) for row in rows]

    async def acquire_jobs(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Job]:
        queries = self._queries
        lease_until = now + lease_duration

        async def operation(conn: Any, retrying: bool) -> tuple[list[Job], list[Event]]:
            # The running counts that the limits compare against are read from the
            # statement's snapshot. Two nodes acquiring at once would both count the same
            # running jobs and could together exceed a limit (write skew), so acquisitions
            # take turns on an advisory lock. The lock is taken by an earlier statement
            # than the one that counts (sent with BEGIN, in the same round trip), so each
            # count sees every acquisition committed before it; the lock goes with the
            # transaction. The counting statement is short, so the turns are too.
            await conn.execute(queries.begin_acquire_jobs)
            try:
                rows = await conn.fetch(
                    queries.acquire_jobs, scheduler_id, now, lease_until, limit, retrying
                )
                # a leased job that cannot be decoded ends as deserialization_failed
                # in this same transaction: no worker ever holds a job it cannot run
                settled = settle_acquired(rows, self._serializer, scheduler_id, now, self._logger)
                if settled.failed_ids:
                    await conn.execute(
                        queries.end_jobs, settled.failed_ids, *settled.failed_results
                    )
                await conn.execute("COMMIT")
            except BaseException:
                if not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                raise
            return settled.acquired, settled.events

        acquired, events = await self._run("acquire_jobs", operation)
        events += job_acquired_events(acquired, scheduler_id, now)
        await self._publish(events)
        return acquired

    async def extend_job_leases(
        self,
        scheduler_id: str,
        job_ids: Iterable[UUID],
        now: datetime,
        lease_duration: timedelta,
    ) -> set[UUID]:
        wanted = list(dict.fromkeys(job_ids))
        query = self._queries.extend_leases
        rows = await self._fetch(
            "extend_job_leases", query, scheduler_id, wanted, now + lease_duration
        )
        return {UUID(str(row["id"])) for row in rows}

    async def release_job(
        self, scheduler_id: str, result: JobResult, *, retry_at: datetime | None = None
    ) -> bool:
        # Jobs that finish at about the same time are released together: one statement,
        # one commit and one message on the broker for all of them (see _release_jobs).
        record = job_result_to_dict(result, self._serializer)
        del record["expires_at"]  # the store sets it from the job's expiration time
        values = to_values(record, _RELEASE_FIELDS)
        self._started()
        if retry_at is not None:
            return await self._release_for_retry(scheduler_id, result, values, retry_at)
        return await self._releases.submit(_Release(scheduler_id, result, values))

    async def _release_for_retry(
        self, scheduler_id: str, result: JobResult, values: list[Any], retry_at: datetime
    ) -> bool:
        # A retried attempt (rare next to plain releases) takes a statement of its own:
        # the job becomes pending again as its next attempt, or, if its cancellation was
        # requested, ends with the result (see _release_job_retry).
        queries = self._queries

        async def operation(conn: Any, retrying: bool) -> Any:
            row = await conn.fetchrow(queries.release_job_retry, scheduler_id, *values, retry_at)
            if row is None and retrying:
                # The job is no longer held. If an earlier attempt of this very call
                # changed it (its commit was acknowledged to a connection that then
                # died), the next attempt it made or the result it stored is ours.
                row = await conn.fetchrow(
                    queries.select_own_retry, result.job_id, result.attempt, retry_at
                )
                if row is None:
                    own = await conn.fetch(
                        queries.select_own_results,
                        [result.job_id],
                        [result.outcome.value],
                        [result.finished_at],
                    )
                    row = {**dict(own[0].items()), "retried": False} if own else None
            return row

        row = await self._run("release_job", operation)
        if row is None:
            return False
        final = attrs.evolve(
            result,
            started_at=result.started_at or row["started_at"],
            expires_at=result.finished_at + row["expiration"],
        )
        event = released_event(
            row, final, scheduler_id, retry_at=retry_at if row["retried"] else None
        )
        await self._publish([attrs.evolve(event, timestamp=self._clock.now())])
        return True

    async def cancel_job(self, job_id: UUID, now: datetime) -> Job | None:
        # One statement; it locks the job's row, so it is atomic against acquire_jobs
        # and release_job (see _cancel_job). Repeating it after a lost connection is
        # safe: a job that an earlier attempt ended is gone (None), and a cancellation
        # request is asked again.
        rows = await self._fetch("cancel_job", self._queries.cancel_job, job_id, now)
        if not rows:
            return None
        [row] = rows
        event: Event
        if row["ended"]:
            result = ended_result(row, JobOutcome.cancelled, now)
            event = released_event(row, result, row["acquired_by"])
        else:
            event = JobCancellationRequested(
                timestamp=now,
                job_id=job_id,
                scheduler_id=row["acquired_by"],
                task_id=row["task_id"],
                schedule_id=row["schedule_id"],
            )
        await self._publish([event])
        return job_from_dict(to_record(row), self._serializer)

    async def get_schedule_jobs(self, schedule_ids: Iterable[str]) -> list[Job]:
        wanted = list(dict.fromkeys(schedule_ids))
        if not wanted:
            self._started()
            return []
        query = self._queries.select_schedule_jobs
        rows = await self._fetch("get_schedule_jobs", query, wanted)
        return [job_from_dict(to_record(row), self._serializer) for row in rows]

    async def _release_jobs(self, releases: Sequence[_Release]) -> list[bool]:
        queries = self._queries
        columns = to_columns(
            [[release.scheduler_id, *release.values] for release in releases],
            len(_RELEASE_FIELDS) + 1,
        )

        async def operation(conn: Any, retrying: bool) -> dict[str, Any]:
            fetched = await conn.fetch(queries.release_jobs, *columns)
            rows = {str(row["id"]): row for row in fetched}
            missing = [r.result for r in releases if str(r.result.job_id) not in rows]
            if missing and retrying:
                # Jobs that are gone. If an earlier attempt of this very call deleted
                # them (its commit was acknowledged to a connection that then died), the
                # results it stored are ours: same job, outcome and finish time.
                own = await conn.fetch(
                    queries.select_own_results,
                    [result.job_id for result in missing],
                    [result.outcome.value for result in missing],
                    [result.finished_at for result in missing],
                )
                rows.update((str(row["id"]), row) for row in own)
            return rows

        rows = await self._run("release_job", operation)
        now = self._clock.now()
        events: list[Event] = []
        released = []
        for release in releases:
            row = rows.get(str(release.result.job_id))
            released.append(row is not None)
            if row is not None:
                result = release.result
                final = attrs.evolve(
                    result,
                    started_at=result.started_at or row["started_at"],
                    expires_at=result.finished_at + row["expiration"],
                )
                events.append(
                    attrs.evolve(released_event(row, final, release.scheduler_id), timestamp=now)
                )
        await self._publish(events)
        return released

    async def get_next_job_time(self) -> datetime | None:
        [row] = await self._fetch("get_next_job_time", self._queries.next_job_time)
        next_time: datetime | None = row[0]
        return next_time

    # ---- results and housekeeping -----------------------------------------------------

    async def get_job_result(self, job_id: UUID) -> JobResult | None:
        [row] = await self._fetch("get_job_result", self._queries.select_result, job_id)
        if row["job_exists"]:
            return None
        if row["job_id"] is None:
            raise JobLookupError(job_id)
        return job_result_from_dict(to_record(row), self._serializer)

    async def cleanup(self, now: datetime) -> None:
        """Remove expired results, and fold fire-time keys older than the retention into
        their schedules' floors."""
        queries = self._queries

        async def operation(conn: Any, retrying: bool) -> None:
            await conn.execute(queries.delete_expired_results, now)
            await conn.execute(queries.prune_fires, now - self._retention)

        await self._run("cleanup", operation)
