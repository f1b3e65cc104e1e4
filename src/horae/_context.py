"""The context variables that tell a running job which job it is and which scheduler runs it.

Both are set by the worker for the duration of one job: in the job's own task for
coroutine functions, in the worker thread for thread-pool jobs (the context is copied
into the thread) and, for ``current_job`` only, in the worker process for process-pool
jobs. Outside a job ``get()`` raises :exc:`LookupError`.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from ._structures import Job

if TYPE_CHECKING:
    from ._scheduler import AsyncScheduler

#: The :class:`~horae.Job` being run (set inside every job).
current_job: ContextVar[Job] = ContextVar("current_job")

#: The :class:`~horae.AsyncScheduler` running the current job (set in async and thread
#: jobs, not in process-pool jobs, where the scheduler lives in another process).
current_scheduler: ContextVar[AsyncScheduler] = ContextVar("current_scheduler")
