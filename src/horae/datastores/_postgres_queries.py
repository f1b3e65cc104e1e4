# ruff: noqa: S608 - the only text formatted into these statements is the schema name,
# quoted by quote_schema(), and fixed column names; every value is a bind parameter.
"""The PostgreSQL store's statements, one per operation, built once per schema name.

Each hot-path operation is one statement (so one round trip and one implicit
transaction), with data-modifying CTEs doing the select-and-update in one go;
``acquire_jobs`` runs its statement in a transaction after taking an advisory lock (see
``PostgresDataStore.acquire_jobs`` for why). Parameters
of a batch travel as arrays and come back into rows with ``unnest``. Every time
comparison uses a ``now`` parameter; the server's own clock is never read.

PostgreSQL facts the statements rely on (READ COMMITTED, the default):

* ``FOR UPDATE SKIP LOCKED`` locks the rows it returns and passes over rows another
  transaction has locked; when a row changed after the statement's snapshot, it is
  re-checked against the ``WHERE`` clause in its newest version before it is locked.
* ``UPDATE``/``DELETE`` re-check their ``WHERE`` clause on the newest version of a row
  that a concurrent transaction changed, so fences (``acquired_by = $1``) hold.
* ``INSERT ... ON CONFLICT`` checks the unique index itself, not the snapshot: it sees
  (or waits for) rows that concurrent transactions inserted.
* Data-modifying CTEs all run on the statement's snapshot: one CTE does not see the
  rows another one inserts, and the same row must not be changed by two of them.
"""

from __future__ import annotations

import hashlib

from horae.datastores._postgres_schema import (
    JOB_COLUMNS,
    JOB_RESULT_COLUMNS,
    SCHEDULE_COLUMNS,
    TASK_COLUMNS,
    column_types,
)
from horae.serializers._records import JOB_FIELDS, JOB_RESULT_FIELDS, SCHEDULE_FIELDS, TASK_FIELDS

_JOB_LIST = ", ".join(JOB_COLUMNS)
_SCHEDULE_LIST = ", ".join(SCHEDULE_COLUMNS)
_RESULT_LIST = ", ".join(JOB_RESULT_COLUMNS)
_TASK_LIST = ", ".join(TASK_COLUMNS)
#: A job id may come back (a retried job keeps its id): its newest result wins.
_UPDATE_RESULT = ", ".join(f"{c} = EXCLUDED.{c}" for c in JOB_RESULT_COLUMNS if c != "job_id")

#: A duration as an exact number of seconds: ``timestamptz + interval`` would add an
#: interval's days as calendar days of the session's time zone (23 or 25 hours across a
#: DST change); multiplying seconds keeps the arithmetic in elapsed time.
_SECONDS = "interval '1 second' * extract(epoch FROM {})"

#: Results of jobs the store ends itself (abandoned, missed start deadline, cancelled).
_ENDED_RESULT_COLUMNS = (
    "job_id, task_id, schedule_id, scheduled_fire_time, outcome, started_at, "
    "finished_at, expires_at, attempt"
)

#: ``RetryPolicy.retries(attempt, None)`` of a job row, over the jsonb state of its
#: policy (see ``retry_policy_to_state``): an abandoned attempt has no exception to match.
_RETRIES = "(retry IS NOT NULL AND attempt < (retry->>'max_attempts')::integer)"

#: ``RetryPolicy.delay(attempt)`` of a job row in seconds (float8): ``backoff *
#: 2**(attempt-1)`` capped at ``max_backoff``, drawn from ``[d/2, d]`` with jitter.
_RETRY_DELAY = (
    "least((retry->>'backoff')::float8 * power(2::float8, least(attempt - 1, 62)), "
    "(retry->>'max_backoff')::float8) "
    "* CASE WHEN (retry->>'jitter')::boolean THEN 0.5 + 0.5 * random() ELSE 1 END"
)


def _for_retry(retry_at: str) -> str:
    """``Job.for_retry`` as the SET list of an ``UPDATE ... AS j``: pending again from the
    timestamptz *retry_at* as the next attempt, the start deadline moved by as much as
    the start time (in elapsed seconds), no lease."""
    shift = _SECONDS.format(f"{retry_at} - j.start_time")
    return (
        f"attempt = j.attempt + 1, start_time = {retry_at}, "
        f"start_deadline = j.start_deadline + {shift}, acquired_by = NULL, "
        f"acquired_until = NULL, started_at = NULL, cancel_requested = false"
    )


