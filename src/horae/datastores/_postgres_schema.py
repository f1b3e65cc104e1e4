"""The PostgreSQL store's schema: tables, indexes, the schema version, and rows <-> records
(including the results and events of the jobs that the store ends itself).

Everything lives in one PostgreSQL schema (``horae`` by default), so several
applications or test runs can share a database without seeing each other. One row per
record and one typed column per record field (see :mod:`horae.serializers._records`):
times are ``timestamptz`` (compared as instants, whatever zone they were made in),
durations ``interval``, payloads ``bytea``, trigger and retry states ``jsonb``.

Tables:

* ``schema_version``: one row, the version of this layout (:data:`SCHEMA_VERSION`).
* ``tasks``: primary key ``id``.
* ``schedules``: primary key ``id``; ``schedules_due (next_fire_time, id) WHERE NOT
  paused`` serves acquisition and the next wake-up; ``schedules_pause_end
  (paused_until) WHERE paused`` the timed pauses; ``schedules_lease (acquired_until)``
  the held ones.
* ``jobs``: primary key ``id``; ``seq`` (an identity column, not a Job field) keeps the
  insertion order among jobs with equal start times. Pending jobs are indexed by
  ``(start_time, seq)`` and ``start_deadline``; running ones by ``acquired_until``,
  ``task_id`` and ``schedule_id`` (the running-limit counts); all the jobs of schedules
  by ``jobs_schedule (schedule_id)`` (``get_schedule_jobs``).
* ``job_results``: primary key ``job_id``, indexed by ``expires_at``.
* ``fires (schedule_id, fire_time) PRIMARY KEY, job_id``: the exactly-once guard. Every
  job a schedule fire makes inserts its row (``ON CONFLICT DO NOTHING``: a conflict
  means that fire time already made a job, so the job is dropped). The row outlives the
  job and the schedule.
* ``fire_floors (schedule_id PRIMARY KEY, floor)``: rows of ``fires`` older than the
  retention are pruned by ``cleanup``, which raises the schedule's floor to the newest
  pruned fire time in the same transaction; a fire time at or below the floor never
  makes a job again. Releases lock the floor row before inserting into ``fires`` (see
  :mod:`._postgres_queries`), so pruning and releasing never interleave badly.

Why that is exactly once: from the moment a job for (schedule S, fire time t) commits,
either the row (S, t) exists or floor(S) >= t, because a row is only ever deleted in the
transaction that raises the floor over it; floors only grow and are never deleted (one
small row per schedule id ever fired, so a removed schedule added again under the same
id does not fire its old times again). A release inserts (S, t) only when t > floor(S)
as read under the floor row's lock and the unique key admits the row, so it can never
insert t twice. The exact keys (rather than the floor alone) let a fire time that made no
job, such as one skipped by coalescing, still make one within the retention.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import attrs

from horae._enums import JobOutcome
from horae._exceptions import ConfigurationError, DeserializationError
from horae._structures import Job, JobResult
from horae.events import Event, JobReleased
from horae.serializers._base import Serializer
from horae.serializers._jsoncodec import seconds_to_duration
from horae.serializers._records import (
    JOB_FIELDS,
    JOB_RESULT_FIELDS,
    SCHEDULE_FIELDS,
    TASK_FIELDS,
    job_from_dict,
    job_result_to_dict,
)

#: The schema version this code writes and reads.
SCHEMA_VERSION = 1

_PG_TYPES: Mapping[str, str] = {
    "str": "text",
    "int": "integer",
    "bool": "boolean",
    "uuid": "uuid",
    "time": "timestamptz",
    "seconds": "interval",
    "enum": "text",
    "json": "jsonb",
    "payload": "bytea",
}

#: Columns of each table, in the order of their record fields.
TASK_COLUMNS: tuple[str, ...] = tuple(TASK_FIELDS)
SCHEDULE_COLUMNS: tuple[str, ...] = tuple(SCHEDULE_FIELDS)
JOB_COLUMNS: tuple[str, ...] = tuple(JOB_FIELDS)
JOB_RESULT_COLUMNS: tuple[str, ...] = tuple(JOB_RESULT_FIELDS)


def quote_schema(name: str) -> str:
    """Return *name* as a quoted SQL identifier, after checking it is usable.

    Raises:
        ConfigurationError: for an empty name, one longer than PostgreSQL's 63 bytes
            (it would be silently truncated) or one containing a NUL character.
    """
    if not isinstance(name, str):
        raise TypeError(f"the schema name must be a str, not {type(name).__name__}")
    if not name or len(name.encode("utf-8")) > 63 or "\x00" in name:
        raise ConfigurationError(
            f"invalid PostgreSQL schema name {name!r}: use 1 to 63 bytes without NUL "
            f"characters, such as 'horae'"
        )
    return '"' + name.replace('"', '""') + '"'


def column_types(fields: Mapping[str, str]) -> list[str]:
    """The PostgreSQL type of each record field, in order."""
    return [_PG_TYPES[kind] for kind in fields.values()]


def _columns_ddl(fields: Mapping[str, str], primary_key: str) -> str:
    parts = []
    for name, kind in fields.items():
        constraint = " PRIMARY KEY" if name == primary_key else ""
        parts.append(f"{name} {_PG_TYPES[kind]}{constraint}")
    return ", ".join(parts)


def version_table_ddl(s: str) -> str:
    """The table that records the schema version (created before anything else)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {s}.schema_version ("
        f"singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), "
        f"version integer NOT NULL)"
    )


