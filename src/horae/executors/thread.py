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


class _Item:
    """One job handed to the threads; ``state`` is set by the thread that takes it."""

    __slots__ = ("abandoned", "call", "context", "future", "loop", "state")

    QUEUED, RUNNING, DONE = 0, 1, 2

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        context: contextvars.Context,
        call: Callable[[], Any],
    ) -> None:
        self.loop = loop
        self.future = future
        self.context = context
        self.call = call
        self.state = _Item.QUEUED
        self.abandoned = False  # its thread ends after it (another took its place)


class _Threads:
    """The worker threads of one executor: *size* threads that take jobs from one queue.

    At most *size* jobs run at once because *size* threads take them, one at a time, in
    order; a thread that finishes a job takes the next at once, without a round trip
    through the event loop. A job whose awaiting task is cancelled while it still waits
    in the queue is skipped. One cancelled while it runs is *abandoned*: a new thread
    takes its place at once (so the pool keeps *size* threads for other jobs), and the
    abandoned thread ends when its job returns. Threads start when jobs need them and
    are daemons, so a job that never returns cannot keep the process alive.

    Results go back to each event loop in batches: the first result of a batch
    schedules one callback on the loop (``call_soon_threadsafe`` writes to the loop's
    wake-up pipe, a system call), and results that arrive before it runs join it.
    ``close`` ends the threads once the jobs queued before it are done.
    """

    __slots__ = ("_closed", "_done", "_inbox", "_lock", "_retiring", "_size", "_threads")

    def __init__(self, size: int) -> None:
        self._size = size
        self._inbox: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0  # threads started and not yet ended
        self._retiring = 0  # abandoned threads that end after their job
        self._closed = False
        #: per event loop: results not yet handed to it (absent: no callback pending)
        self._done: dict[asyncio.AbstractEventLoop, list[Any]] = {}

    def submit(self, item: _Item) -> None:
        self._inbox.put(item)
        with self._lock:
            start = self._threads - self._retiring < self._size
            if start:
                self._threads += 1
        if start:
            threading.Thread(target=self._work, name="horae job thread", daemon=True).start()

    def abandon(self, item: _Item) -> None:
        """*item*'s future was cancelled: if a thread runs it, that thread ends after it
        and another takes over (a queued one is skipped, see _work)."""
        with self._lock:
            if item.state != _Item.RUNNING:
                return
            item.abandoned = True
            self._retiring += 1
            if self._closed:
                return
            self._threads += 1
        threading.Thread(target=self._work, name="horae job thread", daemon=True).start()

    def _work(self) -> None:
        inbox = self._inbox
        while True:
            item = inbox.get()
            if item is None:
                break
            with self._lock:  # against abandon(): started, or skipped as cancelled
                if item.future.cancelled():
                    continue  # cancelled while it waited: never started
                item.state = _Item.RUNNING
            value: Any = None
            failure: BaseException | None = None
            try:
                value = item.context.run(item.call)
            except BaseException as exc:  # handed to the awaiting task
                failure = exc
            self._post(item.loop, (item.future, value, failure))
            with self._lock:
                item.state = _Item.DONE
                if item.abandoned:
                    # another thread took this one's place when its job was abandoned
                    self._retiring -= 1
                    self._threads -= 1
                    return
            del item, value, failure
        with self._lock:
            self._threads -= 1

    def _post(self, loop: asyncio.AbstractEventLoop, result: Any) -> None:
        with self._lock:
            batch = self._done.get(loop)
            if batch is not None:
                batch.append(result)
                return
            self._done[loop] = [result]
        # RuntimeError: the event loop is closed; nobody waits for these jobs any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._deliver, loop)

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            batch = self._done.pop(loop, [])
        for future, value, failure in batch:
            _settle(future, value, failure)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = self._threads
        # One stop marker per thread, behind the queued jobs.
        for _ in range(threads):
            self._inbox.put(None)


class ThreadPoolJobExecutor(JobExecutor):
    """Runs a job's callable in a worker thread (the ``"threadpool"`` executor).

    Args:
        max_workers: at most this many jobs of this executor run at once; further jobs
            wait for a thread (the default is ``min(32, cpus + 4)``).

    The job runs in a copy of the caller's context, so ``current_job`` and
    ``current_scheduler`` are set inside it. Python cannot stop a thread: when the job
    is cancelled (stop grace period over, timeout) the thread is *abandoned*, it runs
    on to its end unobserved and its result is ignored, and its slot in the pool is
    freed at once. (The threads are the executor's own, fed from one queue: a burst of
    jobs costs about half the CPU of ``anyio.to_thread.run_sync``.)
    """

    __slots__ = ("_max_workers", "_threads")

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = default_thread_count()
        if not is_worker_count(max_workers):
            raise ValueError(f"max_workers must be a positive integer, got {max_workers!r}")
        self._max_workers = max_workers
        self._threads = _Threads(max_workers)

    def __repr__(self) -> str:
        return f"ThreadPoolJobExecutor(max_workers={self._max_workers})"

    @property
    def max_workers(self) -> int:
        """How many jobs may run at once."""
        return self._max_workers

    async def start(self, exit_stack: AsyncExitStack) -> None:
        """End the worker threads when the scheduler's services close."""
        exit_stack.callback(self._close, self._threads)

    def _close(self, threads: _Threads) -> None:
        threads.close()
        if self._threads is threads:
            self._threads = _Threads(self._max_workers)  # for a later start()

    async def run_job(self, func: Callable[..., Any], job: Job) -> Any:
        """Run ``func(*job.args, **job.kwargs)`` in a worker thread and return its result."""
        call = functools.partial(func, *job.args, **job.kwargs)
        # current_job must be visible inside the job: run it in a copy of our context.
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        item = _Item(loop, future, context, call)
        threads = self._threads
        threads.submit(item)
        try:
            return await future
        except asyncio.CancelledError:
            # The future is cancelled with us: a queued job is skipped, a running one
            # is abandoned (its result dropped) and its thread replaced at once.
            threads.abandon(item)
            raise