def _unnest(columns: tuple[str, ...], types: list[str], first: int, alias: str) -> str:
    """``unnest($first::type[], ...) AS alias(columns)``."""
    arrays = ", ".join(f"${first + i}::{kind}[]" for i, kind in enumerate(types))
    return f"unnest({arrays}) AS {alias}({', '.join(columns)})"


def _placeholders(types: list[str], first: int) -> str:
    return ", ".join(f"${first + i}::{kind}" for i, kind in enumerate(types))


def _acquire_schedules(s: str) -> str:
    # $1 scheduler id, $2 now, $3 lease end, $4 limit.
    # A schedule is free when nobody holds it, its lease lapsed (acquired_until < now:
    # the lease is live through acquired_until itself), or the caller holds it already.
    # Paused schedules whose paused_until has come are taken as if unpaused (the first
    # branch serves the common case from schedules_due; paused ones are few).
    free = "(acquired_by IS NULL OR acquired_until < $2 OR acquired_by = $1)"
    columns = ", ".join(f"t.{c}" for c in SCHEDULE_COLUMNS)
    return f"""
WITH due AS (
    SELECT id, next_fire_time, false AS was_paused FROM {s}.schedules
    WHERE NOT paused AND next_fire_time <= $2 AND {free}
    ORDER BY next_fire_time, id LIMIT $4 FOR UPDATE SKIP LOCKED
),
due_after_pause AS (
    SELECT id, next_fire_time, true AS was_paused FROM {s}.schedules
    WHERE paused AND paused_until <= $2 AND next_fire_time <= $2 AND {free}
    ORDER BY next_fire_time, id LIMIT $4 FOR UPDATE SKIP LOCKED
),
candidates AS (SELECT * FROM due UNION ALL SELECT * FROM due_after_pause),
chosen AS (
    SELECT id, was_paused FROM candidates ORDER BY next_fire_time, id LIMIT $4
),
woken AS (
    -- timed pauses that ended, whether or not the schedule is due now
    SELECT id FROM {s}.schedules
    WHERE paused AND paused_until <= $2 AND id NOT IN (SELECT id FROM chosen)
    FOR UPDATE SKIP LOCKED
),
unpaused AS (
    UPDATE {s}.schedules AS t
    SET paused = false, pause_reason = NULL, paused_until = NULL
    FROM woken WHERE t.id = woken.id AND t.id = ANY(ARRAY(SELECT id FROM woken))
    RETURNING {columns}, true AS was_paused
),
acquired AS (
    UPDATE {s}.schedules AS t
    SET acquired_by = $1, acquired_until = $3,
        paused = false, pause_reason = NULL, paused_until = NULL
    FROM chosen WHERE t.id = chosen.id
        -- as an array too, so that the rows are found by the primary key (a join on the
        -- CTE alone is planned as a scan of every schedule once there are thousands)
        AND t.id = ANY(ARRAY(SELECT id FROM chosen))
    RETURNING {columns}, chosen.was_paused
)
SELECT *, true AS acquired FROM acquired
UNION ALL
SELECT *, false FROM unpaused
"""


def _guarded_job_inserts(s: str) -> str:
    # The CTEs of release_schedules that insert the jobs of held schedules.
    #
    # Exactly once: a job is inserted only if its (schedule_id, fire_time) row could be
    # inserted into fires (a conflict means that fire time made a job already, perhaps
    # one that has finished since) and its fire time is above the schedule's floor (rows
    # at or below it were pruned). The floor row is locked (upserted) first, so the
    # floor read here is the newest one and cleanup cannot prune this schedule's rows
    # between that read and the insert: both take the floor lock before touching fires.
    return f"""
floors AS (
    INSERT INTO {s}.fire_floors AS f (schedule_id, floor)
    SELECT id, '-infinity'::timestamptz FROM held
    WHERE id IN (SELECT schedule_id FROM new_jobs) ORDER BY id
    ON CONFLICT (schedule_id) DO UPDATE SET floor = f.floor
    RETURNING f.schedule_id, f.floor
),
fired AS (
    INSERT INTO {s}.fires (schedule_id, fire_time, job_id)
    SELECT j.schedule_id, j.scheduled_fire_time, j.id
    FROM new_jobs AS j JOIN floors AS f ON f.schedule_id = j.schedule_id
    WHERE j.scheduled_fire_time > f.floor
    ON CONFLICT DO NOTHING
    RETURNING job_id
),
inserted AS (
    INSERT INTO {s}.jobs ({_JOB_LIST})
    SELECT {_JOB_LIST} FROM new_jobs
    WHERE id IN (SELECT job_id FROM fired)
       OR (scheduled_fire_time IS NULL AND schedule_id IN (SELECT id FROM held))
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)"""


