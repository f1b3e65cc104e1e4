"""The exception tree of horae: every error the public API raises.

Each leaf also subclasses the matching builtin, so both ``except HoraeError`` and
``except LookupError`` styles work::

    HoraeError
    ├── ConfigurationError(HoraeError, ValueError)
    ├── ConflictingIdError(HoraeError, KeyError)
    ├── ScheduleLookupError(HoraeError, LookupError)
    ├── TaskLookupError(HoraeError, LookupError)
    ├── JobLookupError(HoraeError, LookupError)
    ├── JobResultNotReady(HoraeError, LookupError)
    ├── JobCancelled(HoraeError)
    ├── JobDeadlineMissed(HoraeError)
    ├── SchedulerClosedError(HoraeError, RuntimeError)
    ├── SerializationError(HoraeError, ValueError)
    ├── DeserializationError(HoraeError, ValueError)
    ├── DataStoreError(HoraeError, ConnectionError)
    │   └── SchemaVersionError(DataStoreError)
    └── EventBrokerError(HoraeError, ConnectionError)
"""

from __future__ import annotations

from typing import Any


class HoraeError(Exception):
    """The root of every exception that horae raises on its own account."""


class ConfigurationError(HoraeError, ValueError):
    """A scheduler, store, broker or executor was configured wrongly.

    Raised, for example, for an unknown data store alias or job executor name.
    """


class ConflictingIdError(HoraeError, KeyError):
    """A schedule or job with this id already exists (``ConflictPolicy.exception``)."""

    def __init__(self, schedule_id: str) -> None:
        super().__init__(schedule_id)
        self.schedule_id = schedule_id

    def __str__(self) -> str:
        return (
            f"a schedule with the id {self.schedule_id!r} already exists; pass "
            f"conflict_policy=ConflictPolicy.replace to overwrite it, or choose another id"
        )


class _IdLookupError(HoraeError, LookupError):
    _what = "object"

    def __init__(self, object_id: Any) -> None:
        super().__init__(object_id)
        #: the id that was not found
        self.id = object_id

    def __str__(self) -> str:
        return f"no {self._what} with the id {self.id!r} was found"


class ScheduleLookupError(_IdLookupError):
    """No schedule with the given id exists in the data store."""

    _what = "schedule"


class TaskLookupError(_IdLookupError):
    """No task with the given id exists in the data store."""

    _what = "task"


class JobLookupError(_IdLookupError):
    """No job (or job result) with the given id exists in the data store."""

    _what = "job"


class JobResultNotReady(HoraeError, LookupError):
    """``get_job_result(job_id, wait=False)`` was asked for a job that has not finished."""

    def __init__(self, job_id: Any) -> None:
        super().__init__(job_id)
        self.job_id = job_id

    def __str__(self) -> str:
        return (
            f"job {self.job_id!r} has not finished yet; call get_job_result(job_id, wait=True) "
            f"to wait for it"
        )


class JobCancelled(HoraeError):
    """Raised by ``run_job``/``get_job_result`` when the job was cancelled."""


class JobDeadlineMissed(HoraeError):
    """Raised by ``run_job``/``get_job_result`` when the job missed its start deadline."""


class SchedulerClosedError(HoraeError, RuntimeError):
    """A method of the synchronous :class:`~horae.Scheduler` was called after ``close()``.

    A closed facade has ended its event loop thread and closed its services for good;
    create a new ``Scheduler`` to schedule again.
    """


class SerializationError(HoraeError, ValueError):
    """A value (arguments, a callable reference, a trigger) could not be serialized."""


class DeserializationError(HoraeError, ValueError):
    """Stored data could not be turned back into objects."""


class DataStoreError(HoraeError, ConnectionError):
    """A data store failed in a way that retrying cannot fix on its own."""


class SchemaVersionError(DataStoreError):
    """The store was created by a newer version of horae than this one."""


class EventBrokerError(HoraeError, ConnectionError):
    """An event broker cannot reach its server when it starts.

    Once started, a broker never raises this: it reconnects by itself, and the
    scheduler polls while it is away.
    """
