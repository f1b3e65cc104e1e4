"""The data model: Task, Schedule, Job and JobResult (frozen attrs; change with attrs.evolve).

Every datetime here is timezone-aware. Fields named ``*_time`` are instants; durations
are ``timedelta``. Stores persist these objects field by field (see ``to_dict`` in the
serializers), so the field names are part of the storage format: rename with care.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid4

import attrs

from ._enums import CoalescePolicy, JobOutcome, OverlapPolicy
from .triggers._base import Trigger

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _as_utc(value: datetime) -> datetime:
    # differences of aware datetimes that share a tzinfo ignore DST changes between them
    return value.astimezone(timezone.utc)


def _freeze_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _EMPTY if not value else MappingProxyType(dict(value))


def _freeze_tuple(value: Any) -> tuple[Any, ...]:
    return () if value is None else tuple(value)


def _check_attempts(_: Any, attribute: attrs.Attribute[int], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1, not {value!r}")


def _check_duration(_: Any, attribute: attrs.Attribute[timedelta], value: Any) -> None:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ValueError(f"{attribute.name} must be a timedelta >= 0, not {value!r}")


def _check_retry_on(_: Any, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    if not value or not all(
        isinstance(item, type) and issubclass(item, BaseException) for item in value
    ):
        raise ValueError(
            f"{attribute.name} must be a non-empty tuple of exception classes, not {value!r}"
        )


def _exception_tuple(value: Any) -> tuple[Any, ...]:
    return (value,) if isinstance(value, type) else tuple(value)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a failed job is retried: up to ``max_attempts`` attempts in all, waiting
    ``backoff * 2**(attempt-1)`` (capped at ``max_backoff``) between them, for
    exceptions that are instances of ``retry_on``.

    With ``jitter`` each wait is drawn uniformly from the upper half of that value
    (``[d/2, d]``), so that jobs failing together do not all retry at the same instant
    while the back-off still grows. A job abandoned by a dead node is retried under the
    same policy whatever ``retry_on`` says (there is no exception to match).
    """

    max_attempts: int = attrs.field(default=3, validator=_check_attempts)
    backoff: timedelta = attrs.field(default=timedelta(seconds=1), validator=_check_duration)
    max_backoff: timedelta = attrs.field(default=timedelta(minutes=5), validator=_check_duration)
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = attrs.field(
        default=(Exception,), converter=_exception_tuple, validator=_check_retry_on
    )

    def retries(self, attempt: int, exception: BaseException | None) -> bool:
        """True if a job whose attempt number *attempt* ended with *exception* (``None``:
        abandoned) gets another attempt."""
        if attempt >= self.max_attempts:
            return False
        return exception is None or isinstance(exception, self.retry_on)

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """The wait before the attempt after *attempt* (1-based)."""
        # 2**62 already exceeds any timedelta; cap the exponent before multiplying
        factor = 2 ** min(attempt - 1, 62)
        limit = self.max_backoff.total_seconds()
        seconds = min(self.backoff.total_seconds() * factor, limit)
        if self.jitter and seconds > 0:
            seconds = (rng or random).uniform(seconds / 2, seconds)
        return timedelta(seconds=seconds)


@attrs.frozen(kw_only=True)
class Task:
    """A unit of work: a callable plus the defaults its jobs run with.

    Attributes:
        id: unique task id (by default the callable's ``"module:qualname"``).
        func_ref: ``"module:qualname"`` of the callable, or ``None`` when it cannot be
            imported back (a lambda or closure; only the memory store accepts that).
        job_executor: name of the executor that runs its jobs (``"async"``,
            ``"threadpool"``, ``"processpool"`` or a user-registered one).
        max_running_jobs: at most this many jobs of the task run at once, across all
            nodes (``None`` = no limit).
        misfire_grace_time: default start deadline of its jobs (``None`` = no limit).
        job_timeout: a running job is stopped after this long (``None`` = never).
        retry: retry policy for failed jobs (``None`` = no retries).
        metadata: free-form JSON-safe data.
    """

    id: str
    func_ref: str | None = None
    job_executor: str = "threadpool"
    max_running_jobs: int | None = None
    misfire_grace_time: timedelta | None = None
    job_timeout: timedelta | None = None
    retry: RetryPolicy | None = None
    metadata: Mapping[str, Any] = attrs.field(default=_EMPTY, converter=_freeze_mapping)