def _release_schedules(s: str) -> str:
    # $1 scheduler id; $2 ids, $3 next fire times, $4 last fire times; $5... the jobs'
    # columns. Fencing: only schedules still held by $1 (held, locked in id order)
    # change, and only their jobs are inserted; a node whose lease was taken over
    # changes nothing. Jobs and schedule changes commit together or not at all.
    jobs = _unnest(JOB_COLUMNS, column_types(JOB_FIELDS), 5, "j")
    return f"""
WITH updates AS (
    SELECT * FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[])
        AS u(id, next_fire_time, last_fire_time)
),
held AS (
    SELECT t.id FROM {s}.schedules AS t
    WHERE t.id = ANY($2::text[]) AND t.acquired_by = $1
    ORDER BY t.id FOR UPDATE
),
new_jobs AS (SELECT * FROM {jobs}),
{_guarded_job_inserts(s)},
advanced AS (
    UPDATE {s}.schedules AS t
    SET next_fire_time = u.next_fire_time,
        last_fire_time = coalesce(u.last_fire_time, t.last_fire_time),
        acquired_by = NULL, acquired_until = NULL
    FROM updates AS u
    WHERE t.id = u.id AND u.next_fire_time IS NOT NULL AND t.id IN (SELECT id FROM held)
    RETURNING t.id, t.task_id, t.next_fire_time
),
finished AS (
    DELETE FROM {s}.schedules AS t USING updates AS u
    WHERE t.id = u.id AND u.next_fire_time IS NULL AND t.id IN (SELECT id FROM held)
    RETURNING t.id, t.task_id
)
SELECT
    -- jobs inserted now, plus jobs of these very ids that an earlier attempt of this
    -- release inserted (its commit was acknowledged by a connection that then died)
    ARRAY(SELECT id FROM inserted) || ARRAY(
        SELECT j.id FROM new_jobs AS j JOIN {s}.fires AS f
        ON f.schedule_id = j.schedule_id AND f.fire_time = j.scheduled_fire_time
        AND f.job_id = j.id
    ) AS created,
    ARRAY(SELECT id FROM advanced) AS advanced_ids,
    ARRAY(SELECT task_id FROM advanced) AS advanced_tasks,
    ARRAY(SELECT next_fire_time FROM advanced) AS advanced_times,
    ARRAY(SELECT id FROM finished) AS finished_ids,
    ARRAY(SELECT task_id FROM finished) AS finished_tasks
"""


def _end_lapsed_and_late(s: str) -> str:
    # The CTEs of acquire_jobs that end running jobs whose lease lapsed (a dead worker:
    # abandoned, or cancelled if its cancellation was requested) and pending jobs past
    # their start deadline, storing their results. An abandoned job that its retry
    # policy gives another attempt is not ended but made pending again (retried), from
    # now + the policy's delay (computed once per row: the CTE is materialized).
    # Each such job is ended (or retried) by exactly one acquisition: the row lock
    # (SKIP LOCKED) and the delete or update decide, however many nodes reap at once.
    # ended holds the rows as they were (the lapsed holder, started_at, attempt).
    expires = _SECONDS.format("result_expiration_time")
    return f"""
ended AS (
    SELECT {_JOB_LIST},
           CASE WHEN acquired_by IS NULL THEN 'missed_start_deadline'
                WHEN cancel_requested THEN 'cancelled'
                ELSE 'abandoned' END AS outcome,
           CASE WHEN acquired_by IS NOT NULL AND cancel_requested IS NOT TRUE AND {_RETRIES}
                THEN $2::timestamptz + interval '1 second' * ({_RETRY_DELAY}) END AS retry_at
    FROM {s}.jobs
    WHERE (acquired_by IS NOT NULL AND acquired_until < $2)
       OR (acquired_by IS NULL AND start_deadline < $2)
    FOR UPDATE SKIP LOCKED
),
retried AS (
    UPDATE {s}.jobs AS j SET {_for_retry("e.retry_at")}
    FROM ended AS e WHERE j.id = e.id AND e.retry_at IS NOT NULL
    RETURNING j.id
),
removed AS (
    DELETE FROM {s}.jobs AS j USING ended AS e WHERE j.id = e.id AND e.retry_at IS NULL
    RETURNING j.id
),
stored AS (
    INSERT INTO {s}.job_results ({_ENDED_RESULT_COLUMNS})
    SELECT id, task_id, schedule_id, scheduled_fire_time, outcome, started_at, $2,
           $2 + {expires}, attempt
    FROM ended WHERE id IN (SELECT id FROM removed) AND result_expiration_time > interval '0'
    ON CONFLICT (job_id) DO UPDATE SET {_UPDATE_RESULT}
)"""