def schema_ddl(s: str) -> list[str]:
    """The statements that create every table and index in schema *s* (quoted).

    The columns are written out from the record field lists, but the layout is
    versioned: a new record field needs a new :data:`SCHEMA_VERSION` and a migration.
    Every statement is idempotent (``IF NOT EXISTS``).
    """
    return [
        f"CREATE TABLE IF NOT EXISTS {s}.tasks ({_columns_ddl(TASK_FIELDS, 'id')})",
        f"CREATE TABLE IF NOT EXISTS {s}.schedules ({_columns_ddl(SCHEDULE_FIELDS, 'id')})",
        f"CREATE INDEX IF NOT EXISTS schedules_due ON {s}.schedules (next_fire_time, id) "
        f"WHERE NOT paused",
        f"CREATE INDEX IF NOT EXISTS schedules_pause_end ON {s}.schedules (paused_until) "
        f"WHERE paused",
        f"CREATE INDEX IF NOT EXISTS schedules_lease ON {s}.schedules (acquired_until) "
        f"WHERE acquired_by IS NOT NULL AND NOT paused",
        f"CREATE TABLE IF NOT EXISTS {s}.jobs ({_columns_ddl(JOB_FIELDS, 'id')}, "
        f"seq bigint GENERATED ALWAYS AS IDENTITY)",
        f"CREATE INDEX IF NOT EXISTS jobs_pending ON {s}.jobs (start_time, seq) "
        f"WHERE acquired_by IS NULL",
        f"CREATE INDEX IF NOT EXISTS jobs_deadline ON {s}.jobs (start_deadline) "
        f"WHERE acquired_by IS NULL AND start_deadline IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS jobs_lease ON {s}.jobs (acquired_until) "
        f"WHERE acquired_by IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS jobs_running_task ON {s}.jobs (task_id) "
        f"WHERE acquired_by IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS jobs_running_schedule ON {s}.jobs (schedule_id) "
        f"WHERE acquired_by IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS jobs_schedule ON {s}.jobs (schedule_id)",
        f"CREATE TABLE IF NOT EXISTS {s}.job_results "
        f"({_columns_ddl(JOB_RESULT_FIELDS, 'job_id')})",
        f"CREATE INDEX IF NOT EXISTS job_results_expiry ON {s}.job_results (expires_at)",
        f"CREATE TABLE IF NOT EXISTS {s}.fires (schedule_id text NOT NULL, "
        f"fire_time timestamptz NOT NULL, job_id uuid NOT NULL, "
        f"PRIMARY KEY (schedule_id, fire_time))",
        f"CREATE TABLE IF NOT EXISTS {s}.fire_floors (schedule_id text PRIMARY KEY, "
        f"floor timestamptz NOT NULL)",
    ]


# ---- rows ------------------------------------------------------------------------------


def to_values(record: Mapping[str, Any], fields: Mapping[str, str]) -> list[Any]:
    """The column values of *record* (from a ``*_to_dict`` helper), in field order.

    JSON states become ``jsonb`` text and durations ``timedelta`` (``interval``); every
    other kind already has the Python type asyncpg encodes for its column.
    """
    values = []
    for name, kind in fields.items():
        value = record[name]
        if value is not None:
            if kind == "json":
                value = json.dumps(value, separators=(",", ":"))
            elif kind == "seconds":
                value = seconds_to_duration(value)
        values.append(value)
    return values


