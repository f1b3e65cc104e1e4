"""ProcessPoolJobExecutor: runs importable plain functions in worker processes."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.to_process
import attrs

from horae._context import current_job
from horae._structures import Job

from ._base import JobExecutor
from .thread import is_worker_count


def _job_state(job: Job) -> dict[str, Any]:
    # Job's mappings are read-only proxies, which pickle refuses; plain dicts are
    # frozen again by Job's converters in the worker.
    state: dict[str, Any] = {}
    for field in attrs.fields(Job):
        value = getattr(job, field.name)
        state[field.name] = dict(value) if isinstance(value, Mapping) else value
    return state


def _run_in_worker(func: Callable[..., Any], job_state: dict[str, Any]) -> Any:
    """Runs inside the worker process: sets ``current_job`` and calls the job."""
    job = Job(**job_state)
    token = current_job.set(job)
    try:
        return func(*job.args, **job.kwargs)
    finally:
        current_job.reset(token)


class ProcessPoolJobExecutor(JobExecutor):
    """Runs a job's callable in a worker process (the ``"processpool"`` executor).

    Args:
        max_workers: at most this many jobs of this executor run at once (the default
            is the number of CPUs).

    Uses :func:`anyio.to_process.run_sync`: worker processes are started on demand,
    reused between jobs and closed when the event loop ends. The callable is sent by
    reference (pickle), so it must be importable: a module-level function, not a lambda
    or closure. Its arguments and return value must be picklable too. ``current_job`` is
    set inside the job; ``current_scheduler`` is not (the scheduler lives in the parent
    process). When the job is cancelled (stop grace period over, timeout) its worker
    process is killed. Note that anyio's workers talk to the parent over their standard
    streams, so what a process job prints is discarded: log instead.
    """

    __slots__ = ("_limiter", "_max_workers")

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        if not is_worker_count(max_workers):
            raise ValueError(f"max_workers must be a positive integer, got {max_workers!r}")
        self._max_workers = max_workers
        self._limiter: anyio.CapacityLimiter | None = None

    def __repr__(self) -> str:
        return f"ProcessPoolJobExecutor(max_workers={self._max_workers})"

    @property
    def max_workers(self) -> int:
        """How many jobs may run at once."""
        return self._max_workers

    async def start(self, exit_stack: AsyncExitStack) -> None:
        """Create the capacity limiter (it belongs to the running event loop)."""
        self._limiter = anyio.CapacityLimiter(self._max_workers)

    async def run_job(self, func: Callable[..., Any], job: Job) -> Any:
        """Run ``func(*job.args, **job.kwargs)`` in a worker process and return its result."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._max_workers)
        call = functools.partial(_run_in_worker, func, _job_state(job))
        return await anyio.to_process.run_sync(call, cancellable=True, limiter=self._limiter)
