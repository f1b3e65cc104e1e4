"""Where horae meets APScheduler 3's events: the listener list, the thread that delivers
job events, the executor wrapper that sees every run, and :class:`Bridge`, which turns
horae's events into APScheduler 3's and keeps handed-out Job objects up to date.

Threads: events caused by a call (``EVENT_JOB_ADDED`` from ``add_job``...) are delivered
in the calling thread before the call returns, as in APScheduler 3. Events that come from
the scheduler's own work (submitted, executed, error, missed, max instances, a finished
job's removal) arise on horae's event loop thread, which must never wait for a listener
(a listener may call the scheduler, which needs that loop): they go through
``Bridge.deliver`` to one delivery thread (or the AsyncIOScheduler's loop), in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import traceback
import weakref
from collections import Counter
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from horae._enums import JobOutcome
from horae._exceptions import HoraeError, JobCancelled
from horae._structures import Job as HoraeJob
from horae._tasks import is_async_callable
from horae.events import (
    Event,
    JobReleased,
    SchedulePaused,
    ScheduleRemoved,
    ScheduleUnpaused,
    ScheduleUpdated,
)
from horae.executors._base import JobExecutor

from .events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_REMOVED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
    SchedulerEvent,
)

if TYPE_CHECKING:
    from contextlib import AsyncExitStack

    from .job import Job

#: The horae events the bridge listens to.
BRIDGED_EVENTS = (JobReleased, ScheduleUpdated, ScheduleUnpaused, SchedulePaused, ScheduleRemoved)

Listener = Callable[[Any], object]


class LoopJobCancelled(JobCancelled):
    """A coroutine job was cancelled on the AsyncIOScheduler's loop (at its shutdown)."""


class Listeners:
    """The ``(callback, mask)`` pairs of ``add_listener``; safe to use from any thread."""

    def __init__(self, logger: logging.Logger) -> None:
        self._lock = threading.Lock()
        self._listeners: list[tuple[Listener, int]] = []
        self.logger = logger

    def add(self, callback: Listener, mask: int) -> None:
        """Register *callback* for the events whose code is in *mask*."""
        with self._lock:
            self._listeners.append((callback, mask))

    def remove(self, callback: Listener) -> None:
        """Forget the first registration of *callback* (nothing if there is none)."""
        with self._lock:
            for index, (registered, _) in enumerate(self._listeners):
                if registered == callback:
                    del self._listeners[index]
                    return

    def dispatch(self, event: SchedulerEvent) -> None:
        """Call every matching listener in this thread; one that raises is logged."""
        with self._lock:
            listeners = tuple(self._listeners)
        for callback, mask in listeners:
            if event.code & mask:
                try:
                    callback(event)
                except Exception:
                    self.logger.exception("Error notifying listener %r", callback)