@attrs.frozen(kw_only=True)
class Schedule:
    """A trigger bound to a task, with the arguments and policies for its jobs.

    ``next_fire_time`` is ``None`` only for a schedule whose trigger is exhausted (it is
    then removed). ``acquired_by``/``acquired_until`` is the lease of the node that is
    turning the schedule's due fire times into jobs; nobody else may advance it then.
    """

    id: str
    task_id: str
    trigger: Trigger
    args: tuple[Any, ...] = attrs.field(default=(), converter=_freeze_tuple)
    kwargs: Mapping[str, Any] = attrs.field(default=_EMPTY, converter=_freeze_mapping)
    paused: bool = False
    pause_reason: str | None = None
    paused_until: datetime | None = None
    job_executor: str | None = None
    coalesce: CoalescePolicy = CoalescePolicy.latest
    misfire_grace_time: timedelta | None = None
    max_jitter: timedelta | None = None
    max_running_jobs: int | None = None
    job_timeout: timedelta | None = None
    retry: RetryPolicy | None = None
    overlap: OverlapPolicy = OverlapPolicy.allow
    max_catchup: int | None = None
    job_result_expiration_time: timedelta = timedelta(0)
    metadata: Mapping[str, Any] = attrs.field(default=_EMPTY, converter=_freeze_mapping)
    next_fire_time: datetime | None = None
    last_fire_time: datetime | None = None
    acquired_by: str | None = None
    acquired_until: datetime | None = None


@attrs.frozen(kw_only=True)
class Job:
    """One run of a task, made by a schedule fire, ``add_job`` or ``run_job``.

    Attributes:
        scheduled_fire_time: the fire time that made it (``None`` for ad-hoc jobs).
        start_time: the earliest moment it may start (fire time plus jitter, or the
            retry back-off); workers acquire jobs in this order.
        start_deadline: if it cannot start by then it ends as
            ``JobOutcome.missed_start_deadline`` (``None`` = no deadline).
        attempt: 1 for the first run, 2 for the first retry, ...
        acquired_by/acquired_until: the worker's lease while it runs the job.
        cancel_requested: ``cancel_job`` was called while the job ran; the node
            running it cancels it (it is never retried).
    """

    id: UUID = attrs.field(factory=uuid4)
    task_id: str
    args: tuple[Any, ...] = attrs.field(default=(), converter=_freeze_tuple)
    kwargs: Mapping[str, Any] = attrs.field(default=_EMPTY, converter=_freeze_mapping)
    schedule_id: str | None = None
    scheduled_fire_time: datetime | None = None
    jitter: timedelta = timedelta(0)
    start_time: datetime
    start_deadline: datetime | None = None
    job_executor: str | None = None
    max_running_jobs: int | None = None
    job_timeout: timedelta | None = None
    retry: RetryPolicy | None = None
    attempt: int = 1
    result_expiration_time: timedelta = timedelta(0)
    created_at: datetime
    metadata: Mapping[str, Any] = attrs.field(default=_EMPTY, converter=_freeze_mapping)
    acquired_by: str | None = None
    acquired_until: datetime | None = None
    started_at: datetime | None = None
    cancel_requested: bool = False

    def for_retry(self, retry_at: datetime) -> Job:
        """This job as its next attempt: pending from *retry_at*, the start deadline
        moved by as much as the start time, no lease (see ``DataStore.release_job``)."""
        deadline = self.start_deadline
        if deadline is not None:
            shift = _as_utc(retry_at) - _as_utc(self.start_time)
            deadline = (_as_utc(deadline) + shift).astimezone(deadline.tzinfo)
        return attrs.evolve(
            self,
            attempt=self.attempt + 1,
            start_time=retry_at,
            start_deadline=deadline,
            acquired_by=None,
            acquired_until=None,
            started_at=None,
            cancel_requested=False,
        )


@attrs.frozen(kw_only=True)
class JobResult:
    """How a job ended. Kept until ``expires_at`` (then removed by cleanup).

    ``exception`` is the exception object where the store can keep it (the memory store
    always; persistent stores when the serializer can encode it); ``exception_type`` and
    ``exception_message`` are always set for failed jobs, so results stay readable
    everywhere.
    """

    job_id: UUID
    task_id: str
    schedule_id: str | None = None
    scheduled_fire_time: datetime | None = None
    outcome: JobOutcome
    started_at: datetime | None = None
    finished_at: datetime
    expires_at: datetime
    attempt: int = 1
    return_value: Any = None
    exception: BaseException | None = attrs.field(default=None, eq=False)
    exception_type: str | None = None
    exception_message: str | None = None