def _startable_under_limits(s: str) -> str:
    # The CTEs of acquire_jobs that choose the jobs to lease (task_ok): pending, due,
    # not late, earliest first, and only as many per task and per schedule as their
    # limits leave room for next to the running jobs (live leases: the lapsed ones are
    # being ended and free their slots). A blocked job is filtered out, never counted
    # against the LIMIT, so it does not hold up other tasks' jobs.
    return f"""
running AS (
    SELECT task_id, schedule_id FROM {s}.jobs
    WHERE acquired_by IS NOT NULL AND acquired_until >= $2
),
task_running AS (SELECT task_id, count(*) AS n FROM running GROUP BY task_id),
schedule_running AS (
    SELECT schedule_id, count(*) AS n FROM running
    WHERE schedule_id IS NOT NULL GROUP BY schedule_id
),
pending AS (
    SELECT id, task_id, schedule_id, max_running_jobs, start_time, seq,
           row_number() OVER (PARTITION BY schedule_id ORDER BY start_time, seq) AS rank
    FROM {s}.jobs
    WHERE acquired_by IS NULL AND start_time <= $2
      AND (start_deadline IS NULL OR start_deadline >= $2)
),
schedule_ok AS (
    -- the schedule-level limit first, so that a job it holds back does not take a
    -- place in its task's ranking below (that would stall the task's other schedules)
    SELECT p.id, p.task_id, p.start_time, p.seq FROM pending AS p
    LEFT JOIN schedule_running AS r ON r.schedule_id = p.schedule_id
    WHERE p.schedule_id IS NULL OR p.max_running_jobs IS NULL
       OR coalesce(r.n, 0) + p.rank <= p.max_running_jobs
),
task_ok AS (
    SELECT o.id, o.start_time, o.seq FROM (
        SELECT *, row_number() OVER (PARTITION BY task_id ORDER BY start_time, seq) AS rank
        FROM schedule_ok
    ) AS o
    LEFT JOIN {s}.tasks AS t ON t.id = o.task_id
    LEFT JOIN task_running AS r ON r.task_id = o.task_id
    WHERE t.max_running_jobs IS NULL OR coalesce(r.n, 0) + o.rank <= t.max_running_jobs
    ORDER BY o.start_time, o.seq LIMIT $4
)"""


def _acquire_jobs(s: str) -> str:
    # $1 scheduler id, $2 now, $3 lease end, $4 limit, $5 also return the jobs that a
    # lost earlier attempt of this call leased (started_at = now, held by $1).
    # Runs after the acquire-jobs advisory lock (see PostgresDataStore.acquire_jobs), so
    # the running counts read here cannot change under it.
    return f"""
WITH {_end_lapsed_and_late(s)},
{_startable_under_limits(s)},
locked AS (
    SELECT id FROM {s}.jobs
    WHERE id IN (SELECT id FROM task_ok) AND acquired_by IS NULL
    FOR UPDATE SKIP LOCKED
),
acquired AS (
    UPDATE {s}.jobs AS j SET acquired_by = $1, acquired_until = $3, started_at = $2
    FROM locked WHERE j.id = locked.id AND j.id = ANY(ARRAY(SELECT id FROM locked))
    RETURNING {", ".join(f"j.{c}" for c in JOB_COLUMNS)}, j.seq
)
SELECT {_JOB_LIST}, seq, NULL::text AS outcome, NULL::timestamptz AS retry_at FROM acquired
UNION ALL
SELECT {_JOB_LIST}, seq, NULL, NULL FROM {s}.jobs
WHERE $5 AND acquired_by = $1 AND started_at = $2 AND acquired_until = $3
UNION ALL
SELECT {_JOB_LIST}, NULL, outcome, retry_at FROM ended
WHERE id IN (SELECT id FROM removed) OR id IN (SELECT id FROM retried)
"""