class DeliveryThread:
    """Delivers queued events to the listeners on one daemon thread, in order."""

    def __init__(self, listeners: Listeners) -> None:
        self._listeners = listeners
        self._queue: queue.SimpleQueue[SchedulerEvent | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="horae-compat-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            self._listeners.dispatch(event)

    def put(self, event: SchedulerEvent) -> None:
        """Queue *event* for delivery."""
        self._queue.put(event)

    def is_current(self) -> bool:
        """True when called from a listener that this thread runs."""
        return threading.current_thread() is self._thread

    def close(self) -> None:
        """Deliver what is queued, then end the thread (without waiting for it when called
        from one of its own listeners)."""
        self._queue.put(None)
        if not self.is_current():
            self._thread.join()


class CompatJobExecutor(JobExecutor):
    """The horae executor behind one compat executor alias: runs plain functions on
    *plain*, coroutine functions through the bridge, and reports every run."""

    def __init__(self, plain: JobExecutor, bridge: Bridge) -> None:
        self._plain = plain
        self._bridge = bridge

    async def start(self, exit_stack: AsyncExitStack) -> None:
        """Start the executor for plain functions."""
        await self._plain.start(exit_stack)

    async def run_job(self, func: Callable[..., Any], job: HoraeJob) -> Any:
        """Run the job, reporting its start and its end (value or exception)."""
        self._bridge.job_started(job)
        try:
            if is_async_callable(func):
                value = await self._bridge.run_coroutine(func, job)
            else:
                value = await self._plain.run_job(func, job)
        except LoopJobCancelled:
            self._bridge.job_ended(job, cancelled=True)
            raise
        except Exception as exc:
            self._bridge.job_ended(job, exception=exc)
            raise
        except BaseException:
            self._bridge.job_ended(job, cancelled=True)
            raise
        self._bridge.job_ended(job, retval=value)
        return value


class Bridge:
    """Turns what happens inside the horae core into APScheduler 3 events.

    Its ``on_horae_event`` and ``job_*`` methods run on horae's event loop thread and
    never block; the events they make go to :attr:`deliver`.

    Attributes:
        deliver: where events from the scheduler's own work go (set by the scheduler).
        event_loop: the loop that runs coroutine jobs (the AsyncIOScheduler's), or
            ``None`` to run them on horae's loop.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.deliver: Callable[[SchedulerEvent], None] = lambda event: None
        self.event_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._aliases: dict[str, str] = {}
        self._live: dict[str, list[weakref.ref[Job]]] = {}
        self._running: Counter[str] = Counter()
        self._reported: set[UUID] = set()
        self._finished: set[str] = set()
        self._loop_jobs: set[Future[Any]] = set()

    # ---- job objects and their stores ---------------------------------------------------

    def track(self, job: Job, alias: str) -> None:
        """Remember *job*'s store, and keep its ``next_run_time`` current from now on."""
        with self._lock:
            self._aliases[job.id] = alias
            # by identity: Job objects compare equal by id, and every one is kept current
            refs = [
                ref
                for ref in self._live.get(job.id, [])
                if (held := ref()) is not None and held is not job
            ]
            refs.append(weakref.ref(job))
            self._live[job.id] = refs

    def remember(self, job_id: str, alias: str) -> None:
        """Remember that the job *job_id* is in the store *alias*."""
        with self._lock:
            self._aliases[job_id] = alias

    def forget(self, job_id: str) -> None:
        """Drop what is kept about a job that no longer exists (its store, its views)."""
        with self._lock:
            self._aliases.pop(job_id, None)
            self._live.pop(job_id, None)

    def alias_of(self, job_id: str) -> str:
        """The alias of the store that holds (or held) *job_id*."""
        with self._lock:
            return self._aliases.get(job_id, "default")

    def set_next_run_time(
        self, job_id: str, next_run_time: datetime | None, *, active_only: bool = False
    ) -> None:
        """Update the Job objects handed out for *job_id* (with *active_only*, only those
        not paused: a change of a paused schedule's stored time does not unpause it)."""
        with self._lock:
            refs = self._live.get(job_id, [])
            jobs = [job for ref in refs if (job := ref()) is not None]
            if len(jobs) != len(refs):
                self._live[job_id] = [weakref.ref(job) for job in jobs]
        for job in jobs:
            if not active_only or getattr(job, "next_run_time", None) is not None:
                job.next_run_time = next_run_time

    # ---- runs, from the executor ------------------------------------------------------

    def _job_event_args(self, job: HoraeJob) -> tuple[str, str]:
        job_id = job.schedule_id or str(job.id)
        return job_id, self.alias_of(job_id)

    def job_started(self, job: HoraeJob) -> None:
        """A run starts: ``EVENT_JOB_SUBMITTED``."""
        job_id, alias = self._job_event_args(job)
        self._running[job_id] += 1
        self._reported.add(job.id)
        run_times = [] if job.scheduled_fire_time is None else [job.scheduled_fire_time]
        self.logger.info("Running job %r (scheduled at %s)", job_id, job.scheduled_fire_time)
        self.deliver(JobSubmissionEvent(EVENT_JOB_SUBMITTED, job_id, alias, run_times))

    def job_ended(
        self,
        job: HoraeJob,
        *,
        retval: Any = None,
        exception: BaseException | None = None,
        cancelled: bool = False,
    ) -> None:
        """A run ended: ``EVENT_JOB_EXECUTED`` or ``EVENT_JOB_ERROR`` (nothing when it was
        cancelled, as in APScheduler 3)."""
        job_id, alias = self._job_event_args(job)
        self._running[job_id] -= 1
        if self._running[job_id] <= 0:
            del self._running[job_id]
        when = job.scheduled_fire_time
        if cancelled:
            self.logger.warning("Job %r was cancelled", job_id)
        elif exception is not None:
            # (horae's worker logs the exception with its traceback; no second log here)
            formatted = "".join(traceback.format_tb(exception.__traceback__))
            self.deliver(
                JobExecutionEvent(
                    EVENT_JOB_ERROR, job_id, alias, when, exception=exception, traceback=formatted
                )
            )
        else:
            self.logger.info("Job %r executed successfully", job_id)
            self.deliver(JobExecutionEvent(EVENT_JOB_EXECUTED, job_id, alias, when, retval=retval))

    async def run_coroutine(self, func: Callable[..., Any], job: HoraeJob) -> Any:
        """Run a coroutine job on :attr:`event_loop` (or on this loop when it is ``None``)."""
        loop = self.event_loop
        if loop is None:
            return await func(*job.args, **job.kwargs)
        coroutine: Coroutine[Any, Any, Any] = func(*job.args, **job.kwargs)
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        except BaseException:
            coroutine.close()  # never started: close it, so it is not reported unawaited
            raise
        here = asyncio.get_running_loop()
        done = asyncio.Event()

        def wake(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # horae's loop has already closed
                here.call_soon_threadsafe(done.set)

        with self._lock:
            self._loop_jobs.add(future)
        future.add_done_callback(wake)
        try:
            await done.wait()
        except BaseException:
            future.cancel()  # horae gave up on the job (stop grace period over): stop it
            raise
        finally:
            with self._lock:
                self._loop_jobs.discard(future)
        if future.cancelled():
            raise LoopJobCancelled(f"job {job.schedule_id!r} was cancelled on its event loop")
        return future.result()

    def cancel_loop_jobs(self) -> None:
        """Cancel the coroutine jobs running on :attr:`event_loop` (AsyncIOScheduler's
        shutdown, as APScheduler 3's AsyncIOExecutor does)."""
        with self._lock:
            futures = list(self._loop_jobs)
        for future in futures:
            future.cancel()

    # ---- horae's events ---------------------------------------------------------------

    def on_horae_event(self, event: Event) -> None:
        """Translate one horae event (called inline by horae's broker)."""
        if isinstance(event, JobReleased):
            self._on_released(event)
            job_id = event.schedule_id
            if job_id in self._finished and not self._running.get(job_id):
                # the last run of a finished job is over: nothing will name it again
                self._finished.discard(job_id)
                self.forget(job_id)
        elif isinstance(event, ScheduleUnpaused):
            self.set_next_run_time(event.schedule_id, event.next_fire_time)
        elif isinstance(event, ScheduleUpdated):
            self.set_next_run_time(event.schedule_id, event.next_fire_time, active_only=True)
        elif isinstance(event, SchedulePaused):
            self.set_next_run_time(event.schedule_id, None)
        elif isinstance(event, ScheduleRemoved):
            if event.finished:
                # APScheduler 3 removes a job whose trigger has no fire time left, and says
                # so. Its last run is still to come: forget the job after that.
                alias = self.alias_of(event.schedule_id)
                self.deliver(JobEvent(EVENT_JOB_REMOVED, event.schedule_id, alias))
                self._finished.add(event.schedule_id)
            elif not self._running.get(event.schedule_id):
                self.forget(event.schedule_id)

    def _on_released(self, event: JobReleased) -> None:
        job_id = event.schedule_id
        if job_id is None or event.job_id in self._reported:
            self._reported.discard(event.job_id)
            return  # not a compat job, or its run was reported by the executor already
        alias = self.alias_of(job_id)
        when = event.scheduled_fire_time
        if event.outcome is JobOutcome.missed_start_deadline:
            if self._running.get(job_id, 0) > 0:
                # It waited for a running instance of the same job until its grace time
                # ran out: what APScheduler 3 reports as reaching max_instances.
                self.logger.warning(
                    "Execution of job %r skipped: maximum number of running instances reached",
                    job_id,
                )
                run_times = [] if when is None else [when]
                self.deliver(JobSubmissionEvent(EVENT_JOB_MAX_INSTANCES, job_id, alias, run_times))
                return
            self.logger.warning("Run time of job %r (%s) was missed", job_id, when)
            run_times = [] if when is None else [when]
            self.deliver(JobSubmissionEvent(EVENT_JOB_SUBMITTED, job_id, alias, run_times))
            self.deliver(JobExecutionEvent(EVENT_JOB_MISSED, job_id, alias, when))
        elif event.outcome is not JobOutcome.success:
            # It never reached this process's executor (its callable could not be loaded,
            # or it was abandoned by a node that died): report what horae recorded.
            detail = (
                f"{event.exception_type}: {event.exception_message}"
                if event.exception_type
                else f"job {job_id!r} ended as {event.outcome.value}"
            )
            self.deliver(
                JobExecutionEvent(
                    EVENT_JOB_ERROR, job_id, alias, when, exception=HoraeError(detail)
                )
            )
