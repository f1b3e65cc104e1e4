"""The events and results that every store builds the same way (one place, so that the
stores cannot drift apart in what their events say)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from horae._enums import JobOutcome
from horae._structures import Job, JobResult
from horae.events import JobAcquired, JobReleased


def job_acquired_events(
    jobs: Iterable[Job], scheduler_id: str, now: datetime
) -> list[JobAcquired]:
    """One ``JobAcquired`` per job that *scheduler_id* acquired at *now*."""
    return [
        JobAcquired(
            timestamp=now,
            job_id=job.id,
            scheduler_id=scheduler_id,
            task_id=job.task_id,
            schedule_id=job.schedule_id,
            scheduled_fire_time=job.scheduled_fire_time,
        )
        for job in jobs
    ]


def ended_result(job: Job, outcome: JobOutcome, now: datetime) -> JobResult:
    """The result of a job that the store ends itself at *now* (missed, abandoned,
    cancelled): no value, no exception."""
    return JobResult(
        job_id=job.id,
        task_id=job.task_id,
        schedule_id=job.schedule_id,
        scheduled_fire_time=job.scheduled_fire_time,
        outcome=outcome,
        started_at=job.started_at,
        finished_at=now,
        expires_at=now + job.result_expiration_time,
        attempt=job.attempt,
    )


def job_released(
    job: Job,
    result: JobResult,
    scheduler_id: str | None,
    now: datetime,
    retry_at: datetime | None = None,
) -> JobReleased:
    """The ``JobReleased`` of *job*'s attempt that ended with *result*."""
    return JobReleased(
        timestamp=now,
        job_id=job.id,
        scheduler_id=scheduler_id,
        task_id=job.task_id,
        schedule_id=job.schedule_id,
        outcome=result.outcome,
        scheduled_fire_time=job.scheduled_fire_time,
        started_at=result.started_at,
        finished_at=result.finished_at,
        exception_type=result.exception_type,
        exception_message=result.exception_message,
        attempt=result.attempt,
        retry_at=retry_at,
    )