def _next_job_time(s: str) -> str:
    # A pending job counts only if its task and its schedule are below their running
    # limits (counted over every held lease: a lapsed one shows up through its lease
    # end below, which is in the past, so the caller wakes at once anyway). The running
    # jobs are few (bounded by the workers' capacity); blocked pending jobs are passed
    # over in start order with one hash probe each.
    return f"""
WITH running AS (
    SELECT task_id, schedule_id FROM {s}.jobs WHERE acquired_by IS NOT NULL
),
blocked_tasks AS (
    SELECT t.id FROM {s}.tasks AS t
    LEFT JOIN (SELECT task_id, count(*) AS n FROM running GROUP BY task_id) AS r
        ON r.task_id = t.id
    WHERE t.max_running_jobs <= coalesce(r.n, 0)
),
schedule_running AS (
    SELECT schedule_id, count(*) AS n FROM running
    WHERE schedule_id IS NOT NULL GROUP BY schedule_id
)
SELECT least(
    (SELECT j.start_time FROM {s}.jobs AS j
     LEFT JOIN schedule_running AS r ON r.schedule_id = j.schedule_id
     WHERE j.acquired_by IS NULL AND j.task_id NOT IN (SELECT id FROM blocked_tasks)
       AND (j.schedule_id IS NULL OR j.max_running_jobs IS NULL
            OR coalesce(r.n, 0) < j.max_running_jobs)
     ORDER BY j.start_time, j.seq LIMIT 1),
    (SELECT min(acquired_until) FROM {s}.jobs WHERE acquired_by IS NOT NULL)
        + interval '1 microsecond',
    (SELECT min(start_deadline) FROM {s}.jobs
     WHERE acquired_by IS NULL AND start_deadline IS NOT NULL)
        + interval '1 microsecond'
)
"""


def _release_jobs(s: str) -> str:
    # $1 scheduler ids, $2... the results' columns but expires_at: arrays with one element
    # per job (released together: jobs that finished at about the same time share one
    # statement and one commit). Fenced: only each job's holder deletes it; the rows are
    # locked in id order (as extend_leases locks them), so two statements of one node
    # never deadlock. The result is kept when the job has an expiration time, with
    # expires_at = finished_at + that time (set here, not by the caller), and the job's
    # started_at when the result has none.
    names = [name for name in JOB_RESULT_COLUMNS if name != "expires_at"]
    types = [
        kind
        for name, kind in zip(JOB_RESULT_COLUMNS, column_types(JOB_RESULT_FIELDS), strict=True)
        if name != "expires_at"
    ]
    released = _unnest(("scheduler_id", *names), ["text", *types], 1, "r")
    values = {name: f"r.{name}" for name in names}
    values["started_at"] = "coalesce(r.started_at, d.started_at)"
    values["expires_at"] = f"r.finished_at + {_SECONDS.format('d.expiration')}"
    return f"""
WITH released AS (SELECT * FROM {released}),
locked AS (
    SELECT j.id FROM {s}.jobs AS j
    JOIN released AS r ON j.id = r.job_id AND j.acquired_by = r.scheduler_id
    ORDER BY j.id FOR UPDATE OF j
),
deleted AS (
    DELETE FROM {s}.jobs AS j USING locked WHERE j.id = locked.id
    RETURNING j.id, j.task_id, j.schedule_id, j.scheduled_fire_time, j.started_at,
              j.result_expiration_time AS expiration
),
stored AS (
    INSERT INTO {s}.job_results ({_RESULT_LIST})
    SELECT {", ".join(values[name] for name in JOB_RESULT_COLUMNS)}
    FROM deleted AS d JOIN released AS r ON r.job_id = d.id
    WHERE d.expiration > interval '0'
    ON CONFLICT (job_id) DO UPDATE SET {_UPDATE_RESULT}
)
SELECT id, task_id, schedule_id, scheduled_fire_time, started_at, expiration FROM deleted
"""


