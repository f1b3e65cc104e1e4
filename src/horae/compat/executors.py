"""APScheduler 3's executors, each describing the horae job executor that runs jobs.

Plain functions run on the horae executor that the compat executor makes (a thread pool,
a process pool, or inline); coroutine functions always run on an event loop: the
:class:`~horae.compat.AsyncIOScheduler`'s loop, or else the scheduler's own loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from horae.executors._base import JobExecutor
from horae.executors.async_ import AsyncJobExecutor
from horae.executors.process import ProcessPoolJobExecutor
from horae.executors.thread import ThreadPoolJobExecutor

__all__ = (
    "AsyncIOExecutor",
    "BaseExecutor",
    "DebugExecutor",
    "HoraeExecutor",
    "ProcessPoolExecutor",
    "ThreadPoolExecutor",
)


class BaseExecutor:
    """The base of the compat executors: :meth:`make_job_executor` makes the horae
    executor for plain functions (a new one for every start of the scheduler)."""

    def make_job_executor(self) -> JobExecutor:
        """The horae executor that runs this executor's plain functions."""
        raise NotImplementedError(f"{type(self).__name__} makes no job executor")

    def shutdown(self, wait: bool = True) -> None:
        """Kept for APScheduler 3 code; the scheduler shuts executors down itself."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class ThreadPoolExecutor(BaseExecutor):
    """Runs jobs in a pool of threads (horae's ``ThreadPoolJobExecutor``).

    Args:
        max_workers: at most this many jobs run at once.
        pool_kwargs: accepted for APScheduler 3 code; not used.
    """

    def __init__(
        self, max_workers: int | str = 10, pool_kwargs: Mapping[str, Any] | None = None
    ) -> None:
        self.max_workers = int(max_workers)

    def make_job_executor(self) -> JobExecutor:
        """A thread pool of ``max_workers`` threads."""
        return ThreadPoolJobExecutor(self.max_workers)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (max_workers={self.max_workers})>"


class ProcessPoolExecutor(BaseExecutor):
    """Runs jobs in a pool of worker processes (horae's ``ProcessPoolJobExecutor``):
    the function must be importable and its arguments picklable.

    Args:
        max_workers: at most this many jobs run at once.
        pool_kwargs: accepted for APScheduler 3 code; not used.
    """

    def __init__(
        self, max_workers: int | str = 10, pool_kwargs: Mapping[str, Any] | None = None
    ) -> None:
        self.max_workers = int(max_workers)

    def make_job_executor(self) -> JobExecutor:
        """A process pool of ``max_workers`` processes."""
        return ProcessPoolJobExecutor(self.max_workers)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (max_workers={self.max_workers})>"


class AsyncIOExecutor(BaseExecutor):
    """Runs coroutine functions on the event loop and plain functions in threads (the
    default of :class:`~horae.compat.AsyncIOScheduler`)."""

    def make_job_executor(self) -> JobExecutor:
        """A thread pool of the default size, for plain functions."""
        return ThreadPoolJobExecutor()


class DebugExecutor(BaseExecutor):
    """Runs plain functions directly on the scheduler's event loop thread (they block it
    while they run: for debugging only)."""

    def make_job_executor(self) -> JobExecutor:
        """horae's async executor, which calls plain functions inline."""
        return AsyncJobExecutor()


class HoraeExecutor(BaseExecutor):
    """Any horae job executor used as an APScheduler 3 executor.

    Args:
        job_executor: the horae executor (used for every start of the scheduler).
    """

    def __init__(self, job_executor: JobExecutor) -> None:
        if not isinstance(job_executor, JobExecutor):
            raise TypeError(f"expected a horae JobExecutor, not {type(job_executor).__name__}")
        self.job_executor = job_executor

    def make_job_executor(self) -> JobExecutor:
        """The horae executor given."""
        return self.job_executor

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ({self.job_executor!r})>"


#: Executor plugin names of APScheduler 3 (``{"type": "threadpool", ...}``).
EXECUTOR_TYPES: dict[str, type[BaseExecutor]] = {
    "threadpool": ThreadPoolExecutor,
    "processpool": ProcessPoolExecutor,
    "asyncio": AsyncIOExecutor,
    "debug": DebugExecutor,
}
