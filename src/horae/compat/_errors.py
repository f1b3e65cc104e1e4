"""The exceptions of :mod:`horae.compat`: APScheduler 3's, each also a horae exception, so
both ``except KeyError`` (APScheduler 3 style) and ``except horae.JobLookupError`` work."""

from __future__ import annotations

from horae._exceptions import ConflictingIdError as _HoraeConflictingIdError
from horae._exceptions import HoraeError
from horae._exceptions import JobLookupError as _HoraeJobLookupError


class JobLookupError(_HoraeJobLookupError, KeyError):
    """No job with this id was found (``remove_job``, ``modify_job``, ...).

    ``str()`` is APScheduler 3's: ``'No job by the id of <id> was found'``.

    Attributes:
        job_id: the id that was looked for.
    """

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id
        self.args = (f"No job by the id of {job_id} was found",)

    def __str__(self) -> str:
        return KeyError.__str__(self)


class ConflictingIdError(_HoraeConflictingIdError):
    """A job with this id already exists in the job store (``add_job`` without
    ``replace_existing=True``).

    Attributes:
        job_id: the conflicting id.
    """

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id
        self.args = (
            f"Job identifier ({job_id}) conflicts with an existing job; pass "
            f"replace_existing=True to replace it",
        )

    def __str__(self) -> str:
        return KeyError.__str__(self)


class SchedulerAlreadyRunningError(HoraeError):
    """``start()`` or ``configure()`` was called on a scheduler that is running."""

    def __str__(self) -> str:
        return "Scheduler is already running"


class SchedulerNotRunningError(HoraeError):
    """``shutdown()``, ``pause()`` or ``resume()`` was called on a stopped scheduler."""

    def __str__(self) -> str:
        return "Scheduler is not running"