def _release_job_retry(s: str) -> str:
    # $1 scheduler id, $2... the result's columns but expires_at (single values, job_id
    # first), then the retry time: release_job(..., retry_at=...), outside the batches
    # of release_jobs. Fenced like them. The held job's row is locked first and decides:
    # it becomes pending again as its next attempt (Job.for_retry) and no result is
    # stored, or, when its cancellation was requested, it ends with the result exactly
    # as release_jobs ends it. A cancel_job waiting on the lock then finds the job
    # pending again (and cancels it) or finds it gone. Returns the job's row as it was
    # (held) and whether it was retried.
    names = [name for name in JOB_RESULT_COLUMNS if name != "expires_at"]
    types = [
        kind
        for name, kind in zip(JOB_RESULT_COLUMNS, column_types(JOB_RESULT_FIELDS), strict=True)
        if name != "expires_at"
    ]
    values = dict(zip(names, (f"${2 + i}::{kind}" for i, kind in enumerate(types)), strict=True))
    job_id = values["job_id"]
    retry_at = f"${2 + len(names)}::timestamptz"
    values["started_at"] = f"coalesce({values['started_at']}, h.started_at)"
    values["expires_at"] = f"{values['finished_at']} + {_SECONDS.format('h.expiration')}"
    return f"""
WITH held AS (
    SELECT id, task_id, schedule_id, scheduled_fire_time, started_at,
           result_expiration_time AS expiration, cancel_requested IS TRUE AS ends
    FROM {s}.jobs WHERE id = {job_id} AND acquired_by = $1::text FOR UPDATE
),
retried AS (
    UPDATE {s}.jobs AS j SET {_for_retry(retry_at)}
    FROM held AS h WHERE j.id = h.id AND NOT h.ends
    RETURNING j.id
),
deleted AS (
    DELETE FROM {s}.jobs AS j USING held AS h WHERE j.id = h.id AND h.ends
    RETURNING j.id
),
stored AS (
    INSERT INTO {s}.job_results ({_RESULT_LIST})
    SELECT {", ".join(values[name] for name in JOB_RESULT_COLUMNS)} FROM held AS h
    WHERE h.id IN (SELECT id FROM deleted) AND h.expiration > interval '0'
    ON CONFLICT (job_id) DO UPDATE SET {_UPDATE_RESULT}
)
SELECT id, task_id, schedule_id, scheduled_fire_time, started_at, expiration,
       NOT ends AS retried
FROM held WHERE id IN (SELECT id FROM retried) OR id IN (SELECT id FROM deleted)
"""


def _cancel_job(s: str) -> str:
    # $1 job id, $2 now. The job's row is locked first (FOR UPDATE, waiting for an
    # acquire_jobs or release_job that holds it; a row they deleted meanwhile is not
    # found), so the decision is made on its newest version: a pending job, or one whose
    # lease lapsed, ends as cancelled (result stored as acquire_jobs stores those of the
    # jobs it ends); a running one gets cancel_requested. acquire_jobs locks with SKIP
    # LOCKED, so it passes over a job that is being cancelled. Returns the job's row as
    # it was, and whether it ended.
    expires = _SECONDS.format("result_expiration_time")
    return f"""
WITH target AS (
    SELECT {_JOB_LIST}, (acquired_by IS NULL OR acquired_until < $2::timestamptz) AS ended
    FROM {s}.jobs WHERE id = $1::uuid FOR UPDATE
),
removed AS (
    DELETE FROM {s}.jobs AS j USING target AS t WHERE j.id = t.id AND t.ended
    RETURNING j.id
),
stored AS (
    INSERT INTO {s}.job_results ({_ENDED_RESULT_COLUMNS})
    SELECT id, task_id, schedule_id, scheduled_fire_time, 'cancelled', started_at, $2,
           $2 + {expires}, attempt
    FROM target WHERE id IN (SELECT id FROM removed) AND result_expiration_time > interval '0'
    ON CONFLICT (job_id) DO UPDATE SET {_UPDATE_RESULT}
),
requested AS (
    UPDATE {s}.jobs AS j SET cancel_requested = true
    FROM target AS t WHERE j.id = t.id AND NOT t.ended
    RETURNING j.id
)
SELECT {_JOB_LIST}, ended FROM target
WHERE id IN (SELECT id FROM removed) OR id IN (SELECT id FROM requested)
"""


