"""Scheduler: the synchronous facade, driving an AsyncScheduler on an event loop thread.

The first method call starts a daemon thread ("horae-scheduler") that runs an event loop
with an :class:`anyio.from_thread.BlockingPortal`, and enters the AsyncScheduler's
services there. Every method then hands its call to that loop through the portal and
blocks until it returns. This works from the thread that made the scheduler, from any
other thread, and from jobs running on the scheduler's own worker threads (their call
runs on the loop while only the job's thread waits, so the loop is never blocked).

Two calls cannot work and raise :exc:`RuntimeError` instead of deadlocking: any method
called *on the loop thread itself* (from an async job or an event callback, which must
use the AsyncScheduler, ``current_scheduler.get()``), and waiting for the scheduler to
stop from inside one of its own jobs. After :meth:`Scheduler.close` the facade is done
for good: a method that needs the loop raises :exc:`SchedulerClosedError` rather than
quietly starting a new loop thread (and reopening the stores) behind the caller's back.
"""

from __future__ import annotations

import atexit
import functools
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import CancelledError, Future
from datetime import datetime, timedelta
from types import FrameType, TracebackType
from typing import Any, Literal, TypeVar, overload
from uuid import UUID

import anyio
from anyio.from_thread import BlockingPortal

from ._clock import Clock
from ._context import current_job, current_scheduler
from ._enums import CoalescePolicy, ConflictPolicy, OverlapPolicy, RunState, SchedulerRole
from ._exceptions import SchedulerClosedError
from ._scheduler import AsyncScheduler
from ._scheduler_args import CoalesceName, ConflictName, OverlapName, RoleName
from ._scheduler_control import ScheduleSpec, SyncResult
from ._structures import Job, JobResult, RetryPolicy, Schedule, Task
from .datastores._base import DataStore
from .eventbrokers._base import EventBroker, Subscription
from .events import Event
from .executors._base import JobExecutor
from .triggers._base import Trigger

_E = TypeVar("_E", bound=Event)
_T = TypeVar("_T")


class _PortalSubscription(Subscription):
    """A subscription whose ``unsubscribe`` may be called from any thread."""

    __slots__ = ("_owner", "_subscription")

    def __init__(self, owner: Scheduler, subscription: Subscription) -> None:
        self._owner = owner
        self._subscription = subscription

    def unsubscribe(self) -> None:
        owner = self._owner
        if owner._portal is None or threading.get_ident() == owner._loop_thread_id:
            # on the loop thread already (an event callback), or no loop any more
            self._subscription.unsubscribe()
        else:
            owner._call(self._subscription.unsubscribe)


class _SigtermToStop:
    """While installed (main thread only), SIGTERM asks the scheduler to stop cleanly."""

    def __init__(self, portal: BlockingPortal, scheduler: AsyncScheduler) -> None:
        self.received = False
        self._portal = portal
        self._scheduler = scheduler
        self._previous: Any = None
        self._installed = threading.current_thread() is threading.main_thread()
        if self._installed:
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between bytecodes; start_task_soon only queues a call
        # for the loop thread, so it cannot block here.
        self.received = True
        self._portal.start_task_soon(self._scheduler.stop)

    def restore(self) -> None:
        """Put the previous handler back (the default one if it was not Python's)."""
        if self._installed:
            previous = self._previous if self._previous is not None else signal.SIG_DFL
            signal.signal(signal.SIGTERM, previous)


