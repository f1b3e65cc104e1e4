"""ThreadPoolJobExecutor: runs plain functions on worker threads (the default for them)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import queue
import threading
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from horae._structures import Job

from ._base import JobExecutor


def is_worker_count(value: object) -> bool:
    """True for an ``int`` (not a ``bool``) of at least 1."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def default_thread_count() -> int:
    """The default size of the thread pool: ``min(32, cpus + 4)``, as
    :class:`concurrent.futures.ThreadPoolExecutor` chooses."""
    return min(32, (os.cpu_count() or 1) + 4)


def _settle(future: asyncio.Future[Any], value: Any, failure: BaseException | None) -> None:
    # On the event loop thread. A cancelled (abandoned) job's future is already done.
    if future.done():
        return
    if failure is None:
        future.set_result(value)
    else:
        future.set_exception(failure)


class _Threads:
    """The worker threads of one executor: each idle thread waits on its own queue.

    A job goes to an idle thread, or to a new one when none is idle; how many run at
    once is limited on the event loop side (per job, by the executor's semaphore), so
    an abandoned thread never holds a slot: it finishes unobserved and then becomes
    idle again. Threads are daemons, so a job that never returns cannot keep the
    process alive. ``close`` ends the idle threads and makes busy ones end when done.
    """

    __slots__ = ("_closed", "_idle", "_lock")

    def __init__(self) -> None:
        self._idle: list[queue.SimpleQueue[Any]] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, item: Any) -> None:
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._work, args=(inbox,), name="horae job thread", daemon=True
            )
            thread.start()
        inbox.put(item)

    def _work(self, inbox: queue.SimpleQueue[Any]) -> None:
        while True:
            item = inbox.get()
            if item is None:
                return
            loop, future, context, call = item
            del item
            value: Any = None
            failure: BaseException | None = None
            try:
                value = context.run(call)
            except BaseException as exc:  # handed to the awaiting task
                failure = exc
            # RuntimeError: the event loop is closed; nobody waits for this job any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, value, failure)
            del loop, future, context, call, value, failure
            with self._lock:
                if self._closed:
                    return
                self._idle.append(inbox)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)


class ThreadPoolJobExecutor(JobExecutor):
    """Runs a job's callable in a worker thread (the ``"threadpool"`` executor).

    Args:
        max_workers: at most this many jobs of this executor run at once; further jobs
            wait for a thread (the default is ``min(32, cpus + 4)``).

    The job runs in a copy of the caller's context, so ``current_job`` and
    ``current_scheduler`` are set inside it. Python cannot stop a thread: when the job
    is cancelled (stop grace period over, timeout) the thread is *abandoned*, it runs
    on to its end unobserved and its result is ignored, and its slot in the pool is
    freed at once. (The threads are the executor's own: handing a job to a thread and
    back costs about half of what ``anyio.to_thread.run_sync`` costs.)
    """

    __slots__ = ("_max_workers", "_slots", "_threads")

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = default_thread_count()
        if not is_worker_count(max_workers):
            raise ValueError(f"max_workers must be a positive integer, got {max_workers!r}")
        self._max_workers = max_workers
        self._slots: asyncio.Semaphore | None = None
        self._threads = _Threads()

    def __repr__(self) -> str:
        return f"ThreadPoolJobExecutor(max_workers={self._max_workers})"

    @property
    def max_workers(self) -> int:
        """How many jobs may run at once."""
        return self._max_workers

    async def start(self, exit_stack: AsyncExitStack) -> None:
        """Make the slot counter for this event loop; end idle threads on exit."""
        self._slots = asyncio.Semaphore(self._max_workers)
        threads = self._threads
        exit_stack.callback(self._close, threads)

    def _close(self, threads: _Threads) -> None:
        threads.close()
        if self._threads is threads:
            self._threads = _Threads()  # a later start() gets fresh threads

    async def run_job(self, func: Callable[..., Any], job: Job) -> Any:
        """Run ``func(*job.args, **job.kwargs)`` in a worker thread and return its result."""
        slots = self._slots
        if slots is None:
            slots = self._slots = asyncio.Semaphore(self._max_workers)
        call = functools.partial(func, *job.args, **job.kwargs)
        # current_job must be visible inside the job: run it in a copy of our context.
        context = contextvars.copy_context()
        async with slots:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()
            self._threads.submit((loop, future, context, call))
            # Cancelled while waiting: the future is cancelled, the thread's result is
            # dropped by _settle, and leaving the block frees the slot at once.
            return await future