def to_columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Transpose *rows* into one list per column (the arrays that ``unnest`` takes)."""
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def to_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A record (for a ``*_from_dict`` helper) from an asyncpg row.

    asyncpg hands UUIDs back as its own ``UUID`` subclass; they become plain
    :class:`uuid.UUID` so that ids hash and compare like the ones callers hold.
    """
    record = dict(row.items())
    for key, value in record.items():
        if isinstance(value, UUID) and type(value) is not UUID:
            record[key] = UUID(bytes=value.bytes)
    return record


def ended_result(
    row: Mapping[str, Any], outcome: JobOutcome, now: datetime, exc: Exception | None = None
) -> JobResult:
    """The result of a job (a row of ``jobs``) that the store ends itself at *now*."""
    return JobResult(
        job_id=UUID(str(row["id"])),
        task_id=row["task_id"],
        schedule_id=row["schedule_id"],
        scheduled_fire_time=row["scheduled_fire_time"],
        outcome=outcome,
        started_at=row["started_at"],
        finished_at=now,
        expires_at=now + row["result_expiration_time"],
        attempt=row["attempt"],
        exception_type=None if exc is None else f"{type(exc).__module__}.{type(exc).__name__}",
        exception_message=None if exc is None else str(exc),
    )


def released_event(
    row: Mapping[str, Any],
    result: JobResult,
    scheduler_id: str | None,
    *,
    retry_at: datetime | None = None,
) -> JobReleased:
    """The ``JobReleased`` event of the job in *row*, whose attempt ended with *result*
    (and that is pending again from *retry_at* when that is set)."""
    return JobReleased(
        timestamp=result.finished_at,
        job_id=UUID(str(row["id"])),
        scheduler_id=scheduler_id,
        task_id=row["task_id"],
        schedule_id=row["schedule_id"],
        outcome=result.outcome,
        scheduled_fire_time=row["scheduled_fire_time"],
        started_at=result.started_at,
        finished_at=result.finished_at,
        exception_type=result.exception_type,
        exception_message=result.exception_message,
        attempt=result.attempt,
        retry_at=retry_at,
    )


@attrs.frozen
class Settled:
    """What ``acquire_jobs`` made of the rows its statement returned.

    Attributes:
        acquired: the leased jobs, in ``(start_time, insertion)`` order.
        events: ``JobReleased`` of every job it ended (including undecodable ones).
        failed_ids: leased jobs that cannot be decoded, to end in the same transaction.
        failed_results: the columns (arrays) of the results of those to keep.
    """

    acquired: list[Job]
    events: list[Event]
    failed_ids: list[Any]
    failed_results: list[list[Any]]


def settle_acquired(
    rows: Sequence[Mapping[str, Any]],
    serializer: Serializer,
    scheduler_id: str,
    now: datetime,
    logger: logging.Logger,
) -> Settled:
    """Decode the jobs that ``acquire_jobs`` leased and describe the ones it ended.

    Rows with an ``outcome`` were ended by the statement (abandoned, cancelled, missed
    start deadline), or retried when they have a ``retry_at``; the others were leased. A
    leased one that cannot be decoded is reported in ``failed_ids``: the caller ends it
    as ``deserialization_failed``.
    """
    acquired: list[tuple[int, Job]] = []
    events: list[Event] = []
    failed_ids: list[Any] = []
    kept: list[list[Any]] = []
    for row in rows:
        outcome = row["outcome"]
        if outcome is not None:
            result = ended_result(row, JobOutcome(outcome), now)
            holder = row["acquired_by"] if outcome != JobOutcome.missed_start_deadline else None
            # with a retry_at the job is pending again (no result was stored)
            events.append(released_event(row, result, holder, retry_at=row["retry_at"]))
            continue
        try:
            acquired.append((row["seq"], job_from_dict(to_record(row), serializer)))
        except DeserializationError as exc:
            logger.error("cannot load the stored job %s: %s", row["id"], exc)
            result = ended_result(row, JobOutcome.deserialization_failed, now, exc)
            failed_ids.append(row["id"])
            events.append(released_event(row, result, scheduler_id))
            if row["result_expiration_time"] > timedelta(0):
                kept.append(to_values(job_result_to_dict(result, serializer), JOB_RESULT_FIELDS))
    acquired.sort(key=lambda item: (item[1].start_time, item[0]))
    return Settled(
        acquired=[job for _, job in acquired],
        events=events,
        failed_ids=failed_ids,
        failed_results=to_columns(kept, len(JOB_RESULT_FIELDS)),
    )
