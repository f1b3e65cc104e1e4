"""ThreadPoolJobExecutor: runs plain functions on worker threads (the default for them)."""

from __future__ import annotations

import contextvars
import functools
import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.to_thread

from horae._structures import Job

from ._base import JobExecutor


def is_worker_count(value: object) -> bool:
    """True for an ``int`` (not a ``bool``) of at least 1."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def default_thread_count() -> int:
    """The default size of the thread pool: ``min(32, cpus + 4)``, as
    :class:`concurrent.futures.ThreadPoolExecutor` chooses."""
    return min(32, (os.cpu_count() or 1) + 4)


class ThreadPoolJobExecutor(JobExecutor):
    """Runs a job's callable in a worker thread (the ``"threadpool"`` executor).

    Args:
        max_workers: at most this many jobs of this executor run at once; further jobs
            wait for a thread (the default is ``min(32, cpus + 4)``).

    The job runs through :func:`anyio.to_thread.run_sync` under this executor's own
    :class:`anyio.CapacityLimiter`, in a copy of the caller's context, so
    ``current_job`` and ``current_scheduler`` are set inside it. Python cannot stop a
    thread: when the job is cancelled (stop grace period over, timeout) the thread is
    *abandoned*, it runs on to its end unobserved and its result is ignored, and its slot
    in the pool is freed at once.
    """

    __slots__ = ("_limiter", "_max_workers")

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = default_thread_count()
        if not is_worker_count(max_workers):
            raise ValueError(f"max_workers must be a positive integer, got {max_workers!r}")
        self._max_workers = max_workers
        self._limiter: anyio.CapacityLimiter | None = None

    def __repr__(self) -> str:
        return f"ThreadPoolJobExecutor(max_workers={self._max_workers})"

    @property
    def max_workers(self) -> int:
        """How many jobs may run at once."""
        return self._max_workers

    async def start(self, exit_stack: AsyncExitStack) -> None:
        """Create the capacity limiter (it belongs to the running event loop)."""
        self._limiter = anyio.CapacityLimiter(self._max_workers)

    async def run_job(self, func: Callable[..., Any], job: Job) -> Any:
        """Run ``func(*job.args, **job.kwargs)`` in a worker thread and return its result."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._max_workers)
        call = functools.partial(func, *job.args, **job.kwargs)
        # anyio copies the context into the thread as well; copying it here keeps that
        # guarantee explicit (current_job must be visible inside the job).
        context = contextvars.copy_context()
        return await anyio.to_thread.run_sync(
            context.run, call, abandon_on_cancel=True, limiter=self._limiter
        )