def _prune_fires(s: str) -> str:
    # $1 the cutoff. Raise each schedule's floor to its newest fire time older than the
    # cutoff, then delete its fire rows at or below the floor, in one transaction and
    # under the floor row's lock (taken in id order, as release_schedules takes it), so
    # that every deleted row stays covered by the floor. Every schedule that has fire
    # rows has a floor row; the newest old fire time of each is one backward step on
    # the primary key of fires.
    return f"""
WITH old AS (
    SELECT f.schedule_id, (
        SELECT max(x.fire_time) FROM {s}.fires AS x
        WHERE x.schedule_id = f.schedule_id AND x.fire_time < $1
    ) AS upto
    FROM {s}.fire_floors AS f
),
locked AS (
    SELECT f.schedule_id, old.upto
    FROM {s}.fire_floors AS f JOIN old ON old.schedule_id = f.schedule_id
    WHERE old.upto > f.floor
    ORDER BY f.schedule_id FOR UPDATE OF f
),
raised AS (
    UPDATE {s}.fire_floors AS f SET floor = greatest(f.floor, l.upto)
    FROM locked AS l WHERE f.schedule_id = l.schedule_id
    RETURNING f.schedule_id, f.floor
)
DELETE FROM {s}.fires AS x USING raised AS r
WHERE x.schedule_id = r.schedule_id AND x.fire_time <= r.floor
"""


