"""The SQLite store's schema: tables, indexes, the schema version, and row conversion.

One row per record, one column per record field (see :mod:`horae.serializers._records`
for the fields and their kinds), so that SQL can filter, order and index on them:

* times are ``INTEGER`` microseconds since the Unix epoch in UTC (:func:`to_epoch_us`),
  which sort and compare correctly in SQL whatever zone the datetime was made in (the
  trigger keeps its own zone inside its JSON state, and the records' ``time_zones``
  column the zones the times are shown in, so nothing is lost);
* durations are ``NUMERIC`` seconds, user payloads ``BLOB`` (the serializer's bytes),
  trigger and retry states ``TEXT`` (JSON), UUIDs ``TEXT`` (canonical form), enums and
  strings ``TEXT``, booleans ``INTEGER`` 0/1.

Tables (all prefixed ``horae_`` so that the file can be shared with other data):

* ``horae_metadata(key, value)``: ``schema_version``.
* ``horae_tasks``: ``id`` is the primary key.
* ``horae_schedules``: ``id`` primary key; the due index on ``(next_fire_time, id)`` for
  unpaused schedules, one on ``paused_until`` for paused ones and one on
  ``acquired_until`` for held ones. ``fire_watermark`` (not a Schedule field) is the
  exactly-once guard: the latest fire time that ever made a job for the schedule.
  ``release_schedules`` creates a job only for a fire time after it and raises it in
  the same transaction, so a fire time never makes a second job, even after its job
  has finished and been deleted. It survives ``ConflictPolicy.replace`` (an update in
  place) and goes with the schedule when the schedule is removed.
* ``horae_jobs``: ``id`` primary key; pending jobs indexed by ``start_time``,
  running jobs by ``acquired_until``, plus ``(task_id, acquired_until)``,
  ``(schedule_id, acquired_until)`` for the running-limit counts (and the jobs of a
  schedule, ``get_schedule_jobs``) and ``start_deadline`` for pending jobs that may
  miss it. ``cancel_requested`` (0/1) marks a running job whose holder is to cancel it.
* ``horae_job_results``: ``job_id`` primary key, indexed by ``expires_at``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from horae._exceptions import SchemaVersionError
from horae.serializers._records import (
    JOB_FIELDS,
    JOB_RESULT_FIELDS,
    SCHEDULE_FIELDS,
    TASK_FIELDS,
    to_epoch_us,
)

#: The schema version this code writes and reads.
SCHEMA_VERSION = 1
#: Window functions (the running-limit checks in acquire_jobs) need SQLite 3.25.
MIN_SQLITE_VERSION = (3, 25, 0)

_SQL_TYPES = {
    "str": "TEXT",
    "int": "INTEGER",
    "bool": "INTEGER",
    "uuid": "TEXT",
    "time": "INTEGER",
    "seconds": "NUMERIC",
    "enum": "TEXT",
    "json": "TEXT",
    "payload": "BLOB",
}

#: Column names of each table, in the order of their record fields.
TASK_COLUMNS: tuple[str, ...] = tuple(TASK_FIELDS)
SCHEDULE_COLUMNS: tuple[str, ...] = tuple(SCHEDULE_FIELDS)
JOB_COLUMNS: tuple[str, ...] = tuple(JOB_FIELDS)
JOB_RESULT_COLUMNS: tuple[str, ...] = tuple(JOB_RESULT_FIELDS)


def _columns_ddl(fields: Mapping[str, str], primary_key: str) -> str:
    parts = []
    for name, kind in fields.items():
        constraint = " PRIMARY KEY NOT NULL" if name == primary_key else ""
        parts.append(f"{name} {_SQL_TYPES[kind]}{constraint}")
    return ", ".join(parts)


# The tables have one column per record field, in the records' order. A field added to
# a record later becomes a column added on start (_add_missing_columns).
_DDL: tuple[str, ...] = (
    f"CREATE TABLE IF NOT EXISTS horae_tasks ({_columns_ddl(TASK_FIELDS, 'id')})",
    f"CREATE TABLE IF NOT EXISTS horae_schedules "
    f"({_columns_ddl(SCHEDULE_FIELDS, 'id')}, fire_watermark INTEGER)",
    "CREATE INDEX IF NOT EXISTS horae_schedules_due "
    "ON horae_schedules (next_fire_time, id) WHERE paused = 0",
    "CREATE INDEX IF NOT EXISTS horae_schedules_pause_end "
    "ON horae_schedules (paused_until) WHERE paused = 1",
    "CREATE INDEX IF NOT EXISTS horae_schedules_leases "
    "ON horae_schedules (acquired_until) WHERE acquired_until IS NOT NULL",
    f"CREATE TABLE IF NOT EXISTS horae_jobs ({_columns_ddl(JOB_FIELDS, 'id')})",
    # (start_time, rowid): rowid grows with insertion, so ties start in insertion order
    "CREATE INDEX IF NOT EXISTS horae_jobs_pending "
    "ON horae_jobs (start_time) WHERE acquired_until IS NULL",
    "CREATE INDEX IF NOT EXISTS horae_jobs_running "
    "ON horae_jobs (acquired_until) WHERE acquired_until IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS horae_jobs_deadline "
    "ON horae_jobs (start_deadline) WHERE acquired_until IS NULL",
    "CREATE INDEX IF NOT EXISTS horae_jobs_task ON horae_jobs (task_id, acquired_until)",
    "CREATE INDEX IF NOT EXISTS horae_jobs_schedule ON horae_jobs (schedule_id, acquired_until)",
    f"CREATE TABLE IF NOT EXISTS horae_job_results ({_columns_ddl(JOB_RESULT_FIELDS, 'job_id')})",
    "CREATE INDEX IF NOT EXISTS horae_job_results_expiry ON horae_job_results (expires_at)",
)

_TABLE_FIELDS: Mapping[str, Mapping[str, str]] = {
    "horae_tasks": TASK_FIELDS,
    "horae_schedules": SCHEDULE_FIELDS,
    "horae_jobs": JOB_FIELDS,
    "horae_job_results": JOB_RESULT_FIELDS,
}


def create_or_check_schema(conn: sqlite3.Connection, database: str) -> None:
    """Create the tables on first use, or check that the recorded version is readable.

    Runs in its own ``BEGIN IMMEDIATE`` transaction, so two processes starting at once
    on a new file serialize here: the second one finds the version the first recorded.
    Every statement is idempotent (``IF NOT EXISTS``), so starting again changes nothing.

    Raises:
        SchemaVersionError: when the file was written by a newer horae.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS horae_metadata "
            "(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"
        )
        row = conn.execute(
            "SELECT value FROM horae_metadata WHERE key = 'schema_version'"
        ).fetchone()
        version = None if row is None else int(row["value"])
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the SQLite database {database!r} was created by a newer version of horae "
                f"(schema version {version}, this version supports {SCHEMA_VERSION}); "
                f"upgrade horae"
            )
        for statement in _DDL:
            conn.execute(statement)
        _add_missing_columns(conn)
        if version is None:
            conn.execute(
                "INSERT INTO horae_metadata (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Add the columns of record fields that are newer than the file.

    A new record field is optional (``*_from_dict`` uses its default for a missing
    value), so an ``ALTER TABLE ... ADD COLUMN`` (NULL in the existing rows) is all the
    migration it needs; the schema version is only raised for changes older versions
    cannot read.
    """
    for table, fields in _TABLE_FIELDS.items():
        present = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, kind in fields.items():
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {_SQL_TYPES[kind]}")


# ---- rows ------------------------------------------------------------------------------


def to_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a record (``*_to_dict`` output) into SQLite parameters (see module docs)."""
    row: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, datetime):
            row[name] = to_epoch_us(value)
        elif isinstance(value, UUID):
            row[name] = str(value)
        elif isinstance(value, Mapping):
            row[name] = json.dumps(value, separators=(",", ":"), allow_nan=False)
        else:
            row[name] = value
    return row


def dict_row(cursor: sqlite3.Cursor, row: Sequence[Any]) -> dict[str, Any]:
    """A row factory giving plain dicts, which the ``*_from_dict`` helpers take as is."""
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def insert_sql(table: str, columns: Sequence[str], verb: str = "INSERT") -> str:
    """``INSERT INTO table (cols) VALUES (:cols)`` with named parameters."""
    names = ", ".join(columns)
    params = ", ".join(f":{name}" for name in columns)
    return f"{verb} INTO {table} ({names}) VALUES ({params})"


def placeholders(count: int) -> str:
    """``?, ?, ...`` for an ``IN (...)`` list of *count* values."""
    return ", ".join("?" * count)
