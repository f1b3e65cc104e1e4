"""The MongoDB store's job queue: the ``acquire_jobs``, ``release_job`` and ``cancel_job``
transactions and the next job time.

Plain functions over the store's database; :class:`~horae.datastores.mongodb.MongoDBDataStore`
runs them (in a transaction where they say so), decodes what they return and publishes
the events.

**Running limits and their race.** A running count is the number of jobs under a live
lease (``acquired_until >= now``), grouped by task and by schedule in one aggregation;
nothing keeps a counter. The limits are checked in the database's query, not after a
``LIMIT`` in Python: the candidate query leaves out the tasks and schedules at their
limit, so a blocked task never fills a batch with jobs that cannot start and never
stalls other tasks. Within one batch :class:`RunningLimits` reserves capacity job by
job; a job held back by capacity the batch itself used up makes the next query leave
its task (or schedule) out too, so the loop ends after at most one round per limit.

Two workers reading the same counts at the same time could both claim the last free
slot (snapshot isolation does not stop two transactions that write *different* jobs).
So every transaction that claims a job under a limit also writes (``$inc``) one lock
document per limited task and schedule it claims for. Two such transactions then write
the same document, MongoDB lets only the first commit, and the other fails with a write
conflict, is run again by :meth:`MongoDBConnection._transaction`, and counts afresh,
now seeing the first one's claims. Unlimited jobs take no lock, so they never contend.

**Retries and cancellation.** A retried attempt (``release_job(..., retry_at=...)``, or
an abandoned job with attempts left) stays the same document, updated in place to its
next attempt (:func:`retry_fields`) in the transaction that ends the attempt, so the job
is never missing between two attempts. ``cancel_job`` ends a pending or lapsed job in a
transaction, or marks a live one ``cancel_requested``. Every one of these writes repeats
the condition it was chosen by and checks the count it changed; and since a transaction
that writes a job another one changed after its snapshot fails with a write conflict
(and is run again on what that one did), an attempt ends once, whoever races for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import attrs
from bson import ObjectId
from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from horae._enums import JobOutcome
from horae._exceptions import DeserializationError
from horae._structures import JobResult, RetryPolicy
from horae.datastores._mongodb_connection import Conflict
from horae.datastores._mongodb_docs import (
    EPSILON_US,
    Doc,
    RunningLimits,
    duration_us,
    opt_time,
)
from horae.events import JobReleased
from horae.serializers._jsoncodec import seconds_to_duration

#: How many lapsed or missed jobs one ``acquire_jobs`` ends at most (the rest next time).
END_BATCH = 500
#: Rounds of the candidate query in one ``acquire_jobs`` (see the module docstring).
_CHOOSE_ROUNDS = 10
#: What ending a job needs to know about it.
_ENDED_FIELDS = {
    "task_id": 1,
    "schedule_id": 1,
    "scheduled_fire_time": 1,
    "started_at": 1,
    "attempt": 1,
    "result_expiration_time": 1,
    "acquired_by": 1,
    "time_zones": 1,
    # what retrying an abandoned job needs
    "start_time": 1,
    "start_deadline": 1,
    "retry": 1,
    "cancel_requested": 1,
}
_ORDER = [("start_time", ASCENDING), ("seq", ASCENDING)]

#: ``(job document as it was, outcome, retry_at in µs or None)``; see :class:`Claimed`.
Ended = tuple[Doc, JobOutcome, int | None]


@attrs.frozen
class Claimed:
    """What one ``acquire_jobs`` transaction did.

    Attributes:
        acquired: the documents of the jobs it leased (lease fields set).
        ended: ``(job document as it was, outcome, retry_at in µs)`` of the attempts it
            ended (abandoned, missed, or cancelled: abandoned while a cancellation was
            requested); ``retry_at`` is not ``None`` for an abandoned job that its retry
            policy made pending again.
    """

    acquired: list[Doc]
    ended: list[Ended]


def _ended_filter(now_us: int) -> Doc:
    # A lease is live through acquired_until itself, and a job may still start at its
    # deadline; both have passed only once strictly before now.
    return {
        "$or": [
            {"acquired_until": {"$lt": now_us}},
            {"acquired_by": None, "start_deadline": {"$lt": now_us}},
        ]
    }


def ended_result(job: Mapping[str, Any], outcome: JobOutcome, now_us: int) -> Doc:
    """The result document of a job the store ends itself (as ``release_job`` would)."""
    zones = job.get("time_zones") or {}
    return {
        "_id": job["_id"],
        "task_id": job["task_id"],
        "schedule_id": job.get("schedule_id"),
        "scheduled_fire_time": job.get("scheduled_fire_time"),
        "outcome": outcome.value,
        "started_at": job.get("started_at"),
        "finished_at": now_us,
        "expires_at": now_us + duration_us(job.get("result_expiration_time")),
        "attempt": job.get("attempt", 1),
        "return_value": None,
        "exception": None,
        "exception_type": None,
        "exception_message": None,
        "time_zones": {
            name: zone
            for name, zone in zones.items()
            if name in ("scheduled_fire_time", "started_at")
        },
    }


def ended_event(
    doc: Mapping[str, Any], outcome: JobOutcome, now: datetime, retry_at_us: int | None = None
) -> JobReleased:
    """The ``JobReleased`` of an attempt the store ended itself: its lapsed holder, if
    any (a pending job has none), and when it is retried, if it is."""
    return JobReleased(
        timestamp=now,
        job_id=doc["_id"],
        scheduler_id=doc.get("acquired_by"),
        task_id=doc["task_id"],
        schedule_id=doc.get("schedule_id"),
        outcome=outcome,
        scheduled_fire_time=opt_time(doc.get("scheduled_fire_time")),
        started_at=opt_time(doc.get("started_at")),
        finished_at=now,
        attempt=_attempt(doc),
        retry_at=opt_time(retry_at_us),
    )


def _attempt(doc: Mapping[str, Any]) -> int:
    return int(doc.get("attempt") or 1)


def retry_fields(doc: Mapping[str, Any], retry_at_us: int) -> Doc:
    """The ``$set`` that makes the job *doc* (its ``attempt``, ``start_time`` and
    ``start_deadline`` as stored) its next attempt, pending from *retry_at_us*: what
    ``Job.for_retry`` does to a job. A new ``seq`` puts it behind the jobs already
    waiting for the same start time, as a newly added job would be. The zones in
    ``time_zones`` only choose how times are shown, so they stay."""
    deadline = doc.get("start_deadline")
    if deadline is not None:
        deadline = int(deadline) + retry_at_us - int(doc["start_time"])
    return {
        "attempt": _attempt(doc) + 1,
        "start_time": retry_at_us,
        "start_deadline": deadline,
        "acquired_by": None,
        "acquired_until": None,
        "started_at": None,
        "cancel_requested": False,
        "seq": ObjectId(),
    }


def _abandoned_retry_policy(state: Any) -> RetryPolicy | None:
    """The parts of a stored retry policy that decide whether and when an abandoned job
    is retried (``retry_on`` plays no part: there is no exception), or ``None``."""
    if not isinstance(state, Mapping):
        return None
    try:
        return RetryPolicy(
            max_attempts=state["max_attempts"],
            backoff=seconds_to_duration(state["backoff"]),
            max_backoff=seconds_to_duration(state["max_backoff"]),
            jitter=bool(state["jitter"]),
        )
    except (KeyError, TypeError, ValueError, DeserializationError):
        return None


def _fate(doc: Doc, now_us: int) -> Ended:
    """How the lapsed or missed job *doc* ends (see ``DataStore.acquire_jobs``)."""
    if not doc.get("acquired_by"):
        return doc, JobOutcome.missed_start_deadline, None
    if doc.get("cancel_requested"):
        return doc, JobOutcome.cancelled, None
    policy = _abandoned_retry_policy(doc.get("retry"))
    attempt = _attempt(doc)
    if policy is None or not policy.retries(attempt, None):
        return doc, JobOutcome.abandoned, None
    delay_us = policy.delay(attempt) // timedelta(microseconds=1)
    return doc, JobOutcome.abandoned, now_us + delay_us


def undecodable_result(
    doc: Mapping[str, Any], exc: DeserializationError, now: datetime
) -> JobResult:
    """The result of a job acquired but unreadable: ``deserialization_failed`` (its id,
    task and times are plain fields, so they are still readable)."""
    return JobResult(
        job_id=doc["_id"],
        task_id=str(doc["task_id"]),
        schedule_id=doc.get("schedule_id"),
        scheduled_fire_time=opt_time(doc.get("scheduled_fire_time")),
        outcome=JobOutcome.deserialization_failed,
        started_at=now,
        finished_at=now,
        expires_at=now,
        attempt=int(doc.get("attempt") or 1),
        exception_type=f"{DeserializationError.__module__}.DeserializationError",
        exception_message=str(exc),
    )


async def _end_jobs(
    db: AsyncDatabase[Doc], session: AsyncClientSession, now_us: int
) -> list[Ended]:
    """End (delete, keeping a result) lapsed running jobs and pending jobs past their
    start deadline; a lapsed job that its retry policy retries becomes pending again
    instead (no result). Two nodes ending the same job write the same document, so one
    of them loses a write conflict and, run again, no longer finds it (or finds it
    pending): each attempt ends once."""
    condition = _ended_filter(now_us)
    cursor = db["jobs"].find(condition, _ENDED_FIELDS, session=session).limit(END_BATCH)
    docs = await cursor.to_list()
    if not docs:
        return []
    ended = [_fate(doc, now_us) for doc in docs]
    gone = [doc["_id"] for doc, _, retry_at_us in ended if retry_at_us is None]
    if gone:
        deleted = await db["jobs"].delete_many(
            {"_id": {"$in": gone}, **condition}, session=session
        )
        if deleted.deleted_count != len(gone):
            raise Conflict
    retried = [
        UpdateOne({"_id": doc["_id"], **condition}, {"$set": retry_fields(doc, retry_at_us)})
        for doc, _, retry_at_us in ended
        if retry_at_us is not None
    ]
    if retried:
        updated = await db["jobs"].bulk_write(retried, ordered=False, session=session)
        if updated.matched_count != len(retried):
            raise Conflict
    kept = [
        ReplaceOne({"_id": doc["_id"]}, ended_result(doc, outcome, now_us), upsert=True)
        for doc, outcome, retry_at_us in ended
        if retry_at_us is None and duration_us(doc.get("result_expiration_time")) > 0
    ]
    if kept:
        await db["job_results"].bulk_write(kept, ordered=False, session=session)
    return ended


async def running_limits(
    db: AsyncDatabase[Doc], match: Doc, session: AsyncClientSession | None = None
) -> RunningLimits:
    """The running counts of the jobs that *match*, and the limits of limited tasks."""
    pipeline = [
        {"$match": match},
        {
            "$group": {
                "_id": {"task": "$task_id", "schedule": "$schedule_id"},
                "n": {"$sum": 1},
            }
        },
    ]
    cursor = await db["jobs"].aggregate(pipeline, session=session)
    groups = await cursor.to_list()
    tasks = await (
        db["tasks"]
        .find({"max_running_jobs": {"$ne": None}}, {"max_running_jobs": 1}, session=session)
        .to_list()
    )
    return RunningLimits.build(tasks, groups)


async def _choose(
    db: AsyncDatabase[Doc],
    session: AsyncClientSession,
    limits: RunningLimits,
    now_us: int,
    limit: int,
) -> list[Doc]:
    """Up to *limit* startable pending jobs, earliest first, within the limits."""
    chosen: list[Doc] = []
    for _ in range(_CHOOSE_ROUNDS):
        wanted = limit - len(chosen)
        query: Doc = {
            "acquired_by": None,
            "start_time": {"$lte": now_us},
            # missed deadlines beyond END_BATCH are ended by a later call, never started
            "$or": [{"start_deadline": None}, {"start_deadline": {"$gte": now_us}}],
            **limits.pending_filter(),
        }
        if chosen:
            query["_id"] = {"$nin": [doc["_id"] for doc in chosen]}
        docs = await db["jobs"].find(query, session=session).sort(_ORDER).limit(wanted).to_list()
        held_back = False
        for doc in docs:
            if len(chosen) < limit and limits.take(doc):
                chosen.append(doc)
            else:
                held_back = True
        if len(docs) < wanted or not held_back or len(chosen) >= limit:
            break
    return chosen


async def claim_jobs(
    db: AsyncDatabase[Doc],
    session: AsyncClientSession,
    scheduler_id: str,
    now_us: int,
    until_us: int,
    limit: int,
) -> Claimed:
    """The body of the ``acquire_jobs`` transaction (see the module docstring)."""
    ended = await _end_jobs(db, session, now_us)
    if limit <= 0:
        return Claimed([], ended)
    limits = await running_limits(db, {"acquired_until": {"$gte": now_us}}, session)
    chosen = await _choose(db, session, limits, now_us, limit)
    if not chosen:
        return Claimed([], ended)
    locks = [
        UpdateOne({"_id": key}, {"$inc": {"n": 1}}, upsert=True)
        for key in limits.lock_keys(chosen)
    ]
    if locks:
        await db["locks"].bulk_write(locks, ordered=False, session=session)
    lease = {"acquired_by": scheduler_id, "acquired_until": until_us, "started_at": now_us}
    ids = [doc["_id"] for doc in chosen]
    claimed = await db["jobs"].update_many(
        {"_id": {"$in": ids}, "acquired_by": None}, {"$set": lease}, session=session
    )
    # Under snapshot isolation a job claimed by another transaction since our snapshot
    # fails the update with a write conflict rather than matching less; check anyway.
    if claimed.modified_count != len(ids):
        raise Conflict
    return Claimed([{**doc, **lease} for doc in chosen], ended)


async def renew_leases(
    jobs: AsyncCollection[Doc], scheduler_id: str, job_ids: list[UUID], until_us: int
) -> set[UUID]:
    """Extend the leases of the jobs *scheduler_id* holds; return their ids."""
    # Renew first, then read which are still ours: a reaper that read the old lease
    # conflicts with the renewal and, run again, sees the new one. One statement per job,
    # as in acquire_schedules (see _mongodb_schedules).
    lease = {"$set": {"acquired_until": until_us}}
    renewals = [
        UpdateOne({"_id": job_id, "acquired_by": scheduler_id}, lease) for job_id in job_ids
    ]
    await jobs.bulk_write(renewals, ordered=False)
    held = {"_id": {"$in": job_ids}, "acquired_by": scheduler_id}
    return {doc["_id"] for doc in await jobs.find(held, {"_id": 1}).to_list()}


async def release_one(
    db: AsyncDatabase[Doc],
    session: AsyncClientSession,
    scheduler_id: str,
    job_id: UUID,
    result: Doc,
    retry_at_us: int | None = None,
) -> tuple[Doc, int | None] | None:
    """The body of the ``release_job`` transaction: if *scheduler_id* holds the job,
    delete it and keep its *result* document, or, with *retry_at_us* (and no
    cancellation requested), make it pending again as its next attempt; return the
    job's fields as they were and the retry time actually used (``None`` if the job
    was not held).

    *result* carries a ``release_token`` of the call, so that a retry whose first
    attempt committed (and whose reply was lost) finds its own result (or, for a retried
    attempt, the ``released`` mark on the job) and still answers that the job was
    released.
    """
    fields = {"task_id": 1, "schedule_id": 1, "scheduled_fire_time": 1, "started_at": 1}
    token = result["release_token"]
    held = {"_id": job_id, "acquired_by": scheduler_id}
    job: Doc | None = await db["jobs"].find_one(
        held,
        {
            **fields,
            "result_expiration_time": 1,
            "attempt": 1,
            "start_time": 1,
            "start_deadline": 1,
            "cancel_requested": 1,
        },
        session=session,
    )
    if job is None:
        return await _replayed_release(db, session, job_id, token, fields)
    if retry_at_us is not None and not job.get("cancel_requested"):
        # The mark keeps what a replay of this call must report about the attempt.
        mark = {"token": token, "started_at": job.get("started_at"), "retry_at": retry_at_us}
        update = {"$set": {**retry_fields(job, retry_at_us), "released": mark}}
        updated = await db["jobs"].update_one(held, update, session=session)
        if updated.matched_count != 1:
            raise Conflict
        return job, retry_at_us
    deleted = await db["jobs"].delete_one(held, session=session)
    if deleted.deleted_count != 1:
        raise Conflict
    lifetime = duration_us(job.get("result_expiration_time"))
    if lifetime > 0:
        # The store sets expires_at from the job's expiration time, and started_at from
        # the lease when the worker did not say.
        kept = {**result, "expires_at": result["finished_at"] + lifetime}
        if kept.get("started_at") is None:
            kept["started_at"] = job.get("started_at")
        await db["job_results"].replace_one({"_id": job_id}, kept, upsert=True, session=session)
    return job, None


async def _replayed_release(
    db: AsyncDatabase[Doc], session: AsyncClientSession, job_id: UUID, token: str, fields: Doc
) -> tuple[Doc, int | None] | None:
    """What an earlier, committed run of the same ``release_job`` call did, if any."""
    kept: Doc | None = await db["job_results"].find_one(
        {"_id": job_id, "release_token": token}, fields, session=session
    )
    if kept is not None:
        return kept, None
    retried: Doc | None = await db["jobs"].find_one(
        {"_id": job_id, "released.token": token}, {**fields, "released": 1}, session=session
    )
    if retried is None:
        return None
    # The job may have run again since; the call was about the attempt before.
    mark = retried["released"]
    return {**retried, "started_at": mark.get("started_at")}, int(mark["retry_at"])


async def cancel_one(
    db: AsyncDatabase[Doc],
    session: AsyncClientSession,
    job_id: UUID,
    now_us: int,
    check: Callable[[Doc], object],
) -> tuple[Doc, bool] | None:
    """The body of the ``cancel_job`` transaction: return the job's document as it was
    and whether it ended (``None`` if there is no such job).

    A pending job, or a running one whose lease lapsed, is deleted (its ``cancelled``
    result kept as ``_end_jobs`` keeps one); a running one is marked
    ``cancel_requested``. Every write repeats the condition it was chosen by, and a job
    that ``acquire_jobs`` or ``release_job`` changed since this transaction's snapshot
    fails it with a write conflict, so it is run again on what they did. *check* is
    called with the document before anything is written (it raises for a job that
    cannot be read, which then stays as it is).
    """
    job: Doc | None = await db["jobs"].find_one({"_id": job_id}, session=session)
    if job is None:
        return None
    check(job)
    holder = job.get("acquired_by")
    if holder is not None and int(job["acquired_until"]) >= now_us:
        live = {"_id": job_id, "acquired_by": holder, "acquired_until": {"$gte": now_us}}
        requested = await db["jobs"].update_one(
            live, {"$set": {"cancel_requested": True}}, session=session
        )
        if requested.matched_count != 1:
            raise Conflict
        return job, False
    ending: Doc = {"_id": job_id, "acquired_by": holder}
    if holder is not None:
        ending["acquired_until"] = {"$lt": now_us}
    deleted = await db["jobs"].delete_one(ending, session=session)
    if deleted.deleted_count != 1:
        raise Conflict
    if duration_us(job.get("result_expiration_time")) > 0:
        kept = ended_result(job, JobOutcome.cancelled, now_us)
        await db["job_results"].replace_one({"_id": job_id}, kept, upsert=True, session=session)
    return job, True


async def next_job_time_us(db: AsyncDatabase[Doc]) -> int | None:
    """The earliest moment (µs) a job may need ``acquire_jobs`` (see the ABC)."""
    # Every job under a lease counts here, live or lapsed: a lapsed one still holds its
    # slot until acquire_jobs ends it, at its lease's end plus 1 µs (counted below).
    limits = await running_limits(db, {"acquired_by": {"$ne": None}})
    jobs = db["jobs"]
    pending = await jobs.find_one(
        {"acquired_by": None, **limits.pending_filter()}, {"start_time": 1}, sort=_ORDER
    )
    lease = await jobs.find_one(
        {"acquired_until": {"$ne": None}},
        {"acquired_until": 1},
        sort=[("acquired_until", ASCENDING)],
    )
    deadline = await jobs.find_one(
        {"acquired_by": None, "start_deadline": {"$ne": None}},
        {"start_deadline": 1},
        sort=[("start_deadline", ASCENDING)],
    )
    times = []
    if pending is not None:
        times.append(int(pending["start_time"]))
    if lease is not None:
        times.append(int(lease["acquired_until"]) + EPSILON_US)
    if deadline is not None:
        times.append(int(deadline["start_deadline"]) + EPSILON_US)
    return min(times, default=None)
