"""The MongoDB store's schedule leases: acquisition, the release transaction, next times.

Plain functions over the store's collections; :class:`~horae.datastores.mongodb.MongoDBDataStore`
runs them (retried, or in a transaction where they say so), decodes what they return
and publishes the events.

**Acquisition** uses conditional updates, not a transaction. One query reads the due
schedules that the caller may lease (earliest first, up to the limit); one ``update``
command claims exactly those, with one statement per schedule that repeats the "free for
this caller" condition and the document's ``rev`` in its filter, and stamps them with
the call's token. When it claims all of them, the documents read are what is stored now
(``rev`` changes with every write, so it proves that nothing but the lease changed), and
the batch costs two round trips (the read of the schedules whose pause ends runs beside
the first). When another node took some in between, their statements match nothing
(MongoDB evaluates a filter again on the document as it writes it), the ones carrying
the token are read back, and the query runs again for the rest of the batch: every round
finds the lost ones gone, so the loop ends.

One statement per schedule rather than one multi-document ``update_many`` also means
that each statement waits for a conflicting transaction on its own document only.
(SecantusDB, the test server, holds a collection lock for the whole of a multi-document
write outside a transaction while it waits, so a transaction that needs that collection
again could never finish; multi-document writes therefore only run inside transactions.)

**Release** is one transaction for the batch: read the schedules still held by the
caller, advance (or delete) each with ``acquired_by`` repeated in its filter (fencing),
and insert the jobs. The exactly-once guard is ``fired_until``, a per-schedule watermark
on the schedule document: the latest fire time that ever made a job. A job is made only
for a fire time after it, and the watermark moves in the same transaction, so a fire time
never makes a second job, even after its job has run and been deleted; it survives
``ConflictPolicy.replace`` (an update in place) and goes with the schedule. A takeover
writes the same schedule document, so of two racing transactions MongoDB commits one
and the other, run again, finds the schedule no longer held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from pymongo import ASCENDING, DeleteOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from horae._structures import Job
from horae.datastores._base import ScheduleUpdate
from horae.datastores._mongodb_connection import Conflict
from horae.datastores._mongodb_docs import EPSILON_US, Doc, insert_op, us

BY_FIRE_TIME = [("next_fire_time", ASCENDING), ("_id", ASCENDING)]
#: What one accepted update did: the update, the schedule's task, the ids of new jobs.
Released = tuple[ScheduleUpdate, str, set[UUID]]


def _due(scheduler_id: str, now_us: int) -> Doc:
    """Unpaused schedules due by now that *scheduler_id* may lease: nobody holds them,
    their lease lapsed (live through ``acquired_until`` itself), or it holds them."""
    return {
        "paused": False,
        "next_fire_time": {"$lte": now_us},
        "$or": [
            {"acquired_until": None},
            {"acquired_until": {"$lt": now_us}},
            {"acquired_by": scheduler_id},
        ],
    }


async def _waking(schedules: AsyncCollection[Doc], now_us: int) -> list[Doc]:
    """The paused schedules whose ``paused_until`` has come."""
    wake = {"paused": True, "paused_until": {"$lte": now_us}}
    docs: list[Doc] = await schedules.find(wake, {"next_fire_time": 1}).to_list()
    return docs


async def _wake(
    schedules: AsyncCollection[Doc], waking: list[Doc], now_us: int, token: str
) -> list[Doc]:
    """Unpause *waking*; return those this call unpaused (the token tells them from ones
    that another node unpaused meanwhile, so each ``ScheduleUnpaused`` is sent once)."""
    ids = [doc["_id"] for doc in waking]
    fields = {"paused": False, "pause_reason": None, "paused_until": None, "woken": token}
    wake = {"paused": True, "paused_until": {"$lte": now_us}}
    result = await schedules.bulk_write(
        [UpdateOne({"_id": i, **wake}, {"$set": fields, "$inc": {"rev": 1}}) for i in ids],
        ordered=False,
    )
    if result.modified_count == len(ids):
        return waking
    docs: list[Doc] = await schedules.find({"_id": {"$in": ids}, "woken": token}).to_list()
    return docs


async def _candidates(
    schedules: AsyncCollection[Doc], scheduler_id: str, now_us: int, limit: int, claimed: list[Doc]
) -> list[Doc]:
    """Up to *limit* due schedules that *scheduler_id* may lease, earliest first, other
    than those it *claimed* in this call already."""
    if limit <= 0:
        return []
    due = _due(scheduler_id, now_us)
    if claimed:
        due["_id"] = {"$nin": [doc["_id"] for doc in claimed]}
    docs: list[Doc] = await schedules.find(due).sort(BY_FIRE_TIME).limit(limit).to_list()
    return docs


async def _claim(
    schedules: AsyncCollection[Doc],
    candidates: list[Doc],
    scheduler_id: str,
    now_us: int,
    until_us: int,
    token: str,
) -> list[Doc]:
    """Lease the *candidates* that are still as read and free; return them leased."""
    lease = {"acquired_by": scheduler_id, "acquired_until": until_us, "claim": token}
    due = _due(scheduler_id, now_us)
    # One conditional update per document, in one command (see the module docstring).
    result = await schedules.bulk_write(
        [
            UpdateOne(
                {"_id": doc["_id"], "rev": doc.get("rev"), **due},
                {"$set": lease, "$inc": {"rev": 1}},
            )
            for doc in candidates
        ],
        ordered=False,
    )
    if result.modified_count == len(candidates):
        return [{**doc, **lease, "rev": (doc.get("rev") or 0) + 1} for doc in candidates]
    ids = [doc["_id"] for doc in candidates]
    docs: list[Doc] = await schedules.find({"_id": {"$in": ids}, **lease}).to_list()
    return docs


async def acquire(
    schedules: AsyncCollection[Doc],
    scheduler_id: str,
    now_us: int,
    until_us: int,
    limit: int,
    token: str,
) -> tuple[list[Doc], list[Doc]]:
    """Lease up to *limit* due schedules; return ``(leased, unpaused)`` documents.

    Safe to repeat with the same *token*: a repeat finds what the first attempt leased
    among its own (``acquired_by``) schedules and leases them again.
    """
    waking, candidates = await asyncio.gather(
        _waking(schedules, now_us), _candidates(schedules, scheduler_id, now_us, limit, [])
    )
    woken: list[Doc] = []
    if waking:  # rare: unpause them first, then look again (some may be due)
        woken = await _wake(schedules, waking, now_us, token)
        candidates = await _candidates(schedules, scheduler_id, now_us, limit, [])
    claimed: list[Doc] = []
    while candidates:
        got = await _claim(schedules, candidates, scheduler_id, now_us, until_us, token)
        claimed += got
        if len(got) == len(candidates) or len(claimed) >= limit:
            break
        # Other nodes took some meanwhile: look for more (they are gone from the query).
        wanted = limit - len(claimed)
        candidates = await _candidates(schedules, scheduler_id, now_us, wanted, claimed)
    claimed.sort(key=lambda doc: (doc["next_fire_time"], doc["_id"]))
    return claimed, woken


def guard(jobs: Sequence[Job], watermark: int | None) -> tuple[list[Job], int | None]:
    """The jobs whose fire time is after *watermark* (each fire time once), and the new
    watermark. Fire times only move forward, so one at or before the watermark was
    handled already, by this node or by one whose lease was taken over."""
    accepted = [job for job in jobs if job.scheduled_fire_time is None]
    timed = sorted(
        (us(job.scheduled_fire_time), index, job)
        for index, job in enumerate(jobs)
        if job.scheduled_fire_time is not None
    )
    for fire_us, _, job in timed:
        if watermark is not None and fire_us <= watermark:
            continue
        watermark = fire_us
        accepted.append(job)
    return accepted, watermark


def _advance(scheduler_id: str, update: ScheduleUpdate, watermark: int | None) -> Any:
    """The fenced write that advances (or, when exhausted, deletes) the schedule."""
    fence = {"_id": update.schedule_id, "acquired_by": scheduler_id}
    if update.next_fire_time is None:
        return DeleteOne(fence)
    fields: Doc = {
        "next_fire_time": us(update.next_fire_time),
        "acquired_by": None,
        "acquired_until": None,
        "fired_until": watermark,
    }
    if update.last_fire_time is not None:
        fields["last_fire_time"] = us(update.last_fire_time)
    return UpdateOne(fence, {"$set": fields, "$inc": {"rev": 1}})


async def release(
    db: AsyncDatabase[Doc],
    session: AsyncClientSession,
    scheduler_id: str,
    updates: Sequence[ScheduleUpdate],
    job_docs: dict[UUID, Doc],
) -> list[Released]:
    """The body of the ``release_schedules`` transaction (see the module docstring).

    *updates* name each schedule once; *job_docs* are their jobs' documents by id.
    """
    ids = [update.schedule_id for update in updates]
    query = {"_id": {"$in": ids}, "acquired_by": scheduler_id}
    projection = {"task_id": 1, "fired_until": 1}
    held = {
        doc["_id"]: doc
        for doc in await db["schedules"].find(query, projection, session=session).to_list()
    }
    schedule_ops = []
    job_ops = []
    accepted: list[tuple[ScheduleUpdate, str, list[Job]]] = []
    for update in updates:
        doc = held.get(update.schedule_id)
        if doc is None:
            continue  # fenced: another node holds it now (or it is gone)
        jobs, watermark = guard(update.jobs, doc.get("fired_until"))
        schedule_ops.append(_advance(scheduler_id, update, watermark))
        job_ops += [insert_op(job_docs[job.id]) for job in jobs]
        accepted.append((update, str(doc["task_id"]), jobs))
    if not schedule_ops:
        return []
    result = await db["schedules"].bulk_write(schedule_ops, ordered=False, session=session)
    if result.matched_count + result.deleted_count != len(schedule_ops):
        # Under snapshot isolation a document changed since the read fails with a write
        # conflict rather than matching nothing; check anyway.
        raise Conflict
    inserted: set[UUID] = set()
    if job_ops:
        jobs_result = await db["jobs"].bulk_write(job_ops, ordered=False, session=session)
        inserted = set((jobs_result.upserted_ids or {}).values())
    return [
        (update, task_id, {job.id for job in jobs if job.id in inserted})
        for update, task_id, jobs in accepted
    ]


async def next_schedule_time_us(schedules: AsyncCollection[Doc]) -> int | None:
    """The earliest moment (µs) a schedule may need ``acquire_schedules`` (see the ABC)."""
    unheld = schedules.find_one(
        {"paused": False, "acquired_until": None, "next_fire_time": {"$ne": None}},
        {"next_fire_time": 1},
        sort=BY_FIRE_TIME,
    )
    pause_end = schedules.find_one(
        {"paused": True, "paused_until": {"$ne": None}},
        {"paused_until": 1},
        sort=[("paused_until", ASCENDING)],
    )
    # Held schedules are few: the batches in flight, and the lapsed leases of dead nodes
    # until another node takes them over.
    held = schedules.find(
        {"acquired_until": {"$ne": None}, "paused": False},
        {"acquired_until": 1, "next_fire_time": 1},
    ).to_list()
    first, paused, leased = await asyncio.gather(unheld, pause_end, held)
    times = []
    if first is not None:
        times.append(int(first["next_fire_time"]))
    if paused is not None:
        times.append(int(paused["paused_until"]))
    for doc in leased:
        # The first instant after the lease (waking at its end would find it still held,
        # and spin), but never before the schedule is due.
        after_lease = int(doc["acquired_until"]) + EPSILON_US
        fire = doc.get("next_fire_time")
        times.append(after_lease if fire is None else max(after_lease, int(fire)))
    return min(times, default=None)
