"""The JobExecutor interface: runs a job's callable somewhere (loop, thread, process)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from horae._structures import Job


class JobExecutor(ABC):
    """Runs one job's callable and returns its value (or raises its exception).

    Contract: ``start(exit_stack)`` is called once by the scheduler before the first job
    (resources it opens are closed through *exit_stack*); ``run_job(func, job)`` calls
    ``func(*job.args, **job.kwargs)`` and returns the result. It must honour
    cancellation: when the awaiting task is cancelled (stop, timeout, ``cancel_job``) it
    stops the job where it can (async: cancel; process: kill the worker; thread: the
    thread is abandoned and its result ignored) and re-raises the cancellation.
    """

    __slots__ = ()

    async def start(self, exit_stack: AsyncExitStack) -> None:  # noqa: B027 - optional hook
        """Open resources (thread or process pools); the default opens none."""

    @abstractmethod
    async def run_job(self, func: Callable[..., Any], job: Job) -> Any:
        """Run *func* with the job's arguments and return what it returns."""
