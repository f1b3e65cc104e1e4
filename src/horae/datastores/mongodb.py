"""MongoDBDataStore: tasks, schedules, jobs and results in MongoDB (pymongo's async client).

The collections and indexes are described in :mod:`horae.datastores._mongodb_connection`,
documents in :mod:`horae.datastores._mongodb_docs`, the job queue in
:mod:`horae.datastores._mongodb_jobs`.

**Exactly once.** ``acquire_schedules`` leases by conditional updates (two round trips
per batch), ``release_schedules`` is one transaction per batch, fenced on
``acquired_by``, and a per-schedule watermark (``fired_until``) keeps every fire time
from making a second job; see :mod:`horae.datastores._mongodb_schedules`.
``acquire_jobs`` is one transaction that checks the running limits in its queries and
serializes claims under the same limit through lock documents; see
:mod:`horae.datastores._mongodb_jobs`.

**Transactions need a replica set.** MongoDB runs multi-document transactions only on
replica sets and sharded clusters, so :meth:`MongoDBDataStore.start` refuses a
standalone server with a message saying so (a single-node replica set will do).

**No broker.** MongoDB has no event broker of its own in horae: nodes that share this
store use the Redis or PostgreSQL event broker, or rely on the scheduler's polling
safety net (each node wakes at the next fire time, the next lease expiry, or its poll
interval, whichever comes first), so a node learns of another's changes late but never
misses them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from logging import Logger
from typing import Any, TypeVar
from uuid import UUID, uuid4

import attrs
from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

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
from horae.datastores._mongodb_connection import (
    SERVER_SELECTION_TIMEOUT,
    Conflict,
    MongoDBConnection,
)
from horae.datastores._mongodb_docs import (
    Doc,
    from_doc,
    insert_op,
    opt_time,
    to_doc,
    us,
)
from horae.datastores._mongodb_jobs import (
    Claimed,
    cancel_one,
    claim_jobs,
    ended_event,
    next_job_time_us,
    release_one,
    renew_leases,
    undecodable_result,
)
from horae.datastores._mongodb_schedules import acquire, next_schedule_time_us, release
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
    job_from_dict,
    job_result_from_dict,
    job_result_to_dict,
    job_to_dict,
    schedule_from_dict,
    schedule_to_dict,
    task_from_dict,
    task_to_dict,
)

_R = TypeVar("_R")
_BY_START_TIME = [("start_time", ASCENDING), ("seq", ASCENDING)]


def _decode(
    load: Callable[[Doc, Serializer], _R], doc: Doc, serializer: Serializer
) -> _R | DeserializationError:
    """``load(record of doc)``, or the error that says why the document is unreadable."""
    try:
        return load(from_doc(doc), serializer)
    except DeserializationError as exc:
        return exc


class MongoDBDataStore(MongoDBConnection, DataStore):
    """Keeps tasks, schedules, jobs and results in MongoDB (``pymongo>=4.13``).

    Any number of scheduler processes on any number of machines can share one database.
    ``acquire_schedules`` takes two round trips per batch (three when nodes contend);
    ``release_schedules`` and ``acquire_jobs`` are one transaction per batch, with the
    running limits checked by the database query; every fire time makes at most one job.
    Every time that is compared comes from the caller's ``now``. See the module
    docstring for how, and why the server must be a replica set or sharded cluster.

    A call that fails on a connection error, an election or a lost write conflict is
    retried with back-off for up to a minute (every operation is safe to repeat); then,
    or for any other error, it raises :exc:`~horae.DataStoreError`.

    Args:
        uri_or_client: a ``mongodb://`` or ``mongodb+srv://`` URI (the store makes its
            own :class:`~pymongo.AsyncMongoClient` and closes it in :meth:`stop`), or a
            ready ``AsyncMongoClient`` (the caller owns and closes it; its own timeouts
            apply).
        database: the database that holds the store's collections; several stores can
            share a server under different names.
        serializer: encodes job arguments, results and metadata
            (:class:`~horae.serializers.JSONSerializer` by default).
        server_selection_timeout: seconds that an operation of a store-made client
            waits for a usable server before it fails (then it is retried); also how
            long :meth:`start` may take to report an unreachable server.

    Raises:
        ConfigurationError: for a URI of another scheme, an invalid database name, or
            something that is neither a URI nor an ``AsyncMongoClient``.

    Example::

        store = MongoDBDataStore("mongodb://db1,db2,db3/?replicaSet=rs0", "myapp")
        async with AsyncScheduler(store, RedisEventBroker("redis://cache")) as scheduler:
            ...
    """

    def __init__(
        self,
        uri_or_client: str | AsyncMongoClient[Any],
        database: str = "horae",
        *,
        serializer: Serializer | None = None,
        server_selection_timeout: float = SERVER_SELECTION_TIMEOUT,
    ) -> None:
        super().__init__(uri_or_client, database, serializer, server_selection_timeout)

    @property
    def capabilities(self) -> StoreCapabilities:
        """Persistent and shared; exception objects are kept only with pickle."""
        return self._capabilities

    async def start(
        self, event_broker: EventBroker, logger: Logger, *, clock: Clock | None = None
    ) -> None:
        """Connect, create the collections and indexes, and record (or check) the schema
        version.

        Raises:
            DataStoreError: when MongoDB cannot be reached (naming the hosts, within
                ``server_selection_timeout``), refuses the credentials, or is a
                standalone server.
            SchemaVersionError: when the database was written by a newer horae.
        """
        await self._open(event_broker, logger, clock)

    async def stop(self) -> None:
        """Stop publishing and close the client if the store made it."""
        await self._close()

    # ---- tasks ------------------------------------------------------------------------

    async def add_task(self, task: Task) -> None:
        db = self._started()
        doc = to_doc(task_to_dict(task, self._serializer))
        result = await self._run(
            "add_task", lambda: db["tasks"].replace_one({"_id": task.id}, doc, upsert=True)
        )
        event_class = TaskAdded if result.upserted_id is not None else TaskUpdated
        await self._publish([event_class(timestamp=self._clock.now(), task_id=task.id)])

    async def remove_task(self, task_id: str) -> None:
        db = self._started()
        result = await self._run("remove_task", lambda: db["tasks"].delete_one({"_id": task_id}))
        if not result.deleted_count:
            raise TaskLookupError(task_id)
        await self._publish([TaskRemoved(timestamp=self._clock.now(), task_id=task_id)])

    async def get_task(self, task_id: str) -> Task:
        db = self._started()
        doc = await self._run("get_task", lambda: db["tasks"].find_one({"_id": task_id}))
        if doc is None:
            raise TaskLookupError(task_id)
        return task_from_dict(from_doc(doc), self._serializer)

    async def get_tasks(self) -> list[Task]:
        db = self._started()
        docs = await self._run("get_tasks", lambda: db["tasks"].find().sort("_id").to_list())
        return [task_from_dict(from_doc(doc), self._serializer) for doc in docs]

    # ---- schedules --------------------------------------------------------------------

    async def add_schedule(self, schedule: Schedule, conflict_policy: ConflictPolicy) -> bool:
        db = self._started()
        # A stored schedule starts unheld; replacing a held one fences its holder.
        schedule = attrs.evolve(schedule, acquired_by=None, acquired_until=None)
        doc = to_doc(schedule_to_dict(schedule, self._serializer))
        policy = ConflictPolicy(conflict_policy)
        if policy is ConflictPolicy.replace:
            fields = {key: value for key, value in doc.items() if key != "_id"}
            # An update in place (not a replacement) keeps fired_until, the fire guard.
            update = {"$set": fields, "$inc": {"rev": 1}}
            result = await self._run(
                "add_schedule",
                lambda: db["schedules"].update_one({"_id": schedule.id}, update, upsert=True),
            )
            added = result.upserted_id is not None
        else:
            added = await self._insert_schedule(doc)
            if not added and policy is ConflictPolicy.exception:
                raise ConflictingIdError(schedule.id)
            if not added:
                return False
        event_class = ScheduleAdded if added else ScheduleUpdated
        event = event_class(
            timestamp=self._clock.now(),
            schedule_id=schedule.id,
            task_id=schedule.task_id,
            next_fire_time=schedule.next_fire_time,
        )
        await self._publish([event])
        return True

    async def _insert_schedule(self, doc: Doc) -> bool:
        """Insert *doc*; False if its id is taken. The token tells a retry whose first
        attempt did insert (and whose reply was lost) from a real id clash."""
        db = self._started()
        token = uuid4().hex

        async def operation() -> bool:
            try:
                await db["schedules"].insert_one({**doc, "rev": 0, "token": token})
            except DuplicateKeyError:
                stored = await db["schedules"].find_one({"_id": doc["_id"]}, {"token": 1})
                return stored is not None and stored.get("token") == token
            return True

        return await self._run("add_schedule", operation)

    async def remove_schedules(self, ids: Iterable[str], *, finished: bool = False) -> None:
        db = self._started()
        unique = list(dict.fromkeys(ids))
        if not unique:
            return

        async def body(session: AsyncClientSession) -> list[Doc]:
            # In a transaction, so that of two nodes removing the same schedule only one
            # reports it (the other conflicts, and then finds nothing).
            docs = (
                await db["schedules"]
                .find({"_id": {"$in": unique}}, {"task_id": 1}, session=session)
                .to_list()
            )
            found = [doc["_id"] for doc in docs]
            deleted = await db["schedules"].delete_many({"_id": {"$in": found}}, session=session)
            if deleted.deleted_count != len(found):
                raise Conflict
            return docs

        removed = await self._transaction("remove_schedules", body)
        now = self._clock.now()
        await self._publish(
            ScheduleRemoved(
                timestamp=now, schedule_id=doc["_id"], task_id=doc["task_id"], finished=finished
            )
            for doc in removed
        )

    async def get_schedules(self, ids: Iterable[str] | None = None) -> list[Schedule]:
        db = self._started()
        query = {} if ids is None else {"_id": {"$in": list(dict.fromkeys(ids))}}
        docs = await self._run(
            "get_schedules", lambda: db["schedules"].find(query).sort("_id").to_list()
        )
        events: list[Event] = []
        schedules = self._decode_schedules(docs, events, self._clock.now())
        await self._publish(events)
        return schedules

    def _decode_schedules(
        self, docs: Iterable[Doc], events: list[Event], now: datetime
    ) -> list[Schedule]:
        """Schedules from documents; undecodable ones are left out and reported."""
        schedules = []
        for doc in docs:
            decoded = _decode(schedule_from_dict, doc, self._serializer)
            if isinstance(decoded, Schedule):
                schedules.append(decoded)
                continue
            self._logger.error("cannot read the schedule %r: %s", doc["_id"], decoded)
            events.append(
                ScheduleDeserializationFailed(
                    timestamp=now, schedule_id=str(doc["_id"]), exception=str(decoded)
                )
            )
        return schedules

    async def _set_pause(self, schedule_id: str, fields: Doc) -> Schedule:
        db = self._started()
        doc = await self._run(
            "pause_schedule" if fields.get("paused") else "unpause_schedule",
            lambda: db["schedules"].find_one_and_update(
                {"_id": schedule_id},
                {"$set": fields, "$inc": {"rev": 1}},
                return_document=ReturnDocument.AFTER,
            ),
        )
        if doc is None:
            raise ScheduleLookupError(schedule_id)
        return schedule_from_dict(from_doc(doc), self._serializer)

    async def pause_schedule(
        self, schedule_id: str, *, reason: str | None = None, until: datetime | None = None
    ) -> Schedule:
        fields = {"paused": True, "pause_reason": reason, "paused_until": until and us(until)}
        schedule = await self._set_pause(schedule_id, fields)
        event = SchedulePaused(
            timestamp=self._clock.now(), schedule_id=schedule_id, reason=reason, paused_until=until
        )
        await self._publish([event])
        return schedule

    async def unpause_schedule(
        self, schedule_id: str, *, next_fire_time: datetime | None
    ) -> Schedule:
        fields: Doc = {"paused": False, "pause_reason": None, "paused_until": None}
        if next_fire_time is not None:
            fields["next_fire_time"] = us(next_fire_time)
        schedule = await self._set_pause(schedule_id, fields)
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
        schedules = self._started()["schedules"]
        now_us, until_us = us(now), us(now + lease_duration)
        token = uuid4().hex  # the same across retries: a repeat finds its own claims
        docs, woken = await self._run(
            "acquire_schedules",
            lambda: acquire(schedules, scheduler_id, now_us, until_us, limit, token),
        )
        events: list[Event] = [
            ScheduleUnpaused(
                timestamp=now,
                schedule_id=doc["_id"],
                next_fire_time=opt_time(doc.get("next_fire_time")),
            )
            for doc in woken
        ]
        decoded = self._decode_schedules(docs, events, now)
        await self._publish(events)
        return decoded

    async def release_schedules(
        self, scheduler_id: str, updates: Sequence[ScheduleUpdate]
    ) -> list[Job]:
        db = self._started()
        # The first update of a schedule wins, as it would if they ran one by one (the
        # first one drops the lease). Everything is encoded before anything is sent: a
        # payload that cannot be serialized fails the call without changing the store.
        unique = list({update.schedule_id: update for update in reversed(updates)}.values())
        unique.reverse()
        pending = {job.id: self._pending(job) for update in unique for job in update.jobs}
        job_docs = {job_id: self._job_doc(job) for job_id, job in pending.items()}
        if not unique:
            return []
        released = await self._transaction(
            "release_schedules",
            lambda session: release(db, session, scheduler_id, unique, job_docs),
        )
        now = self._clock.now()
        created: list[Job] = []
        events: list[Event] = []
        for update, task_id, inserted in released:
            jobs = [pending[job.id] for job in update.jobs if job.id in inserted]
            created += jobs
            events += [self._job_added(job, now) for job in jobs]
            if update.next_fire_time is None:
                events.append(
                    ScheduleRemoved(
                        timestamp=now,
                        schedule_id=update.schedule_id,
                        task_id=task_id,
                        finished=True,
                    )
                )
            else:
                events.append(
                    ScheduleUpdated(
                        timestamp=now,
                        schedule_id=update.schedule_id,
                        task_id=task_id,
                        next_fire_time=update.next_fire_time,
                    )
                )
        await self._publish(events)
        return created

    async def get_next_schedule_time(self) -> datetime | None:
        schedules = self._started()["schedules"]
        time_us = await self._run(
            "get_next_schedule_time", lambda: next_schedule_time_us(schedules)
        )
        return opt_time(time_us)

    # ---- jobs -------------------------------------------------------------------------

    def _job_doc(self, job: Job) -> Doc:
        """The document of the pending *job*; ``seq`` orders equal start times."""
        doc = to_doc(job_to_dict(job, self._serializer))
        doc["seq"] = ObjectId()
        return doc

    @staticmethod
    def _pending(job: Job) -> Job:
        return attrs.evolve(job, acquired_by=None, acquired_until=None, started_at=None)

    @staticmethod
    def _job_added(job: Job, now: datetime) -> JobAdded:
        return JobAdded(
            timestamp=now, job_id=job.id, task_id=job.task_id, schedule_id=job.schedule_id
        )

    async def add_jobs(self, jobs: Sequence[Job]) -> None:
        db = self._started()
        if not jobs:
            return
        pending = [self._pending(job) for job in jobs]
        ops = [insert_op(self._job_doc(job)) for job in pending]
        result = await self._run("add_jobs", lambda: db["jobs"].bulk_write(ops, ordered=False))
        inserted = set(result.upserted_ids or ())
        now = self._clock.now()
        await self._publish(
            self._job_added(job, now) for index, job in enumerate(pending) if index in inserted
        )

    async def get_jobs(self, ids: Iterable[UUID] | None = None) -> list[Job]:
        query = {} if ids is None else {"_id": {"$in": list(dict.fromkeys(ids))}}
        return await self._find_jobs("get_jobs", query)

    async def get_schedule_jobs(self, schedule_ids: Iterable[str]) -> list[Job]:
        self._started()
        unique = list(dict.fromkeys(schedule_ids))
        if not unique:
            return []
        # served by the "schedule" index (schedule_id, start_time, seq)
        return await self._find_jobs("get_schedule_jobs", {"schedule_id": {"$in": unique}})

    async def _find_jobs(self, description: str, query: Doc) -> list[Job]:
        """The jobs that match *query*, in start order; unreadable ones are left out."""
        db = self._started()
        docs = await self._run(
            description, lambda: db["jobs"].find(query).sort(_BY_START_TIME).to_list()
        )
        jobs = []
        for doc in docs:
            decoded = _decode(job_from_dict, doc, self._serializer)
            if isinstance(decoded, Job):
                jobs.append(decoded)
            else:
                self._logger.error("cannot read the job %r: %s", doc["_id"], decoded)
        return jobs

    async def acquire_jobs(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Job]:
        db = self._started()
        now_us, until_us = us(now), us(now + lease_duration)
        claimed: Claimed = await self._transaction(
            "acquire_jobs",
            lambda session: claim_jobs(db, session, scheduler_id, now_us, until_us, limit),
        )
        events: list[Event] = [
            ended_event(doc, outcome, now, retry_at_us)
            for doc, outcome, retry_at_us in claimed.ended
        ]
        acquired: list[Job] = []
        undecodable: list[tuple[Doc, DeserializationError]] = []
        for doc in claimed.acquired:
            decoded = _decode(job_from_dict, doc, self._serializer)
            if isinstance(decoded, Job):
                acquired.append(decoded)
            else:
                undecodable.append((doc, decoded))
        events += job_acquired_events(acquired, scheduler_id, now)
        await self._publish(events)
        for doc, error in undecodable:
            await self._end_undecodable(scheduler_id, doc, error, now)
        return acquired

    async def _end_undecodable(
        self, scheduler_id: str, doc: Doc, exc: DeserializationError, now: datetime
    ) -> None:
        """End a job that this node acquired but cannot read (``deserialization_failed``)."""
        self._logger.error("cannot read the job %r: %s", doc["_id"], exc)
        await self.release_job(scheduler_id, undecodable_result(doc, exc, now))

    async def extend_job_leases(
        self,
        scheduler_id: str,
        job_ids: Iterable[UUID],
        now: datetime,
        lease_duration: timedelta,
    ) -> set[UUID]:
        jobs = self._started()["jobs"]
        unique = list(dict.fromkeys(job_ids))
        if not unique:
            return set()
        until_us = us(now + lease_duration)
        return await self._run(
            "extend_job_leases", lambda: renew_leases(jobs, scheduler_id, unique, until_us)
        )

    async def release_job(
        self, scheduler_id: str, result: JobResult, *, retry_at: datetime | None = None
    ) -> bool:
        db = self._started()
        record = to_doc(job_result_to_dict(result, self._serializer), "job_id")
        # A kept result (or a retried job) carries the call's token, so that a retry
        # whose first attempt committed (and whose reply was lost) still answers True.
        record["release_token"] = uuid4().hex
        retry_at_us = None if retry_at is None else us(retry_at)
        released = await self._transaction(
            "release_job",
            lambda session: release_one(
                db, session, scheduler_id, result.job_id, record, retry_at_us
            ),
        )
        if released is None:
            return False
        job, retried_at_us = released
        started_at = result.started_at or opt_time(job.get("started_at"))
        event = JobReleased(
            timestamp=self._clock.now(),
            job_id=result.job_id,
            scheduler_id=scheduler_id,
            task_id=job["task_id"],
            schedule_id=job.get("schedule_id"),
            outcome=result.outcome,
            scheduled_fire_time=opt_time(job.get("scheduled_fire_time")),
            started_at=started_at,
            finished_at=result.finished_at,
            exception_type=result.exception_type,
            exception_message=result.exception_message,
            attempt=result.attempt,
            retry_at=opt_time(retried_at_us),
        )
        await self._publish([event])
        return True

    async def cancel_job(self, job_id: UUID, now: datetime) -> Job | None:
        db = self._started()
        decoded: dict[str, Job] = {}

        def check(doc: Doc) -> None:
            # Read before anything is written: a job that cannot be read is left alone.
            decoded["job"] = job_from_dict(from_doc(doc), self._serializer)

        outcome = await self._transaction(
            "cancel_job", lambda session: cancel_one(db, session, job_id, us(now), check)
        )
        if outcome is None:
            return None
        doc, ended = outcome
        job = decoded["job"]
        event: Event
        if ended:
            event = ended_event(doc, JobOutcome.cancelled, now)
        else:
            event = JobCancellationRequested(
                timestamp=now,
                job_id=job.id,
                scheduler_id=doc["acquired_by"],
                task_id=job.task_id,
                schedule_id=job.schedule_id,
            )
        await self._publish([event])
        return job

    async def get_next_job_time(self) -> datetime | None:
        db = self._started()
        return opt_time(await self._run("get_next_job_time", lambda: next_job_time_us(db)))

    # ---- results and housekeeping -----------------------------------------------------

    async def get_job_result(self, job_id: UUID) -> JobResult | None:
        db = self._started()

        async def operation() -> list[Doc | None]:
            job = db["jobs"].find_one({"_id": job_id}, {"_id": 1})
            result = db["job_results"].find_one({"_id": job_id})
            return list(await asyncio.gather(job, result))

        job, result = await self._run("get_job_result", operation)
        if job is not None:
            return None
        if result is None:
            raise JobLookupError(job_id)
        return job_result_from_dict(from_doc(result, "job_id"), self._serializer)

    async def cleanup(self, now: datetime) -> None:
        db = self._started()
        expired = {"expires_at": {"$lte": us(now)}}

        async def body(session: AsyncClientSession) -> None:
            # In a transaction, whose write conflicts abort at once, rather than as
            # multi-document deletes outside one (see _mongodb_schedules).
            await db["job_results"].delete_many(expired, session=session)
            # Lock documents only give racing acquire_jobs transactions something to
            # conflict on; their content means nothing, so dropping them is safe (a
            # transaction that wrote one meanwhile conflicts with this one), and it
            # keeps the locks of removed schedules from piling up.
            await db["locks"].delete_many({}, session=session)

        await self._transaction("cleanup", body)
