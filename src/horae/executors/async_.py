"""AsyncJobExecutor: runs coroutine functions as tasks on the scheduler's event loop."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from horae._structures import Job

from ._base import JobExecutor


class AsyncJobExecutor(JobExecutor):
    """Runs a job's coroutine function on the event loop (the ``"async"`` executor).

    The job runs in the worker's own task, so cancelling it (stop, timeout) cancels the
    coroutine at its next ``await``. A plain function given to this executor is called
    on the event loop thread, and its result is awaited if it is awaitable; it must not
    block.
    """

    __slots__ = ()

    async def run_job(self, func: Callable[..., Any], job: Job) -> Any:
        """Call ``func(*job.args, **job.kwargs)`` and await the result if needed."""
        result = func(*job.args, **job.kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result
