"""The SQLite store's transactions: plain functions that run on the store's own thread.

Each function takes the store's connection (autocommit mode, ``isolation_level=None``)
and does one whole unit of work: every write is a single ``BEGIN IMMEDIATE`` ...
``COMMIT`` (:func:`write_transaction`), so the write lock is taken up front and two
processes on one host serialize on it; a read that needs several statements runs them
in one ``BEGIN`` (deferred) transaction, which in WAL mode is one consistent snapshot.
A batch is one such transaction and one hop to the thread, whatever its size: inside it
the statements are in-process calls, set-based (``IN (...)``, ``executemany``) rather
than a loop of statements per row.

``SQLITE_BUSY`` ("database is locked") escapes from here after the busy timeout; the
store's :class:`~horae.datastores._retry.Retrier` then runs the whole function again.
That is safe because a failed transaction was rolled back and every function re-reads
what it decides on inside its own transaction.

These functions know SQL and rows only; the store turns rows into objects and events.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from horae._exceptions import ConflictingIdError
from horae.datastores._sqlite_schema import (
    JOB_COLUMNS,
    JOB_RESULT_COLUMNS,
    SCHEDULE_COLUMNS,
    TASK_COLUMNS,
    insert_sql,
    placeholders,
)

Row = dict[str, Any]

#: Keeps ``IN (...)`` lists under SQLite's oldest limit on host parameters (999).
_CHUNK = 500


class Update(NamedTuple):
    """One ``ScheduleUpdate`` in row form (times as epoch microseconds)."""

    schedule_id: str
    next_fire_time: int | None
    last_fire_time: int | None
    job_rows: Sequence[Row]


_INSERT_TASK = insert_sql("horae_tasks", TASK_COLUMNS, "INSERT OR REPLACE")
_INSERT_SCHEDULE = insert_sql("horae_schedules", SCHEDULE_COLUMNS)
_REPLACE_SCHEDULE = (  # column names are constants, never user input
    "UPDATE horae_schedules SET "  # noqa: S608
    + ", ".join(f"{name} = :{name}" for name in SCHEDULE_COLUMNS if name != "id")
    + " WHERE id = :id"
)
_INSERT_JOB = insert_sql("horae_jobs", JOB_COLUMNS, "INSERT OR IGNORE")
_INSERT_RESULT = insert_sql("horae_job_results", JOB_RESULT_COLUMNS, "INSERT OR REPLACE")


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if anything raises.

    IMMEDIATE takes SQLite's write lock before the first read, so what the transaction
    reads cannot change under it (no other process can write until it commits), and it
    never has to upgrade a read lock later (which fails at once with SQLITE_BUSY in WAL
    mode instead of waiting for the busy timeout).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # Also when COMMIT itself failed: the transaction is still open then, and the
        # retry (or the next operation) must start from a clean connection.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A deferred transaction: in WAL mode its statements see one snapshot."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _select_in(
    conn: sqlite3.Connection, sql: str, values: Sequence[Any], *params: Any
) -> list[Row]:
    """Run *sql* (with ``{ids}`` where the ``IN`` list goes) over *values* in chunks."""
    rows: list[Row] = []
    for chunk in _chunks(values):
        rows.extend(conn.execute(sql.format(ids=placeholders(len(chunk))), (*params, *chunk)))
    return rows


def _execute_in(conn: sqlite3.Connection, sql: str, values: Sequence[Any], *params: Any) -> None:
    for chunk in _chunks(values):
        conn.execute(sql.format(ids=placeholders(len(chunk))), (*params, *chunk))


# ---- tasks -----------------------------------------------------------------------------


def put_task(conn: sqlite3.Connection, row: Row) -> bool:
    """Insert or replace a task; return True if one with its id existed."""
    with write_transaction(conn):
        existed = conn.execute("SELECT 1 FROM horae_tasks WHERE id = ?", (row["id"],))
        found = existed.fetchone() is not None
        conn.execute(_INSERT_TASK, row)
    return found


def delete_task(conn: sqlite3.Connection, task_id: str) -> bool:
    """Delete a task; return True if it existed."""
    with write_transaction(conn):
        cursor = conn.execute("DELETE FROM horae_tasks WHERE id = ?", (task_id,))
    return cursor.rowcount > 0


def select_tasks(conn: sqlite3.Connection, task_id: str | None = None) -> list[Row]:
    """One task (by id) or all, sorted by id."""
    if task_id is None:
        return list(conn.execute("SELECT * FROM horae_tasks ORDER BY id"))
    return list(conn.execute("SELECT * FROM horae_tasks WHERE id = ?", (task_id,)))


# ---- schedules -------------------------------------------------------------------------


def put_schedule(conn: sqlite3.Connection, row: Row, policy: str) -> str:
    """Insert a schedule; return ``"added"``, ``"replaced"`` or ``"kept"``.

    Replacing updates the row in place rather than deleting it, so the schedule's fire
    watermark survives: re-adding a schedule with the same id and trigger at every
    process start never makes a fire time run twice.
    """
    with write_transaction(conn):
        existing = conn.execute("SELECT 1 FROM horae_schedules WHERE id = ?", (row["id"],))
        if existing.fetchone() is None:
            conn.execute(_INSERT_SCHEDULE, row)
            return "added"
        if policy == "exception":
            raise ConflictingIdError(row["id"])
        if policy == "do_nothing":
            return "kept"
        conn.execute(_REPLACE_SCHEDULE, row)
        return "replaced"


def delete_schedules(conn: sqlite3.Connection, ids: Sequence[str]) -> list[Row]:
    """Delete schedules; return ``id``/``task_id`` of those that existed, in *ids* order.

    The fire watermark goes with the row: a schedule added later under the same id is a
    new schedule."""
    with write_transaction(conn):
        found = _select_in(
            conn, "SELECT id, task_id FROM horae_schedules WHERE id IN ({ids})", ids
        )
        _execute_in(conn, "DELETE FROM horae_schedules WHERE id IN ({ids})", ids)
    order = {schedule_id: index for index, schedule_id in enumerate(ids)}
    return sorted(found, key=lambda row: order[row["id"]])


def select_schedules(conn: sqlite3.Connection, ids: Sequence[str] | None) -> list[Row]:
    """The schedules with these ids (all if None), sorted by id."""
    if ids is None:
        return list(conn.execute("SELECT * FROM horae_schedules ORDER BY id"))
    rows = _select_in(conn, "SELECT * FROM horae_schedules WHERE id IN ({ids})", ids)
    return sorted(rows, key=lambda row: row["id"])  # chunks come back one after another


def set_paused(
    conn: sqlite3.Connection, schedule_id: str, reason: str | None, until: int | None
) -> Row | None:
    """Pause a schedule; return its row afterwards (None if there is none)."""
    with write_transaction(conn):
        conn.execute(
            "UPDATE horae_schedules SET paused = 1, pause_reason = ?, paused_until = ? "
            "WHERE id = ?",
            (reason, until, schedule_id),
        )
        row: Row | None = conn.execute(
            "SELECT * FROM horae_schedules WHERE id = ?", (schedule_id,)
        ).fetchone()
    return row


def set_unpaused(
    conn: sqlite3.Connection, schedule_id: str, next_fire_time: int | None
) -> Row | None:
    """Unpause a schedule (moving its next fire time if given); return its row."""
    with write_transaction(conn):
        conn.execute(
            "UPDATE horae_schedules SET paused = 0, pause_reason = NULL, paused_until = NULL, "
            "next_fire_time = COALESCE(?, next_fire_time) WHERE id = ?",
            (next_fire_time, schedule_id),
        )
        row: Row | None = conn.execute(
            "SELECT * FROM horae_schedules WHERE id = ?", (schedule_id,)
        ).fetchone()
    return row


def acquire_schedules(
    conn: sqlite3.Connection, scheduler_id: str, now: int, until: int, limit: int
) -> tuple[list[Row], list[Row]]:
    """Lease up to *limit* due schedules; return (auto-unpaused rows, acquired rows).

    Everything happens under the write lock taken by ``BEGIN IMMEDIATE``, so the
    candidates read here cannot be leased by another process before the UPDATE: two
    processes asking at once get disjoint batches (the second waits for the lock and
    then sees the first one's leases).
    """
    with write_transaction(conn):
        # A pause with an end time ends here, so that the schedule can be due at once.
        unpaused = list(
            conn.execute(
                "SELECT id, next_fire_time FROM horae_schedules "
                "WHERE paused = 1 AND paused_until <= ?",
                (now,),
            )
        )
        unpaused.sort(key=lambda row: row["id"])
        if unpaused:
            conn.execute(
                "UPDATE horae_schedules SET paused = 0, pause_reason = NULL, "
                "paused_until = NULL WHERE paused = 1 AND paused_until <= ?",
                (now,),
            )
        # Walks the due index in fire-time order; a schedule held by another node stays
        # out until its lease has expired (acquired_until < now).
        rows = list(
            conn.execute(
                "SELECT * FROM horae_schedules WHERE paused = 0 AND next_fire_time <= ? "
                "AND (acquired_until IS NULL OR acquired_until < ? OR acquired_by = ?) "
                "ORDER BY next_fire_time, id LIMIT ?",
                (now, now, scheduler_id, limit),
            )
        )
        ids = [row["id"] for row in rows]
        _execute_in(
            conn,
            "UPDATE horae_schedules SET acquired_by = ?, acquired_until = ? WHERE id IN ({ids})",
            ids,
            scheduler_id,
            until,
        )
    for row in rows:
        row["acquired_by"] = scheduler_id
        row["acquired_until"] = until
    return unpaused, rows


def release_schedules(
    conn: sqlite3.Connection, scheduler_id: str, updates: Sequence[Update]
) -> tuple[list[str], list[Row], list[Row]]:
    """Insert the jobs and advance the schedules still held by *scheduler_id*.

    Returns (ids of the jobs created, ``id``/``task_id``/``next_fire_time`` of the
    schedules advanced, ``id``/``task_id`` of the schedules removed as finished).
    """
    with write_transaction(conn):
        # Fencing: only schedules whose lease is still ours. A node whose lease lapsed
        # and was taken over (or whose schedule was replaced or removed) no longer
        # appears as acquired_by here, and changes nothing.
        held = {
            row["id"]: row
            for row in _select_in(
                conn,
                "SELECT id, task_id, fire_watermark FROM horae_schedules "
                "WHERE acquired_by = ? AND id IN ({ids})",
                [update.schedule_id for update in updates],
                scheduler_id,
            )
        }
        mine = [update for update in updates if update.schedule_id in held]
        job_rows: list[Row] = []
        watermarks: list[tuple[int, str]] = []
        for update in mine:
            accepted, watermark = _guard(update.job_rows, held[update.schedule_id])
            job_rows += accepted
            if watermark is not None:
                watermarks.append((watermark, update.schedule_id))
        conn.executemany(_INSERT_JOB, job_rows)
        conn.executemany("UPDATE horae_schedules SET fire_watermark = ? WHERE id = ?", watermarks)
        advanced = [update for update in mine if update.next_fire_time is not None]
        conn.executemany(
            "UPDATE horae_schedules SET next_fire_time = ?, "
            "last_fire_time = COALESCE(?, last_fire_time), acquired_by = NULL, "
            "acquired_until = NULL WHERE id = ?",
            [(u.next_fire_time, u.last_fire_time, u.schedule_id) for u in advanced],
        )
        finished = [u.schedule_id for u in mine if u.next_fire_time is None]
        _execute_in(conn, "DELETE FROM horae_schedules WHERE id IN ({ids})", finished)
    updated = [{"id": u.schedule_id, "task_id": held[u.schedule_id]["task_id"]} for u in advanced]
    removed = [{"id": i, "task_id": held[i]["task_id"]} for i in finished]
    return [row["id"] for row in job_rows], updated, removed


def _guard(rows: Sequence[Row], schedule: Row) -> tuple[list[Row], int | None]:
    """The job rows whose fire time lies after the schedule's watermark, and the new
    watermark (None: unchanged).

    The watermark is the latest fire time that ever made a job for the schedule. Fire
    times only move forward, so one at or before it was handled already (by this node,
    or by one whose lease we took over), even if that job has finished and been deleted
    since. It is read and raised inside the caller's write transaction, together with
    the job inserts, so no other process can slip a job in between.
    """
    watermark: int | None = schedule["fire_watermark"]
    accepted = [row for row in rows if row["scheduled_fire_time"] is None]
    timed = sorted(
        (row["scheduled_fire_time"], index)
        for index, row in enumerate(rows)
        if row["scheduled_fire_time"] is not None
    )
    raised = None
    for fire_time, index in timed:
        if watermark is not None and fire_time <= watermark:
            continue  # handled before, or a duplicate within this batch
        watermark = raised = fire_time
        accepted.append(rows[index])
    return accepted, raised


def next_schedule_time(conn: sqlite3.Connection) -> int | None:
    """When ``acquire_schedules`` may next find something (epoch microseconds).

    The earliest of: the next fire time of an unpaused schedule nobody holds, the end of
    a pause, and the first instant after a lease of an unpaused schedule (a lease is
    live through ``acquired_until`` itself). Each walks a partial index from its start.
    """
    row = conn.execute(
        "SELECT (SELECT next_fire_time FROM horae_schedules WHERE paused = 0 "
        "AND next_fire_time IS NOT NULL AND acquired_by IS NULL "
        "ORDER BY next_fire_time LIMIT 1) AS due, "
        "(SELECT paused_until FROM horae_schedules WHERE paused = 1 "
        "AND paused_until IS NOT NULL ORDER BY paused_until LIMIT 1) AS pause_end, "
        "(SELECT acquired_until + 1 FROM horae_schedules WHERE acquired_until IS NOT NULL "
        "AND paused = 0 ORDER BY acquired_until LIMIT 1) AS lease_end"
    ).fetchone()
    times = [row[key] for key in ("due", "pause_end", "lease_end") if row[key] is not None]
    return min(times, default=None)


# ---- jobs ------------------------------------------------------------------------------


def insert_jobs(conn: sqlite3.Connection, rows: Sequence[Row]) -> list[str]:
    """Insert jobs (ignoring ids that exist already); return the ids inserted."""
    with write_transaction(conn):
        ids = [row["id"] for row in rows]
        existing = {
            row["id"]
            for row in _select_in(conn, "SELECT id FROM horae_jobs WHERE id IN ({ids})", ids)
        }
        new_rows: dict[str, Row] = {}
        for row in rows:
            if row["id"] not in existing:
                new_rows.setdefault(row["id"], row)  # the first of duplicate ids wins
        conn.executemany(_INSERT_JOB, new_rows.values())
    return list(new_rows)


def select_jobs(conn: sqlite3.Connection, ids: Sequence[str] | None) -> list[Row]:
    """The jobs with these ids (all if None), in start time then insertion order."""
    if ids is None:
        return list(conn.execute("SELECT *, rowid FROM horae_jobs ORDER BY start_time, rowid"))
    rows = _select_in(conn, "SELECT *, rowid FROM horae_jobs WHERE id IN ({ids})", ids)
    return sorted(rows, key=lambda row: (row["start_time"], row["rowid"]))


# Which due jobs to start, with the running limits checked in SQL over all due jobs (so
# a task at its limit cannot hide other tasks' jobs behind a LIMIT). Running counts come
# from live leases (the caller has just ended the lapsed ones), found through the lease
# index. "room" is how many more jobs a limited task or schedule may start now.
#
# * free: jobs under no limit at all, walked in start order from the pending index and
#   cut at :limit, so a backlog of them costs only what is taken.
# * limited: the other due jobs whose task and schedule both have room. Ranks number
#   each schedule's and then each task's jobs in start order; a job may start while its
#   rank is within the room. The schedule rank comes first, so a job held back by its
#   schedule does not take up a place of its task.
_ACQUIRABLE = """
WITH
running AS (
    SELECT task_id, schedule_id FROM horae_jobs INDEXED BY horae_jobs_running
    WHERE acquired_until >= :now),
task_room AS (
    SELECT task.id AS task_id, task.max_running_jobs - COUNT(running.task_id) AS room
    FROM horae_tasks AS task LEFT JOIN running ON running.task_id = task.id
    WHERE task.max_running_jobs IS NOT NULL GROUP BY task.id),
schedule_running AS (
    SELECT schedule_id, COUNT(*) AS running FROM running
    WHERE schedule_id IS NOT NULL GROUP BY schedule_id),
free AS (
    SELECT job.rowid AS job_rowid, job.start_time FROM horae_jobs AS job
    LEFT JOIN task_room ON task_room.task_id = job.task_id
    WHERE job.acquired_until IS NULL AND job.start_time <= :now
        AND task_room.task_id IS NULL
        AND (job.schedule_id IS NULL OR job.max_running_jobs IS NULL)
    ORDER BY job.start_time, job.rowid LIMIT :limit),
limited AS (
    SELECT job.rowid AS job_rowid, job.schedule_id, job.task_id, job.start_time,
        task_room.room AS task_room,
        CASE WHEN job.schedule_id IS NOT NULL AND job.max_running_jobs IS NOT NULL
            THEN job.max_running_jobs - COALESCE(r.running, 0) END AS schedule_room
    FROM horae_jobs AS job INDEXED BY horae_jobs_pending
    LEFT JOIN task_room ON task_room.task_id = job.task_id
    LEFT JOIN schedule_running AS r ON r.schedule_id = job.schedule_id
    WHERE job.acquired_until IS NULL AND job.start_time <= :now
        AND (task_room.task_id IS NOT NULL
            OR (job.schedule_id IS NOT NULL AND job.max_running_jobs IS NOT NULL))),
schedule_ranked AS (
    SELECT *, ROW_NUMBER() OVER (
        PARTITION BY schedule_id ORDER BY start_time, job_rowid) AS schedule_rank
    FROM limited
    WHERE COALESCE(task_room, 1) > 0 AND COALESCE(schedule_room, 1) > 0),
task_ranked AS (
    SELECT *, ROW_NUMBER() OVER (
        PARTITION BY task_id ORDER BY start_time, job_rowid) AS task_rank
    FROM schedule_ranked
    WHERE schedule_room IS NULL OR schedule_rank <= schedule_room),
limited_ok AS (
    SELECT job_rowid, start_time FROM task_ranked
    WHERE task_room IS NULL OR task_rank <= task_room)
SELECT job.* FROM (SELECT * FROM free UNION ALL SELECT * FROM limited_ok) AS pick
    JOIN horae_jobs AS job ON job.rowid = pick.job_rowid
ORDER BY pick.start_time, pick.job_rowid
LIMIT :limit
"""

#: What a job's end needs: its JobResult and JobReleased fields.
_ENDED_COLUMNS = (
    "id, task_id, schedule_id, scheduled_fire_time, started_at, attempt, "
    "result_expiration_time, acquired_by"
)


class Settled(NamedTuple):
    """What ``acquire_jobs``'s caller decided about the jobs it ends or hands out."""

    result_rows: Sequence[Row]
    #: leased jobs that cannot be loaded: deleted (their results are in result_rows)
    failed_ids: Sequence[str]
    #: abandoned jobs that get another attempt: their rows as pending jobs again
    retry_rows: Sequence[Row] = ()


def acquire_jobs(
    conn: sqlite3.Connection,
    scheduler_id: str,
    now: int,
    until: int,
    limit: int,
    settle: Callable[[list[Row], list[Row], list[Row]], Settled],
) -> None:
    """End dead and late jobs, then lease up to *limit* due jobs within the limits.

    ``settle(abandoned_rows, missed_rows, leased_rows)`` is called inside the
    transaction, before it commits: it builds the result rows to store, names the
    leased jobs to end instead (ones that cannot be loaded) and gives the rows of the
    abandoned jobs that are retried. The abandoned rows are whole rows (a retry copies
    them); the leased rows carry their new lease. If the transaction is retried,
    ``settle`` is called again.
    """
    with write_transaction(conn):
        # A lapsed lease (live through acquired_until itself) means a dead worker. Its
        # job is deleted here, in the same transaction that frees its capacity, so it
        # ends as abandoned exactly once however many nodes get here. A retried one is
        # inserted again as its next attempt below, after this call's acquisitions, as
        # a job re-queued at its retry time.
        abandoned = list(
            conn.execute(
                "SELECT * FROM horae_jobs WHERE acquired_until < ? ORDER BY acquired_until, rowid",
                (now,),
            )
        )
        # A job may still start at its deadline itself; strictly after it, it missed it.
        missed = list(
            conn.execute(
                f"SELECT {_ENDED_COLUMNS} FROM horae_jobs "  # noqa: S608
                f"WHERE acquired_until IS NULL AND start_deadline < ? "
                f"ORDER BY start_deadline, rowid",
                (now,),
            )
        )
        ended = [row["id"] for row in (*abandoned, *missed)]
        _execute_in(conn, "DELETE FROM horae_jobs WHERE id IN ({ids})", ended)
        rows = list(conn.execute(_ACQUIRABLE, {"now": now, "limit": limit}))
        for row in rows:
            row.update(acquired_by=scheduler_id, acquired_until=until, started_at=now)
        settled = settle(abandoned, missed, rows)
        failed = set(settled.failed_ids)
        _execute_in(
            conn,
            "UPDATE horae_jobs SET acquired_by = ?, acquired_until = ?, started_at = ? "
            "WHERE id IN ({ids})",
            [row["id"] for row in rows if row["id"] not in failed],
            scheduler_id,
            until,
            now,
        )
        _execute_in(conn, "DELETE FROM horae_jobs WHERE id IN ({ids})", list(failed))
        conn.executemany(_INSERT_JOB, settled.retry_rows)
        conn.executemany(_INSERT_RESULT, settled.result_rows)


def extend_job_leases(
    conn: sqlite3.Connection, scheduler_id: str, ids: Sequence[str], until: int
) -> list[str]:
    """Extend the leases of these jobs that *scheduler_id* still holds; return their ids."""
    with write_transaction(conn):
        held = [
            row["id"]
            for row in _select_in(
                conn,
                "SELECT id FROM horae_jobs WHERE acquired_by = ? AND id IN ({ids})",
                ids,
                scheduler_id,
            )
        ]
        _execute_in(
            conn, "UPDATE horae_jobs SET acquired_until = ? WHERE id IN ({ids})", held, until
        )
    return held


def release_job(
    conn: sqlite3.Connection,
    scheduler_id: str,
    job_id: str,
    settle: Callable[[Row], tuple[Row | None, Row | None]],
) -> Row | None:
    """Delete the job, if *scheduler_id* holds it, and store its result or retry it.

    *settle(job_row)* (the whole row) returns ``(result row to store, None)`` for a job
    that ends (no result row: keep none), or ``(None, row of the next attempt)`` for a
    retried one, which replaces the job as a pending job (re-queued, like a new one).
    Returns the job's row, or None (changing nothing) when the lease was taken from the
    caller.
    """
    with write_transaction(conn):
        row: Row | None = conn.execute(
            "SELECT * FROM horae_jobs WHERE id = ? AND acquired_by = ?",
            (job_id, scheduler_id),
        ).fetchone()
        if row is None:
            return None
        conn.execute("DELETE FROM horae_jobs WHERE id = ?", (job_id,))
        result_row, retry_row = settle(row)
        if retry_row is not None:
            conn.execute(_INSERT_JOB, retry_row)
        if result_row is not None:
            conn.execute(_INSERT_RESULT, result_row)
    return row


def cancel_job(
    conn: sqlite3.Connection, job_id: str, now: int, end: Callable[[Row], Row | None]
) -> tuple[Row | None, bool]:
    """Cancel a job: ``(its row as it was, whether it ended)``; ``(None, False)`` if
    there is no such job.

    A pending job, or a running one whose lease lapsed, is deleted and *end(job_row)*
    gives its result row to store (None: keep none). A running one with a live lease is
    marked ``cancel_requested`` and stays, for its holder to end. Under the write lock,
    so it cannot interleave with an ``acquire_jobs`` or ``release_job`` of any process.
    """
    with write_transaction(conn):
        row: Row | None = conn.execute(
            "SELECT * FROM horae_jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            return None, False
        if row["acquired_until"] is not None and row["acquired_until"] >= now:
            conn.execute("UPDATE horae_jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            return row, False
        conn.execute("DELETE FROM horae_jobs WHERE id = ?", (job_id,))
        result_row = end(row)
        if result_row is not None:
            conn.execute(_INSERT_RESULT, result_row)
    return row, True


def select_schedule_jobs(conn: sqlite3.Connection, schedule_ids: Sequence[str]) -> list[Row]:
    """The jobs of these schedules, in start time then insertion order, found through
    the schedule index (one snapshot, however many chunks the ids take)."""
    with read_transaction(conn):
        rows = _select_in(
            conn,
            "SELECT *, rowid FROM horae_jobs INDEXED BY horae_jobs_schedule "
            "WHERE schedule_id IN ({ids})",
            schedule_ids,
        )
    return sorted(rows, key=lambda row: (row["start_time"], row["rowid"]))


def next_job_time(conn: sqlite3.Connection) -> int | None:
    """When ``acquire_jobs`` may next find something (epoch microseconds).

    The earliest of: the start time of a pending job that no running limit holds back
    (else a worker would wake for it, find it blocked, and spin), and the first instants
    after a running job's lease and after a pending job's start deadline.
    """
    row = conn.execute(
        """
        SELECT (
            SELECT job.start_time FROM horae_jobs AS job
            LEFT JOIN horae_tasks AS task ON task.id = job.task_id
            WHERE job.acquired_until IS NULL
            AND (task.max_running_jobs IS NULL OR task.max_running_jobs > (
                SELECT COUNT(*) FROM horae_jobs AS r
                WHERE r.task_id = job.task_id AND r.acquired_until IS NOT NULL))
            AND (job.schedule_id IS NULL OR job.max_running_jobs IS NULL
                OR job.max_running_jobs > (
                    SELECT COUNT(*) FROM horae_jobs AS r
                    WHERE r.schedule_id = job.schedule_id AND r.acquired_until IS NOT NULL))
            ORDER BY job.start_time LIMIT 1
        ) AS startable, (
            SELECT acquired_until + 1 FROM horae_jobs WHERE acquired_until IS NOT NULL
            ORDER BY acquired_until LIMIT 1
        ) AS lease_end, (
            SELECT start_deadline + 1 FROM horae_jobs
            WHERE acquired_until IS NULL AND start_deadline IS NOT NULL
            ORDER BY start_deadline LIMIT 1
        ) AS deadline
        """
    ).fetchone()
    keys = ("startable", "lease_end", "deadline")
    return min((row[key] for key in keys if row[key] is not None), default=None)


def select_result(conn: sqlite3.Connection, job_id: str) -> tuple[Row | None, bool]:
    """The job's result row, and whether the job itself still exists.

    One snapshot: a release committing in between cannot make both look absent."""
    with read_transaction(conn):
        result = conn.execute(
            "SELECT * FROM horae_job_results WHERE job_id = ?", (job_id,)
        ).fetchone()
        exists = conn.execute("SELECT 1 FROM horae_jobs WHERE id = ?", (job_id,)).fetchone()
    return result, exists is not None


def cleanup(conn: sqlite3.Connection, now: int) -> None:
    """Drop the results that expired by *now*."""
    with write_transaction(conn):
        conn.execute("DELETE FROM horae_job_results WHERE expires_at <= ?", (now,))
