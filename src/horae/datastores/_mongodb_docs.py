"""The MongoDB store's documents: records <-> documents, and the running-limit bookkeeping.

A document is the record of :mod:`horae.serializers._records` with two changes: the
record's id (``id``, or ``job_id`` for a result) becomes ``_id``, and every time field
holds an ``Int64`` of microseconds since the Unix epoch (:func:`to_epoch_us`). BSON dates
keep only milliseconds, which would make a stored time differ from the one handed in and
lose the order of fire times less than a millisecond apart; integers are exact and sort
and compare the same way. Payloads are BSON binaries, trigger and retry states embedded
documents, UUIDs BSON UUIDs (subtype 4: the store sets ``uuidRepresentation=standard``
on its own database handle, whatever the client's default).

Documents may carry fields that are not record fields (``rev``, ``claim``,
``fired_until``, ``seq``, ...); ``*_from_dict`` ignores them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs
from pymongo import UpdateOne

from horae.serializers._jsoncodec import seconds_to_duration
from horae.serializers._records import from_epoch_us, to_epoch_us

Doc = dict[str, Any]

#: One microsecond: the first instant after a lease or a deadline (both are inclusive).
EPSILON_US = 1


def us(value: datetime) -> int:
    """*value* (aware) as integer microseconds since the epoch, as documents store it."""
    return to_epoch_us(value)


def opt_time(value: int | None) -> datetime | None:
    """A stored time (integer microseconds, or ``None``) as an aware datetime in UTC."""
    return None if value is None else from_epoch_us(int(value))


def duration_us(seconds: float | None) -> int:
    """A record's ``seconds`` value (``None`` = 0) as whole microseconds."""
    if seconds is None:
        return 0
    return seconds_to_duration(seconds) // timedelta(microseconds=1)


def to_doc(record: Mapping[str, Any], id_key: str = "id") -> Doc:
    """The document of *record* (see the module docstring)."""
    doc: Doc = {"_id": record[id_key]}
    for key, value in record.items():
        if key != id_key:
            doc[key] = to_epoch_us(value) if isinstance(value, datetime) else value
    return doc


def from_doc(doc: Mapping[str, Any], id_key: str = "id") -> Doc:
    """The record of *doc* (``*_from_dict`` reads the integer times and ignores the
    store's own fields)."""
    record = dict(doc)
    record[id_key] = record.pop("_id")
    return record


@attrs.define
class RunningLimits:
    """The running counts and limits that ``acquire_jobs`` checks, for one snapshot.

    Built from the jobs under a lease (grouped by task and schedule) and the tasks that
    have a ``max_running_jobs``. It tells the database which pending jobs are held back
    (:meth:`pending_filter`), so that a task at its limit never fills a batch with jobs
    that cannot start, and it reserves capacity for the jobs chosen within one batch
    (:meth:`take`).

    Attributes:
        task_limits: ``max_running_jobs`` of every task that has one.
        task_running: running jobs per task (plus the ones taken in this batch).
        schedule_running: running jobs per schedule (plus the ones taken in this batch).
        full_schedules: schedule id -> a running count at which some of its jobs are
            held back (their own ``max_running_jobs`` is at most that count).
    """

    task_limits: dict[str, int]
    task_running: Counter[str] = attrs.field(factory=Counter)
    schedule_running: Counter[str] = attrs.field(factory=Counter)
    full_schedules: dict[str, int] = attrs.field(factory=dict)

    @classmethod
    def build(
        cls, limited_tasks: Iterable[Mapping[str, Any]], groups: Iterable[Mapping[str, Any]]
    ) -> RunningLimits:
        """From task documents (``_id``, ``max_running_jobs``) and the groups of the
        running-count aggregation (``_id: {task, schedule}``, ``n``)."""
        limits = cls(
            task_limits={
                doc["_id"]: int(doc["max_running_jobs"])
                for doc in limited_tasks
                if doc.get("max_running_jobs") is not None
            }
        )
        for group in groups:
            key = group["_id"]
            limits.task_running[key["task"]] += int(group["n"])
            if key.get("schedule") is not None:
                limits.schedule_running[key["schedule"]] += int(group["n"])
        # Every running schedule may hold back jobs whose own limit is at most its count.
        limits.full_schedules = dict(limits.schedule_running)
        return limits

    def blocked_tasks(self) -> list[str]:
        """Tasks whose running count has reached their limit."""
        return sorted(
            task_id
            for task_id, limit in self.task_limits.items()
            if self.task_running[task_id] >= limit
        )

    def pending_filter(self) -> Doc:
        """A filter that leaves out the pending jobs a limit holds back."""
        conditions: Doc = {}
        blocked = self.blocked_tasks()
        if blocked:
            conditions["task_id"] = {"$nin": blocked}
        if self.full_schedules:
            # A job of schedule S with its own limit L is held back while S runs >= L
            # jobs; jobs without a limit (None) never match "$lte".
            conditions["$nor"] = [
                {"schedule_id": schedule_id, "max_running_jobs": {"$lte": count}}
                for schedule_id, count in sorted(self.full_schedules.items())
            ]
        return conditions

    def take(self, doc: Mapping[str, Any]) -> bool:
        """Reserve a running slot for the pending job *doc*; False if a limit holds it
        back (the blocking task or schedule is then left out of the next query)."""
        task_id = doc["task_id"]
        limit = self.task_limits.get(task_id)
        if limit is not None and self.task_running[task_id] >= limit:
            return False
        schedule_id: str | None = doc.get("schedule_id")
        schedule_limit = doc.get("max_running_jobs")
        if (
            schedule_id is not None
            and schedule_limit is not None
            and self.schedule_running[schedule_id] >= schedule_limit
        ):
            self.full_schedules[schedule_id] = self.schedule_running[schedule_id]
            return False
        self.task_running[task_id] += 1
        if schedule_id is not None:
            self.schedule_running[schedule_id] += 1
            if schedule_id in self.full_schedules:
                self.full_schedules[schedule_id] = self.schedule_running[schedule_id]
        return True

    def lock_keys(self, docs: Iterable[Mapping[str, Any]]) -> list[str]:
        """The lock documents that claiming *docs* must write (see ``acquire_jobs``):
        one per limited task and per schedule whose jobs carry a limit."""
        keys = set()
        for doc in docs:
            if doc["task_id"] in self.task_limits:
                keys.add(f"task:{doc['task_id']}")
            if doc.get("schedule_id") is not None and doc.get("max_running_jobs") is not None:
                keys.add(f"schedule:{doc['schedule_id']}")
        return sorted(keys)


def insert_op(doc: Doc) -> UpdateOne:
    """An upsert that only inserts *doc*: one whose ``_id`` is already stored is left
    alone (so repeating a call cannot duplicate it), and no duplicate-key error aborts
    the transaction it runs in (``upserted_ids`` tells which were new)."""
    fields = {key: value for key, value in doc.items() if key != "_id"}
    return UpdateOne({"_id": doc["_id"]}, {"$setOnInsert": fields}, upsert=True)