class Queries:
    """Every statement of the store, for the (already quoted) schema *s*."""

    def __init__(self, s: str) -> None:
        self.acquire_schedules = _acquire_schedules(s)
        self.release_schedules = _release_schedules(s)
        self.acquire_jobs = _acquire_jobs(s)
        self.next_job_time = _next_job_time(s)
        self.release_jobs = _release_jobs(s)
        self.prune_fires = _prune_fires(s)
        self.end_jobs = _end_jobs(s)
        self.release_job_retry = _release_job_retry(s)
        self.cancel_job = _cancel_job(s)
        # BEGIN and the acquire_jobs advisory lock, sent together in one round trip
        # (simple protocol, so the key is a literal: 64 bits derived from the schema)
        key = hashlib.blake2b(f"horae:{s}:acquire_jobs".encode(), digest_size=8).digest()
        lock_key = int.from_bytes(key, "big", signed=True)
        self.begin_acquire_jobs = f"BEGIN; SELECT pg_advisory_xact_lock({lock_key})"
        self._task_statements(s)
        self._schedule_statements(s)
        self._job_statements(s)

    def _task_statements(self, s: str) -> None:
        task_types = column_types(TASK_FIELDS)
        self.put_task = (
            f"INSERT INTO {s}.tasks ({_TASK_LIST}) VALUES ({_placeholders(task_types, 1)}) "
            f"ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in TASK_COLUMNS if c != "id")
            + " RETURNING (xmax = 0) AS inserted"
        )
        self.delete_task = f"DELETE FROM {s}.tasks WHERE id = $1 RETURNING id"
        self.select_task = f"SELECT {_TASK_LIST} FROM {s}.tasks WHERE id = $1"
        self.select_tasks = f"SELECT {_TASK_LIST} FROM {s}.tasks ORDER BY id"

    def _schedule_statements(self, s: str) -> None:
        schedule_values = _placeholders(column_types(SCHEDULE_FIELDS), 1)
        insert_schedule = (
            f"INSERT INTO {s}.schedules ({_SCHEDULE_LIST}) VALUES ({schedule_values}) "
        )
        self.insert_schedule = insert_schedule + "ON CONFLICT (id) DO NOTHING RETURNING true"
        self.replace_schedule = (
            insert_schedule
            + "ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in SCHEDULE_COLUMNS if c != "id")
            + " RETURNING (xmax = 0) AS inserted"
        )
        self.same_schedule = (
            f"SELECT ROW({_SCHEDULE_LIST}) IS NOT DISTINCT FROM ROW({schedule_values}) "
            f"FROM {s}.schedules WHERE id = $1"
        )
        # rows are locked in id order, as release_schedules locks them: no deadlock
        self.delete_schedules = (
            f"DELETE FROM {s}.schedules WHERE id IN (SELECT id FROM {s}.schedules "
            f"WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE) RETURNING id, task_id"
        )
        self.select_schedules = f"SELECT {_SCHEDULE_LIST} FROM {s}.schedules ORDER BY id"
        self.select_schedules_by_id = (
            f"SELECT {_SCHEDULE_LIST} FROM {s}.schedules WHERE id = ANY($1::text[]) ORDER BY id"
        )
        self.pause_schedule = (
            f"UPDATE {s}.schedules SET paused = true, pause_reason = $2, paused_until = $3 "
            f"WHERE id = $1 RETURNING {_SCHEDULE_LIST}"
        )
        self.unpause_schedule = (
            f"UPDATE {s}.schedules SET paused = false, pause_reason = NULL, "
            f"paused_until = NULL, next_fire_time = coalesce($2, next_fire_time) "
            f"WHERE id = $1 RETURNING {_SCHEDULE_LIST}"
        )
        # the first moment acquire_schedules may find work; each part is one index probe
        self.next_schedule_time = f"""
SELECT least(
    (SELECT next_fire_time FROM {s}.schedules WHERE NOT paused AND acquired_by IS NULL
     ORDER BY next_fire_time, id LIMIT 1),
    (SELECT min(paused_until) FROM {s}.schedules WHERE paused),
    (SELECT min(acquired_until) FROM {s}.schedules
     WHERE acquired_by IS NOT NULL AND NOT paused) + interval '1 microsecond'
)"""

    def _job_statements(self, s: str) -> None:
        self.insert_jobs = (
            f"INSERT INTO {s}.jobs ({_JOB_LIST}) SELECT * FROM "
            f"{_unnest(JOB_COLUMNS, column_types(JOB_FIELDS), 1, 'j')} "
            f"ON CONFLICT (id) DO NOTHING RETURNING id, task_id, schedule_id"
        )
        self.select_jobs = f"SELECT {_JOB_LIST} FROM {s}.jobs ORDER BY start_time, seq"
        self.select_jobs_by_id = (
            f"SELECT {_JOB_LIST} FROM {s}.jobs WHERE id = ANY($1::uuid[]) ORDER BY start_time, seq"
        )
        # served by jobs_schedule (all jobs of a schedule, pending or running)
        self.select_schedule_jobs = (
            f"SELECT {_JOB_LIST} FROM {s}.jobs WHERE schedule_id = ANY($1::text[]) "
            f"ORDER BY start_time, seq"
        )
        # the next attempt that a lost attempt of a release_job with retry_at made: $1
        # job id, $2 the released attempt, $3 the retry time
        self.select_own_retry = (
            f"SELECT id, task_id, schedule_id, scheduled_fire_time, "
            f"NULL::timestamptz AS started_at, result_expiration_time AS expiration, "
            f"true AS retried FROM {s}.jobs "
            f"WHERE id = $1::uuid AND attempt = $2::integer + 1 AND start_time = $3::timestamptz"
        )
        # rows are locked in id order, as release_jobs locks them: no deadlock
        self.extend_leases = (
            f"UPDATE {s}.jobs SET acquired_until = $3 WHERE id IN (SELECT id FROM {s}.jobs "
            f"WHERE id = ANY($2::uuid[]) AND acquired_by = $1 ORDER BY id FOR UPDATE) "
            f"AND acquired_by = $1 RETURNING id"
        )
        self.select_result = (
            f"SELECT {_RESULT_LIST}, EXISTS (SELECT 1 FROM {s}.jobs WHERE id = $1) "
            f"AS job_exists FROM (SELECT 1) AS one "
            f"LEFT JOIN {s}.job_results ON job_id = $1"
        )
        # the results that lost attempts of a release_jobs stored: $1 job ids, $2
        # outcomes, $3 finish times
        self.select_own_results = (
            f"SELECT job_id AS id, task_id, schedule_id, scheduled_fire_time, started_at, "
            f"expires_at - finished_at AS expiration FROM {s}.job_results "
            f"JOIN unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS w(id, outcome, at) "
            f"ON job_id = w.id AND job_results.outcome = w.outcome AND finished_at = w.at"
        )
        self.delete_expired_results = f"DELETE FROM {s}.job_results WHERE expires_at <= $1"


def _end_jobs(s: str) -> str:
    # $1 job ids, $2... result columns as arrays: ends jobs that were leased but cannot
    # be decoded (inside the acquire_jobs transaction, so no worker ever holds them).
    results = _unnest(JOB_RESULT_COLUMNS, column_types(JOB_RESULT_FIELDS), 2, "r")
    return f"""
WITH deleted AS (DELETE FROM {s}.jobs WHERE id = ANY($1::uuid[]) RETURNING id)
INSERT INTO {s}.job_results ({_RESULT_LIST})
SELECT {_RESULT_LIST} FROM {results} WHERE job_id IN (SELECT id FROM deleted)
ON CONFLICT (job_id) DO UPDATE SET {_UPDATE_RESULT}
"""
