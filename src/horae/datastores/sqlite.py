"""SQLiteDataStore: embedded persistence for one host, on the standard library's sqlite3.

The store owns one connection and one thread: every statement runs on that thread (so
the event loop never blocks on SQLite), one operation at a time. The connection and
its thread are in :mod:`._sqlite_connection`, the transactions in :mod:`._sqlite_ops`,
the schema in :mod:`._sqlite_schema`; this module turns objects into rows and back and
publishes the events.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from logging import Logger
from typing import Any, Literal, TypeVar
from uuid import UUID

import attrs

from horae._clock import Clock, SystemClock
from horae._enums import ConflictPolicy, JobOutcome
from horae._exceptions import (
    DeserializationError,
    JobLookupError,
    ScheduleLookupError,
    TaskLookupError,
)
from horae._structures import Job, JobResult, RetryPolicy, Schedule, Task
from horae.datastores import _sqlite_ops as ops
from horae.datastores._base import DataStore, ScheduleUpdate, StoreCapabilities
from horae.datastores._events import job_acquired_events
from horae.datastores._retry import Retrier
from horae.datastores._sqlite_connection import SQLiteThread, database_path, is_transient
from horae.datastores._sqlite_schema import to_row
from horae.eventbrokers._base import EventBroker
from horae.eventbrokers._batching import CommittedEvents
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
from horae.serializers._base import Serializer
from horae.serializers._jsoncodec import (
    _EncodeError,
    encode_zone,
    retry_policy_from_state,
    seconds_to_duration,
)
from horae.serializers._records import (
    TIME_ZONES,
    from_epoch_us,
    job_from_dict,
    job_result_from_dict,
    job_result_to_dict,
    job_to_dict,
    schedule_from_dict,
    schedule_to_dict,
    task_from_dict,
    task_to_dict,
    to_epoch_us,
)
from horae.serializers.json import JSONSerializer
from horae.serializers.pickle import PickleSerializer

_T = TypeVar("_T")
Row = dict[str, Any]


def _us(value: datetime | None) -> int | None:
    return None if value is None else to_epoch_us(value)


def _time(value: int | None) -> datetime | None:
    return None if value is None else from_epoch_us(value)


class SQLiteDataStore(DataStore):
    """Keeps tasks, schedules, jobs and results in a SQLite file: zero servers.

    The embedded default for persistence on one host. Several processes on that host
    may share the file (``shared=True``): every write is a ``BEGIN IMMEDIATE``
    transaction, which takes SQLite's write lock first, so two processes never acquire
    the same schedule or job. The file is in WAL mode (readers never wait for the
    writer). Not for network file systems, whose locking SQLite cannot rely on; use
    PostgreSQL for several hosts.

    All SQLite work runs on one thread per store instance, never on the event loop. A
    lock held by another process is waited for (``busy_timeout``), then retried with
    back-off for up to a minute before :exc:`~horae.DataStoreError` is raised.

    Args:
        path: the database file (created on :meth:`start` if missing), relative to the
            working directory, or a ``sqlite:///relative.db`` / ``sqlite:////abs.db``
            URL. ``":memory:"`` is refused: an in-memory database would be private to
            the store's one connection; use :class:`~horae.datastores.MemoryDataStore`.
        serializer: encodes job arguments, results and metadata (default
            :class:`~horae.serializers.JSONSerializer`).
        busy_timeout: how long one statement waits for another connection's lock
            before the store backs off and retries it (seconds or a ``timedelta``).
        synchronous: ``"FULL"`` (the default): every acknowledged change survives a
            power cut, at the price of a flush to disk per write transaction.
            ``"NORMAL"``: flushes only at WAL checkpoints, so writes are cheaper (about
            1.5x the jobs per second in the burst benchmark); a crash of the process
            loses nothing and the database stays consistent, but a power cut or OS
            crash may lose the last transactions acknowledged before it (schedules
            added, fires recorded: a lost fire record can make that fire run again
            after a restart). SQLite's ``PRAGMA synchronous`` in WAL mode.

    Raises:
        ConfigurationError: for an in-memory database or a malformed URL.
        ValueError: for a busy timeout that is not positive, or another ``synchronous``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "horae.sqlite3",
        *,
        serializer: Serializer | None = None,
        busy_timeout: float | timedelta = 5.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        self._database = database_path(path)
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}")
        self._synchronous: str = synchronous
        if isinstance(busy_timeout, timedelta):
            busy_timeout = busy_timeout.total_seconds()
        if not busy_timeout > 0:
            raise ValueError(f"busy_timeout must be positive, not {busy_timeout!r}")
        self._busy_timeout = float(busy_timeout)
        self._serializer = serializer if serializer is not None else JSONSerializer()
        self._capabilities = StoreCapabilities(
            persistent=True,
            shared=True,
            requires_references=True,
            keeps_exception_objects=isinstance(self._serializer, PickleSerializer),
        )
        self._thread: SQLiteThread | None = None
        self._broker: EventBroker | None = None
        self._events = CommittedEvents()
        self._logger: Logger = logging.getLogger(__name__)
        self._clock: Clock = SystemClock()
        self._retrier = Retrier(is_transient=is_transient, store_name="SQLite")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._database!r}, serializer={self._serializer!r})"

    @property
    def capabilities(self) -> StoreCapabilities:
        """Persistent, shared between processes on one host, references required."""
        return self._capabilities

    # ---- life cycle -------------------------------------------------------------------

    async def start(
        self, event_broker: EventBroker, logger: Logger, *, clock: Clock | None = None
    ) -> None:
        """Open the file (creating it and the schema on first use) on the store's thread.

        Raises:
            DataStoreError: when the file cannot be opened or is not a SQLite database.
            SchemaVersionError: when a newer horae created it.
        """
        self._logger = logger
        self._clock = clock if clock is not None else SystemClock()
        self._retrier = Retrier(is_transient=is_transient, store_name="SQLite", logger=logger)
        if self._thread is None:
            thread = SQLiteThread(self._database, self._busy_timeout, self._synchronous)
            try:
                mode = await self._retrier.run("start", thread.open)
            except BaseException:
                await thread.close()
                raise
            if mode.lower() != "wal":
                logger.warning(
                    "SQLite could not put %r in WAL mode (journal mode: %s); readers will "
                    "wait for writers",
                    self._database,
                    mode,
                )
            self._thread = thread
        self._broker = event_broker

    async def stop(self) -> None:
        """Close the connection and its thread; :meth:`start` may open them again."""
        thread, self._thread = self._thread, None
        self._broker = None
        if thread is not None:
            await thread.close()

    def _started(self) -> tuple[SQLiteThread, EventBroker]:
        if self._thread is None or self._broker is None:
            raise RuntimeError(
                "the SQLiteDataStore is not started; call 'await store.start(broker, "
                "logger)' first (a scheduler does this when it starts)"
            )
        return self._thread, self._broker

    async def _run(self, description: str, func: Callable[..., _T], *args: Any) -> _T:
        """Run ``func(conn, *args)`` on the store's thread, retrying lock timeouts."""
        thread, _ = self._started()
        return await self._retrier.run(description, lambda: thread.call(func, *args))

    async def _publish(self, events: Iterable[Event]) -> None:
        # the events of operations that finish together go out together, never raising
        await self._events.publish(self._broker, events, self._logger)

    # ---- conversions ------------------------------------------------------------------

    def _load_schedules(
        self, rows: Sequence[Row], now: datetime
    ) -> tuple[list[Schedule], list[Event]]:
        """Decode schedule rows; the undecodable ones become failure events."""
        loaded = [self._try_load(schedule_from_dict, row) for row in rows]
        schedules = [item for item in loaded if isinstance(item, Schedule)]
        failures: list[Event] = [
            ScheduleDeserializationFailed(
                timestamp=now, schedule_id=row["id"], exception=str(item)
            )
            for row, item in zip(rows, loaded, strict=True)
            if isinstance(item, DeserializationError)
        ]
        return schedules, failures

    def _try_load(
        self, load: Callable[[Row, Serializer], _T], row: Row
    ) -> _T | DeserializationError:
        """``load(row)``, or the DeserializationError it raised (logged)."""
        try:
            return load(row, self._serializer)
        except DeserializationError as exc:
            what = "schedule" if load is schedule_from_dict else "job"
            self._logger.error("cannot load the stored %s %r: %s", what, row["id"], exc)
            return exc

    def _job_row(self, job: Job) -> Row:
        # A stored job starts pending; the lease fields are only ever set by acquire_jobs.
        pending = attrs.evolve(job, acquired_by=None, acquired_until=None, started_at=None)
        return to_row(job_to_dict(pending, self._serializer))

    @staticmethod
    def _released(
        row: Row,
        outcome: JobOutcome,
        scheduler_id: str | None,
        result: JobResult,
        retry_at: datetime | None = None,
    ) -> JobReleased:
        return JobReleased(
            timestamp=result.finished_at,
            job_id=UUID(row["id"]),
            scheduler_id=scheduler_id,
            task_id=row["task_id"],
            schedule_id=row["schedule_id"],
            outcome=outcome,
            scheduled_fire_time=_time(row["scheduled_fire_time"]),
            started_at=result.started_at,
            finished_at=result.finished_at,
            exception_type=result.exception_type,
            exception_message=result.exception_message,
            attempt=result.attempt,
            retry_at=retry_at,
        )

    def _retry_policy(self, row: Row) -> RetryPolicy | None:
        """The retry policy of a job row (``None``: none, or one that cannot be read)."""
        if row["retry"] is None:
            return None
        try:
            return retry_policy_from_state(json.loads(row["retry"]))
        except (DeserializationError, ValueError, TypeError, KeyError) as exc:
            self._logger.error(
                "cannot load the retry policy of the stored job %r (it is not retried): %s",
                row["id"],
                exc,
            )
            return None

    @staticmethod
    def _retry_row(row: Row, retry_at: datetime) -> Row:
        """The row of the job's next attempt, as ``Job.for_retry(retry_at)`` makes it.

        Computed on the row itself (exact epoch microseconds), so that the payloads are
        copied as stored rather than decoded and encoded again.
        """
        start_time = to_epoch_us(retry_at)
        deadline = row["start_deadline"]
        if deadline is not None:
            deadline += start_time - row["start_time"]  # moved as much as start_time
        try:
            zones = json.loads(row[TIME_ZONES] or "{}")
        except ValueError:
            zones = {}
        if not isinstance(zones, dict):
            zones = {}
        # start_time now shows in retry_at's zone; start_deadline keeps its own
        zones.pop("start_time", None)
        if retry_at.tzinfo is not timezone.utc and retry_at.tzinfo is not None:
            # an unnameable zone: the time comes back in UTC
            with contextlib.suppress(_EncodeError):
                zones["start_time"] = encode_zone(retry_at.tzinfo)
        return {
            **row,
            "attempt": row["attempt"] + 1,
            "start_time": start_time,
            "start_deadline": deadline,
            "acquired_by": None,
            "acquired_until": None,
            "started_at": None,
            "cancel_requested": 0,
            TIME_ZONES: json.dumps(zones, separators=(",", ":"), allow_nan=False),
        }

    def _abandoned_fate(self, row: Row, now: datetime) -> tuple[JobOutcome, datetime | None]:
        """How a job whose lease lapsed ends: ``(outcome, retry time or None)``.

        Cancelled if its cancellation was requested; else retried when its policy gives
        it another attempt (there is no exception to match); else abandoned.
        """
        if row["cancel_requested"]:
            return JobOutcome.cancelled, None
        policy = self._retry_policy(row)
        if policy is None or not policy.retries(row["attempt"], None):
            return JobOutcome.abandoned, None
        return JobOutcome.abandoned, now + policy.delay(row["attempt"])

    def _ended_result(
        self, row: Row, outcome: JobOutcome, now: datetime, exc: Exception | None = None
    ) -> tuple[JobResult, Row | None]:
        """The result of a job the store ends itself, and its row if it is to be kept."""
        expiration = seconds_to_duration(row["result_expiration_time"] or 0)
        result = JobResult(
            job_id=UUID(row["id"]),
            task_id=row["task_id"],
            schedule_id=row["schedule_id"],
            scheduled_fire_time=_time(row["scheduled_fire_time"]),
            outcome=outcome,
            started_at=_time(row["started_at"]),
            finished_at=now,
            expires_at=now + expiration,
            attempt=row["attempt"],
            exception_type=None if exc is None else f"{type(exc).__module__}.{type(exc).__name__}",
            exception_message=None if exc is None else str(exc),
        )
        # Kept only with a positive expiration time, as the memory store does.
        keep = expiration > timedelta(0)
        return result, to_row(job_result_to_dict(result, self._serializer)) if keep else None

    # ---- tasks ------------------------------------------------------------------------

    async def add_task(self, task: Task) -> None:
        row = to_row(task_to_dict(task, self._serializer))
        existed = await self._run("add_task", ops.put_task, row)
        event_class = TaskUpdated if existed else TaskAdded
        await self._publish([event_class(timestamp=self._clock.now(), task_id=task.id)])

    async def remove_task(self, task_id: str) -> None:
        if not await self._run("remove_task", ops.delete_task, task_id):
            raise TaskLookupError(task_id)
        await self._publish([TaskRemoved(timestamp=self._clock.now(), task_id=task_id)])

    async def get_task(self, task_id: str) -> Task:
        rows = await self._run("get_task", ops.select_tasks, task_id)
        if not rows:
            raise TaskLookupError(task_id)
        return task_from_dict(rows[0], self._serializer)

    async def get_tasks(self) -> list[Task]:
        rows = await self._run("get_tasks", ops.select_tasks)
        return [task_from_dict(row, self._serializer) for row in rows]

    # ---- schedules --------------------------------------------------------------------

    async def add_schedule(self, schedule: Schedule, conflict_policy: ConflictPolicy) -> bool:
        # A stored schedule starts unheld; replacing a held one fences its holder.
        schedule = attrs.evolve(schedule, acquired_by=None, acquired_until=None)
        row = to_row(schedule_to_dict(schedule, self._serializer))
        policy = ConflictPolicy(conflict_policy).value
        outcome = await self._run("add_schedule", ops.put_schedule, row, policy)
        if outcome == "kept":
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
        removed = await self._run(
            "remove_schedules", ops.delete_schedules, list(dict.fromkeys(ids))
        )
        now = self._clock.now()
        await self._publish(
            ScheduleRemoved(
                timestamp=now, schedule_id=row["id"], task_id=row["task_id"], finished=finished
            )
            for row in removed
        )

    async def get_schedules(self, ids: Iterable[str] | None = None) -> list[Schedule]:
        wanted = None if ids is None else list(dict.fromkeys(ids))
        rows = await self._run("get_schedules", ops.select_schedules, wanted)
        schedules, failures = self._load_schedules(rows, self._clock.now())
        await self._publish(failures)
        return schedules

    async def pause_schedule(
        self, schedule_id: str, *, reason: str | None = None, until: datetime | None = None
    ) -> Schedule:
        row = await self._run("pause_schedule", ops.set_paused, schedule_id, reason, _us(until))
        if row is None:
            raise ScheduleLookupError(schedule_id)
        event = SchedulePaused(
            timestamp=self._clock.now(), schedule_id=schedule_id, reason=reason, paused_until=until
        )
        await self._publish([event])
        return schedule_from_dict(row, self._serializer)

    async def unpause_schedule(
        self, schedule_id: str, *, next_fire_time: datetime | None
    ) -> Schedule:
        row = await self._run(
            "unpause_schedule", ops.set_unpaused, schedule_id, _us(next_fire_time)
        )
        if row is None:
            raise ScheduleLookupError(schedule_id)
        event = ScheduleUnpaused(
            timestamp=self._clock.now(),
            schedule_id=schedule_id,
            next_fire_time=_time(row["next_fire_time"]),
        )
        await self._publish([event])
        return schedule_from_dict(row, self._serializer)

    async def acquire_schedules(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Schedule]:
        until = to_epoch_us(now + lease_duration)
        unpaused, rows = await self._run(
            "acquire_schedules",
            ops.acquire_schedules,
            scheduler_id,
            to_epoch_us(now),
            until,
            limit,
        )
        # Undecodable schedules stay leased (so they do not crowd out the others at the
        # head of the due index) and are tried again when the lease lapses.
        schedules, failures = self._load_schedules(rows, now)
        events: list[Event] = [
            ScheduleUnpaused(
                timestamp=now, schedule_id=row["id"], next_fire_time=_time(row["next_fire_time"])
            )
            for row in unpaused
        ]
        await self._publish([*events, *failures])
        return schedules

    async def release_schedules(
        self, scheduler_id: str, updates: Sequence[ScheduleUpdate]
    ) -> list[Job]:
        jobs = {job.id: job for update in updates for job in update.jobs}
        rows = [
            ops.Update(
                update.schedule_id,
                _us(update.next_fire_time),
                _us(update.last_fire_time),
                [self._job_row(job) for job in update.jobs],
            )
            for update in updates
        ]
        created_ids, updated, removed = await self._run(
            "release_schedules", ops.release_schedules, scheduler_id, rows
        )
        created = [
            attrs.evolve(
                jobs[UUID(job_id)], acquired_by=None, acquired_until=None, started_at=None
            )
            for job_id in created_ids
        ]
        now = self._clock.now()
        next_times = {update.schedule_id: update.next_fire_time for update in updates}
        events: list[Event] = [
            JobAdded(
                timestamp=now, job_id=job.id, task_id=job.task_id, schedule_id=job.schedule_id
            )
            for job in created
        ]
        events += [
            ScheduleUpdated(
                timestamp=now,
                schedule_id=row["id"],
                task_id=row["task_id"],
                next_fire_time=next_times[row["id"]],
            )
            for row in updated
        ]
        events += [
            ScheduleRemoved(
                timestamp=now, schedule_id=row["id"], task_id=row["task_id"], finished=True
            )
            for row in removed
        ]
        await self._publish(events)
        return created

    async def get_next_schedule_time(self) -> datetime | None:
        return _time(await self._run("get_next_schedule_time", ops.next_schedule_time))

    # ---- jobs -------------------------------------------------------------------------

    async def add_jobs(self, jobs: Sequence[Job]) -> None:
        by_id = {str(job.id): job for job in jobs}
        inserted = await self._run("add_jobs", ops.insert_jobs, [self._job_row(j) for j in jobs])
        now = self._clock.now()
        await self._publish(
            JobAdded(
                timestamp=now,
                job_id=by_id[job_id].id,
                task_id=by_id[job_id].task_id,
                schedule_id=by_id[job_id].schedule_id,
            )
            for job_id in inserted
        )

    async def get_jobs(self, ids: Iterable[UUID] | None = None) -> list[Job]:
        wanted = None if ids is None else list(dict.fromkeys(str(job_id) for job_id in ids))
        rows = await self._run("get_jobs", ops.select_jobs, wanted)
        loaded = [self._try_load(job_from_dict, row) for row in rows]
        return [job for job in loaded if isinstance(job, Job)]

    async def acquire_jobs(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Job]:
        acquired: list[Job] = []
        events: list[Event] = []

        def settle(abandoned: list[Row], missed: list[Row], leased: list[Row]) -> ops.Settled:
            # Runs on the store's thread inside the acquiring transaction: builds the
            # results of the jobs ended here (or the next attempts of the abandoned ones
            # that are retried) and decodes the ones handed out. A job that cannot be
            # decoded ends as deserialization_failed in the same transaction, rather
            # than being leased to a worker that could never run it.
            acquired.clear()
            events.clear()
            results: list[Row] = []
            failed: list[str] = []
            retried: list[Row] = []
            ended: list[tuple[Row, JobOutcome, str | None, Exception | None]] = []
            for row in abandoned:
                outcome, retry_at = self._abandoned_fate(row, now)
                if retry_at is None:
                    ended.append((row, outcome, row["acquired_by"], None))
                    continue
                # the attempt ends (without a result) and the job is pending again
                result, _ = self._ended_result(row, outcome, now)
                events.append(self._released(row, outcome, row["acquired_by"], result, retry_at))
                retried.append(self._retry_row(row, retry_at))
            ended += [(row, JobOutcome.missed_start_deadline, None, None) for row in missed]
            for row in leased:
                job = self._try_load(job_from_dict, row)
                if isinstance(job, Job):
                    acquired.append(job)
                else:
                    failed.append(row["id"])
                    ended.append((row, JobOutcome.deserialization_failed, scheduler_id, job))
            for row, outcome, holder, exc in ended:
                result, result_row = self._ended_result(row, outcome, now, exc)
                events.append(self._released(row, outcome, holder, result))
                if result_row is not None:
                    results.append(result_row)
            return ops.Settled(results, failed, retried)

        await self._run(
            "acquire_jobs",
            ops.acquire_jobs,
            scheduler_id,
            to_epoch_us(now),
            to_epoch_us(now + lease_duration),
            limit,
            settle,
        )
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
        ids = list(dict.fromkeys(str(job_id) for job_id in job_ids))
        until = to_epoch_us(now + lease_duration)
        held = await self._run(
            "extend_job_leases", ops.extend_job_leases, scheduler_id, ids, until
        )
        return {UUID(job_id) for job_id in held}

    async def release_job(
        self, scheduler_id: str, result: JobResult, *, retry_at: datetime | None = None
    ) -> bool:
        record = to_row(job_result_to_dict(result, self._serializer))
        if retry_at is not None:
            to_epoch_us(retry_at)  # a naive retry_at fails here, before any change
        final: list[JobResult] = []
        retried: list[datetime | None] = [None]

        def settle(job: Row) -> tuple[Row | None, Row | None]:
            # On the store's thread, inside the releasing transaction. The store, not the
            # caller, sets expires_at (finished_at + the job's expiration time), so that
            # every path (release, abandoned, missed) agrees. A job whose cancellation
            # was requested is never retried.
            expiration = seconds_to_duration(job["result_expiration_time"] or 0)
            started_at = result.started_at or _time(job["started_at"])
            final[:] = [
                attrs.evolve(
                    result, started_at=started_at, expires_at=result.finished_at + expiration
                )
            ]
            if retry_at is not None and not job["cancel_requested"]:
                retried[0] = retry_at
                return None, self._retry_row(job, retry_at)
            retried[0] = None
            if expiration <= timedelta(0):
                return None, None
            row = {**record, "started_at": _us(started_at), "expires_at": _us(final[0].expires_at)}
            return row, None

        job = await self._run(
            "release_job", ops.release_job, scheduler_id, str(result.job_id), settle
        )
        if job is None:
            return False
        event = self._released(job, result.outcome, scheduler_id, final[0], retried[0])
        await self._publish([attrs.evolve(event, timestamp=self._clock.now())])
        return True

    async def cancel_job(self, job_id: UUID, now: datetime) -> Job | None:
        ended: list[JobReleased] = []

        def end(row: Row) -> Row | None:
            # On the store's thread, inside the cancelling transaction: the result of a
            # pending job, or of a running one whose lease lapsed (holder as in the row).
            ended.clear()
            result, result_row = self._ended_result(row, JobOutcome.cancelled, now)
            ended.append(self._released(row, JobOutcome.cancelled, row["acquired_by"], result))
            return result_row

        row, was_ended = await self._run(
            "cancel_job", ops.cancel_job, str(job_id), to_epoch_us(now), end
        )
        if row is None:
            return None
        event: Event
        if was_ended:
            event = ended[0]  # stamped with now, its finished_at
        else:
            event = JobCancellationRequested(
                timestamp=now,
                job_id=job_id,
                scheduler_id=row["acquired_by"],
                task_id=row["task_id"],
                schedule_id=row["schedule_id"],
            )
        await self._publish([event])
        # The job as it was. One that can no longer be loaded raises
        # DeserializationError here, but its cancellation (committed above) stands.
        return job_from_dict(row, self._serializer)

    async def get_schedule_jobs(self, schedule_ids: Iterable[str]) -> list[Job]:
        self._started()
        wanted = list(dict.fromkeys(schedule_ids))
        if not wanted:
            return []
        rows = await self._run("get_schedule_jobs", ops.select_schedule_jobs, wanted)
        loaded = [self._try_load(job_from_dict, row) for row in rows]
        return [job for job in loaded if isinstance(job, Job)]

    async def get_next_job_time(self) -> datetime | None:
        return _time(await self._run("get_next_job_time", ops.next_job_time))

    # ---- results and housekeeping -----------------------------------------------------

    async def get_job_result(self, job_id: UUID) -> JobResult | None:
        row, job_exists = await self._run("get_job_result", ops.select_result, str(job_id))
        if job_exists:
            return None
        if row is None:
            raise JobLookupError(job_id)
        return job_result_from_dict(row, self._serializer)

    async def cleanup(self, now: datetime) -> None:
        await self._run("cleanup", ops.cleanup, to_epoch_us(now))