class Scheduler:
    """The synchronous scheduler: the same methods as :class:`AsyncScheduler`, blocking.

    Takes the same arguments as :class:`AsyncScheduler`. Use it as a context manager, or
    call :meth:`run_until_stopped` (blocks, like APScheduler 3's ``BlockingScheduler``)
    or :meth:`start_in_background` (returns, like ``BackgroundScheduler``). Its event
    loop runs on a daemon thread; :meth:`close` (or leaving the ``with`` block, or
    interpreter exit) stops the scheduler and that thread for good: calling a method
    afterwards raises :exc:`~horae.SchedulerClosedError` (make a new ``Scheduler``).

    Event callbacks given to :meth:`subscribe` run on the event loop thread, in order;
    they must be quick and must not call this facade's methods (that raises
    :exc:`RuntimeError`): hand work to another thread, or use an async callback with
    the AsyncScheduler.

    Example::

        with Scheduler() as scheduler:
            scheduler.add_schedule(print_time, "interval", seconds=3, args=["tick"])
            scheduler.run_until_stopped()
    """

    def __init__(
        self,
        data_store: DataStore | None = None,
        event_broker: EventBroker | None = None,
        *,
        data_stores: Mapping[str, DataStore] | None = None,
        identity: str | None = None,
        role: SchedulerRole | RoleName = SchedulerRole.both,
        max_concurrent_jobs: int = 100,
        job_executors: Mapping[str, JobExecutor] | None = None,
        default_job_executor: str | None = None,
        lease_duration: timedelta = timedelta(seconds=30),
        cleanup_interval: timedelta | None = timedelta(minutes=15),
        logger: logging.Logger | None = None,
        clock: Clock | None = None,
        stop_grace_period: timedelta = timedelta(seconds=30),
    ) -> None:
        self._async = AsyncScheduler(
            data_store, event_broker, data_stores=data_stores, identity=identity, role=role,
            max_concurrent_jobs=max_concurrent_jobs, job_executors=job_executors,
            default_job_executor=default_job_executor, lease_duration=lease_duration,
            cleanup_interval=cleanup_interval, logger=logger, clock=clock,
            stop_grace_period=stop_grace_period,
        )  # fmt: skip
        self._lock = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._services: Any = None  # the entered wrap_async_context_manager
        self._thread: threading.Thread | None = None
        self._loop_thread_id: int | None = None
        self._entered = False
        self._closed = False

    def __repr__(self) -> str:
        return f"Scheduler(identity={self.identity!r}, state={self.state.value!r})"

    @property
    def async_scheduler(self) -> AsyncScheduler:
        """The AsyncScheduler this facade drives (for async jobs and callbacks)."""
        return self._async

    @property
    def state(self) -> RunState:
        """``stopped``, ``starting``, ``started`` or ``stopping``."""
        return self._async.state

    @property
    def identity(self) -> str:
        """This node's id in leases and events."""
        return self._async.identity

    # ---- the loop thread -------------------------------------------------------------

    def _ensure_started(self, action: str) -> BlockingPortal:
        with self._lock:
            if self._portal is not None:
                return self._portal
            if self._closed:
                raise SchedulerClosedError(
                    f"cannot {action} a closed Scheduler: close() (or leaving its "
                    f"'with' block, or the end of run_until_stopped() outside one) ended its "
                    f"event loop thread and closed its data stores for good; create a new "
                    f"Scheduler with the same arguments to schedule again"
                )
            ready: Future[BlockingPortal] = Future()
            thread = threading.Thread(
                target=self._run_loop, args=(ready,), name="horae-scheduler", daemon=True
            )
            thread.start()
            portal = ready.result()
            services = portal.wrap_async_context_manager(self._async)
            try:
                services.__enter__()
            except BaseException:
                portal.call(portal.stop)
                thread.join()
                raise
            self._portal, self._services, self._thread = portal, services, thread
            # The loop thread is a daemon, so a forgotten scheduler never keeps the
            # process alive; this lets it release its leases on the way out.
            atexit.register(self.close)
            return portal

    def _run_loop(self, ready: Future[BlockingPortal]) -> None:
        async def serve() -> None:
            async with BlockingPortal() as portal:
                self._loop_thread_id = threading.get_ident()
                ready.set_result(portal)
                await portal.sleep_until_stopped()

        try:
            anyio.run(serve)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    def _check_thread(self) -> None:
        if threading.get_ident() == self._loop_thread_id:
            raise RuntimeError(
                "Scheduler methods cannot be called from the scheduler's event loop thread "
                "(an async job or an event callback): they would wait for that very "
                "thread. Use the AsyncScheduler there: 'await current_scheduler.get()."
                "add_schedule(...)' in an async job, or scheduler.async_scheduler"
            )

    def _call(self, method: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self._check_thread()
        portal = self._ensure_started(f"call {getattr(method, '__name__', 'a method')}() on")
        return portal.call(functools.partial(method, *args, **kwargs))

    def _check_not_in_own_job(self, method: str) -> None:
        try:
            in_own_job = current_scheduler.get() is self._async and current_job.get() is not None
        except LookupError:
            return
        if in_own_job:
            raise RuntimeError(
                f"{method}() waits for the scheduler to stop, which waits for its running "
                f"jobs, including the one calling it; call stop() from a job instead"
            )

    # ---- life cycle -----------------------------------------------------------------

    def __enter__(self) -> Scheduler:
        """Start the event loop thread and the services."""
        self._check_thread()
        self._ensure_started("enter ('with')")
        self._entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the scheduler (running jobs get the grace period) and the loop thread."""
        self._entered = False
        self.close()

    def close(self) -> None:
        """Stop processing, wait for it, close the services and the event loop thread.

        Idempotent. Called on leaving the ``with`` block and at interpreter exit. The
        scheduler cannot be started again: afterwards its methods raise
        :exc:`~horae.SchedulerClosedError` (:meth:`stop`, :meth:`wait_until_stopped` and
        :meth:`close` itself return at once).
        """
        self._check_thread()
        self._check_not_in_own_job("close")
        with self._lock:
            portal, services, thread = self._portal, self._services, self._thread
            self._portal = self._services = self._thread = None
            self._closed = True
        if portal is None or services is None or thread is None:
            return
        atexit.unregister(self.close)
        try:
            services.__exit__(None, None, None)
        finally:
            portal.call(portal.stop)
            thread.join()
            self._loop_thread_id = None

    def run_until_stopped(self) -> None:
        """Run the scheduler in the calling thread's stead until it is stopped.

        Blocks until :meth:`stop` is called (from a job, another thread or a signal).
        Ctrl+C (``KeyboardInterrupt``) and, in the main thread, SIGTERM request a clean
        stop: running jobs get the grace period, then this method returns normally. A
        second Ctrl+C cancels the running jobs at once. Outside a ``with`` block the
        scheduler is closed afterwards.
        """
        self._check_thread()
        self._check_not_in_own_job("run_until_stopped")
        portal = self._ensure_started("call run_until_stopped() on")
        # The SIGTERM handler goes in first: a SIGTERM that came before it would end the
        # process without a clean stop.
        sigterm = _SigtermToStop(portal, self._async)
        try:
            future = portal.start_task_soon(self._async.run_until_stopped)
            # The portal runs calls in order, so a stop requested from now on reaches the
            # started run; one requested before (a SIGTERM just now) is repeated.
            if sigterm.received:
                portal.start_task_soon(self._async.stop)
            self._wait_interruptibly(portal, future)
        finally:
            sigterm.restore()
            if not self._entered:
                self.close()

    def _wait_interruptibly(self, portal: BlockingPortal, future: Future[None]) -> None:
        interrupts = 0
        while not self._wait_once(future):
            interrupts += 1
            if interrupts == 1:
                portal.start_task_soon(self._async.stop)
            else:
                future.cancel()  # second Ctrl+C: cancel the jobs now

    @staticmethod
    def _wait_once(future: Future[None]) -> bool:
        """Wait for *future*; False if Ctrl+C interrupted the wait."""
        try:
            future.result()
        except CancelledError:
            pass
        except KeyboardInterrupt:
            return False
        return True

    def start_in_background(self) -> None:
        """Start processing on the event loop thread and return."""
        self._call(self._async.start_in_background)

    def stop(self) -> None:
        """Ask the scheduler to stop (returns at once; safe to call from a job)."""
        if self._portal is not None:
            self._call(self._async.stop)

    def wait_until_stopped(self) -> None:
        """Block until the scheduler has stopped."""
        self._check_not_in_own_job("wait_until_stopped")
        if self._portal is not None:
            self._call(self._async.wait_until_stopped)

    @overload
    def call(self, func: Callable[..., Awaitable[_T]], /, *args: object) -> _T: ...

    @overload
    def call(self, func: Callable[..., _T], /, *args: object) -> _T: ...

    def call(self, func: Callable[..., Any], /, *args: object) -> Any:
        """Run ``func(*args)`` on the scheduler's event loop and return its result.

        The way to use the async API (:attr:`async_scheduler`, a data store, your own
        coroutine functions) from synchronous code: *func* is usually a coroutine
        function, awaited on the loop; a plain function is called on the loop thread.
        Blocks until it returns, and raises what it raises. Safe from any thread except
        the loop thread itself (use ``await`` there). Starts the event loop thread and
        the services if they are not running yet, like every other method. Pass keyword
        arguments with :func:`functools.partial`.

        Example::

            async def count_due(scheduler: AsyncScheduler) -> int:
                return len(await scheduler.get_schedules())

            with Scheduler() as scheduler:
                due = scheduler.call(count_due, scheduler.async_scheduler)

        Raises:
            RuntimeError: when called on the scheduler's event loop thread.
            SchedulerClosedError: after :meth:`close`.
        """
        self._check_thread()
        return self._ensure_started("call call() on").call(func, *args)

    # ---- the API, blocking ------------------------------------------------------------

    def configure_task(
        self,
        func_or_task_id: Callable[..., Any] | str,
        *,
        func: Callable[..., Any] | None = None,
        job_executor: str | None = None,
        misfire_grace_time: timedelta | float | None = None,
        max_running_jobs: int | None = None,
        job_timeout: timedelta | float | None = None,
        retry: RetryPolicy | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Task:
        """See :meth:`AsyncScheduler.configure_task`."""
        result: Task = self._call(
            self._async.configure_task, func_or_task_id, func=func, job_executor=job_executor,
            misfire_grace_time=misfire_grace_time, max_running_jobs=max_running_jobs,
            job_timeout=job_timeout, retry=retry, metadata=metadata,
        )  # fmt: skip
        return result

    def get_tasks(self) -> list[Task]:
        """See :meth:`AsyncScheduler.get_tasks`."""
        result: list[Task] = self._call(self._async.get_tasks)
        return result

    def add_schedule(
        self,
        func_or_task_id: Callable[..., Any] | str,
        trigger: Trigger | str,
        *,
        id: str | None = None,  # noqa: A002 - the SPEC's name
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        paused: bool = False,
        job_executor: str | None = None,
        coalesce: CoalescePolicy | CoalesceName = CoalescePolicy.latest,
        misfire_grace_time: timedelta | float | None = None,
        max_jitter: timedelta | float | None = None,
        max_running_jobs: int | None = None,
        job_timeout: timedelta | float | None = None,
        retry: RetryPolicy | None = None,
        overlap: OverlapPolicy | OverlapName = OverlapPolicy.allow,
        max_catchup: int | None = None,
        job_result_expiration_time: timedelta | float = 0,
        metadata: Mapping[str, Any] | None = None,
        conflict_policy: ConflictPolicy | ConflictName = ConflictPolicy.do_nothing,
        data_store: str = "default",
        **trigger_args: Any,
    ) -> str:
        """See :meth:`AsyncScheduler.add_schedule`."""
        result: str = self._call(
            self._async.add_schedule, func_or_task_id, trigger, id=id, args=args,
            kwargs=kwargs, paused=paused, job_executor=job_executor, coalesce=coalesce,
            misfire_grace_time=misfire_grace_time, max_jitter=max_jitter,
            max_running_jobs=max_running_jobs, job_timeout=job_timeout, retry=retry,
            overlap=overlap, max_catchup=max_catchup,
            job_result_expiration_time=job_result_expiration_time, metadata=metadata,
            conflict_policy=conflict_policy, data_store=data_store, **trigger_args,
        )  # fmt: skip
        return result

    def get_schedule(self, id: str, *, data_store: str | None = None) -> Schedule:  # noqa: A002
        """See :meth:`AsyncScheduler.get_schedule`."""
        result: Schedule = self._call(self._async.get_schedule, id, data_store=data_store)
        return result

    def get_schedules(self, *, data_store: str | None = None) -> list[Schedule]:
        """See :meth:`AsyncScheduler.get_schedules`."""
        result: list[Schedule] = self._call(self._async.get_schedules, data_store=data_store)
        return result

    def remove_schedule(self, id: str, *, data_store: str | None = None) -> None:  # noqa: A002
        """See :meth:`AsyncScheduler.remove_schedule`."""
        self._call(self._async.remove_schedule, id, data_store=data_store)

    def pause_schedule(
        self,
        id: str,  # noqa: A002 - the SPEC's name
        *,
        reason: str | None = None,
        until: datetime | None = None,
        data_store: str | None = None,
    ) -> None:
        """See :meth:`AsyncScheduler.pause_schedule`."""
        self._call(
            self._async.pause_schedule, id, reason=reason, until=until, data_store=data_store
        )

    def run_schedule_now(self, id: str, *, data_store: str | None = None) -> UUID:  # noqa: A002
        """See :meth:`AsyncScheduler.run_schedule_now`."""
        result: UUID = self._call(self._async.run_schedule_now, id, data_store=data_store)
        return result

    def backfill(
        self,
        id: str,  # noqa: A002 - the SPEC's name
        start: datetime,
        end: datetime,
        *,
        dry_run: bool = False,
        data_store: str | None = None,
    ) -> list[datetime]:
        """See :meth:`AsyncScheduler.backfill`."""
        result: list[datetime] = self._call(
            self._async.backfill, id, start, end, dry_run=dry_run, data_store=data_store
        )
        return result

    def sync_schedules(
        self, specs: Iterable[ScheduleSpec], *, prune: bool = False, data_store: str = "default"
    ) -> SyncResult:
        """See :meth:`AsyncScheduler.sync_schedules`."""
        result: SyncResult = self._call(
            self._async.sync_schedules, specs, prune=prune, data_store=data_store
        )
        return result

    def cancel_job(self, job_id: UUID | str) -> bool:
        """See :meth:`AsyncScheduler.cancel_job`."""
        result: bool = self._call(self._async.cancel_job, job_id)
        return result

    def unpause_schedule(
        self,
        id: str,  # noqa: A002 - the SPEC's name
        *,
        resume_from: datetime | Literal["now"] | None = None,
        data_store: str | None = None,
    ) -> None:
        """See :meth:`AsyncScheduler.unpause_schedule`."""
        self._call(
            self._async.unpause_schedule, id, resume_from=resume_from, data_store=data_store
        )

    def preview(
        self, id_or_trigger: str | Trigger, count: int = 10, *, data_store: str | None = None
    ) -> list[datetime]:
        """See :meth:`AsyncScheduler.preview`."""
        result: list[datetime] = self._call(
            self._async.preview, id_or_trigger, count, data_store=data_store
        )
        return result

    def add_job(
        self,
        func_or_task_id: Callable[..., Any] | str,
        *,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        job_executor: str | None = None,
        result_expiration_time: timedelta | float = 0,
        data_store: str = "default",
    ) -> UUID:
        """See :meth:`AsyncScheduler.add_job`."""
        result: UUID = self._call(
            self._async.add_job, func_or_task_id, args=args, kwargs=kwargs,
            job_executor=job_executor, result_expiration_time=result_expiration_time,
            data_store=data_store,
        )  # fmt: skip
        return result

    def get_jobs(self, *, data_store: str | None = None) -> list[Job]:
        """See :meth:`AsyncScheduler.get_jobs`."""
        result: list[Job] = self._call(self._async.get_jobs, data_store=data_store)
        return result

    def get_job_result(self, job_id: UUID | str, *, wait: bool = True) -> JobResult:
        """See :meth:`AsyncScheduler.get_job_result`."""
        result: JobResult = self._call(self._async.get_job_result, job_id, wait=wait)
        return result

    def run_job(
        self,
        func_or_task_id: Callable[..., Any] | str,
        *,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        job_executor: str | None = None,
    ) -> Any:
        """See :meth:`AsyncScheduler.run_job`."""
        return self._call(
            self._async.run_job, func_or_task_id, args=args, kwargs=kwargs,
            job_executor=job_executor,
        )  # fmt: skip

    def subscribe(
        self,
        callback: Callable[[_E], object],
        event_types: type[_E] | Iterable[type[_E]] | None = None,
        *,
        one_shot: bool = False,
    ) -> Subscription:
        """See :meth:`AsyncScheduler.subscribe`; callbacks run on the loop thread.

        The returned subscription may be ended from any thread.
        """
        subscription: Subscription = self._call(
            self._async.subscribe, callback, event_types, one_shot=one_shot
        )
        return _PortalSubscription(self, subscription)
