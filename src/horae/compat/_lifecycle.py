"""The life cycle half of :class:`~horae.compat.BaseScheduler`: configuration, the
horae core, start/shutdown/pause/resume, executors, job stores and listeners.

The compat scheduler keeps APScheduler 3's state machine (stopped, running, paused), its
pending jobs (added before ``start()``), job stores, executors and listeners. From
``start()`` to ``shutdown()`` a :class:`~horae.compat._core.Core` (one horae
``Scheduler``, its event loop on its own thread) stores the jobs and runs them.

Slow transitions of the core (stopping it for ``pause()``, closing it for
``shutdown()``, reopening it when job stores or executors change while it runs) run on
one control thread, in call order, so that calls made from inside jobs or listeners never
wait for themselves: where a caller could be waited for by the transition (a job of this
scheduler, a listener), it does not wait for the transition to finish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent import futures
from typing import Any, NoReturn

from horae._exceptions import ConflictingIdError as _HoraeConflictingIdError
from horae.datastores import DataStore
from horae.executors._base import JobExecutor

from ._bridge import Bridge, CompatJobExecutor, DeliveryThread, Listeners
from ._codec import JobCodec
from ._config import make_executor, make_jobstore, make_plugin, nest_options, read_job_defaults
from ._core import Core
from ._errors import ConflictingIdError, SchedulerAlreadyRunningError, SchedulerNotRunningError
from ._util import as_zone, resolve_ref, utc_now
from .events import (
    EVENT_ALL,
    EVENT_EXECUTOR_ADDED,
    EVENT_EXECUTOR_REMOVED,
    EVENT_JOB_ADDED,
    EVENT_JOBSTORE_ADDED,
    EVENT_JOBSTORE_REMOVED,
    EVENT_SCHEDULER_PAUSED,
    EVENT_SCHEDULER_RESUMED,
    EVENT_SCHEDULER_SHUTDOWN,
    EVENT_SCHEDULER_STARTED,
    JobEvent,
    SchedulerEvent,
)
from .executors import EXECUTOR_TYPES, BaseExecutor, ThreadPoolExecutor
from .job import Job
from .jobstores import JOBSTORE_TYPES, BaseJobStore, MemoryJobStore

#: The scheduler is stopped (not started, or shut down).
STATE_STOPPED = 0
#: The scheduler is started and processing jobs.
STATE_RUNNING = 1
#: The scheduler is started but not processing jobs.
STATE_PAUSED = 2


class SchedulerLifecycle:
    """The life cycle of a compat scheduler; :class:`~horae.compat.BaseScheduler` adds
    the job API and documents the arguments.

    Attributes:
        state: ``STATE_STOPPED``, ``STATE_RUNNING`` or ``STATE_PAUSED``.
        timezone: the default time zone of triggers and naive datetimes.
    """

    _codec: JobCodec  # set by BaseScheduler, whose Job objects it makes

    def __init__(self, gconfig: Mapping[str, Any] | None = None, **options: Any) -> None:
        self._lock = threading.RLock()
        self._jobstores: dict[str, BaseJobStore] = {}
        self._executors: dict[str, BaseExecutor] = {}
        self._pending: list[tuple[Job, str, bool]] = []
        self._logger = logging.getLogger("apscheduler.scheduler")
        self._listeners = Listeners(self._logger)
        self._bridge = Bridge(self._logger)
        self._core: Core | None = None
        self._delivery: DeliveryThread | None = None
        self._control = futures.ThreadPoolExecutor(1, thread_name_prefix="horae-compat-control")
        self._closing: futures.Future[None] | None = None
        self.state = STATE_STOPPED
        self.configure(gconfig, **options)

    def __getstate__(self) -> NoReturn:
        raise TypeError(
            "Schedulers cannot be serialized. Ensure that you are not passing a scheduler "
            "instance as an argument to a job, or scheduling an instance method where the "
            "instance contains a scheduler as an attribute."
        )

    @property
    def running(self) -> bool:
        """True once started (``state != STATE_STOPPED``)."""
        return self.state != STATE_STOPPED

    # ---- configuration ----------------------------------------------------------------

    def configure(
        self,
        gconfig: Mapping[str, Any] | None = None,
        prefix: str = "apscheduler.",
        **options: Any,
    ) -> None:
        """Replace the configuration (job stores, executors, defaults, time zone).

        Raises:
            SchedulerAlreadyRunningError: the scheduler is running.
        """
        if self.state != STATE_STOPPED:
            raise SchedulerAlreadyRunningError
        self._configure(nest_options(gconfig, prefix, options))

    def _configure(self, config: dict[str, Any]) -> None:
        logger = config.pop("logger", None)
        if isinstance(logger, str):
            logger = resolve_ref(logger) if ":" in logger else logging.getLogger(logger)
        self._logger = logger or logging.getLogger("apscheduler.scheduler")
        self._listeners.logger = self._bridge.logger = self._logger
        self.timezone = as_zone(config.pop("timezone", None))
        self.jobstore_retry_interval = float(config.pop("jobstore_retry_interval", 10))
        self._job_defaults = read_job_defaults(config.get("job_defaults"))
        self._executors.clear()
        for alias, value in dict(config.get("executors", {})).items():
            self.add_executor(make_executor(value, alias), alias)
        self._jobstores.clear()
        for alias, value in dict(config.get("jobstores", {})).items():
            self.add_jobstore(make_jobstore(value, alias), alias)

    def _create_default_executor(self) -> BaseExecutor:
        return ThreadPoolExecutor()

    def _create_default_jobstore(self) -> BaseJobStore:
        return MemoryJobStore()

    # ---- the core -----------------------------------------------------------------------

    def _open_core(self) -> Core:
        stores = {alias: jobstore.data_store for alias, jobstore in self._jobstores.items()}
        executors: dict[str, JobExecutor] = {
            alias: CompatJobExecutor(executor.make_job_executor(), self._bridge)
            for alias, executor in self._executors.items()
        }
        core = Core(stores, executors, self._logger, self._bridge.on_horae_event)
        try:
            core.open()
            self._codec.reregister(core)
            for alias, schedule in core.call(core.schedules, list(stores)):
                self._bridge.remember(schedule.id, alias)
        except BaseException:
            core.close()
            raise
        return core

    def _running_core(self) -> Core:
        core = self._core
        if core is None:
            raise SchedulerNotRunningError
        return core

    def _on_control(self, func: Callable[[], None]) -> futures.Future[None]:
        """Run *func* on the control thread, after the transitions queued before it.

        Once the interpreter is exiting (``atexit.register(scheduler.shutdown)``, a
        common APScheduler 3 idiom), ``concurrent.futures`` takes no more work and its
        threads are gone: *func* then runs here, at once.
        """
        try:
            return self._control.submit(func)
        except RuntimeError:
            done: futures.Future[None] = futures.Future()
            try:
                func()
            except Exception as exc:
                done.set_exception(exc)
            else:
                done.set_result(None)
            return done

    def _wait_for_control(self) -> None:
        self._on_control(lambda: None).result()

    def _reopen_core(self) -> None:
        """Close the core and open one with the current job stores and executors."""
        core = self._running_core()
        if core.in_own_job():
            raise RuntimeError(
                "changing job stores or executors of a running scheduler restarts its "
                "horae core, which waits for the running jobs: it cannot be done from "
                "inside a job; do it before start() or outside of jobs"
            )
        self._on_control(core.close).result()
        self._core = None
        self._core = self._open_core()
        if self.state == STATE_RUNNING:
            self._core.start_processing()

    def _start_delivery(self) -> DeliveryThread | None:
        """Start delivering job events; the default is a delivery thread."""
        delivery = DeliveryThread(self._listeners)
        self._bridge.deliver = delivery.put
        return delivery

    def _can_wait_for_shutdown(self, core: Core, delivery: DeliveryThread | None) -> bool:
        in_listener = delivery is not None and delivery.is_current()
        return not core.in_own_job() and not in_listener

    # ---- life cycle -------------------------------------------------------------------

    def start(self, paused: bool = False) -> None:
        """Start the job stores and executors, add the pending jobs, and begin
        processing jobs (unless *paused*; then at :meth:`resume`).

        Raises:
            SchedulerAlreadyRunningError: the scheduler is already running.
        """
        if self.state != STATE_STOPPED:
            raise SchedulerAlreadyRunningError
        # The previous shutdown must have closed its core. Not under the lock: a job of
        # that core may still be finishing, and may call this scheduler.
        self._wait_for_control()
        with self._lock:
            if self.state != STATE_STOPPED:
                raise SchedulerAlreadyRunningError
            if "default" not in self._executors:
                self.add_executor(self._create_default_executor(), "default")
            if "default" not in self._jobstores:
                self.add_jobstore(self._create_default_jobstore(), "default")
            delivery = self._start_delivery()
            try:
                core = self._open_core()
                try:
                    for job, alias, replace_existing in self._pending:
                        self._real_add_job(core, job, alias, replace_existing)
                except BaseException:
                    core.close()
                    raise
            except BaseException:
                if delivery is not None:
                    delivery.close()
                raise
            del self._pending[:]
            self._core, self._delivery = core, delivery
            self.state = STATE_PAUSED if paused else STATE_RUNNING
        self._logger.info("Scheduler started")
        self._dispatch_event(SchedulerEvent(EVENT_SCHEDULER_STARTED))
        if not paused:
            # queued like pause() and resume(), so that they apply in call order
            self._on_control(core.start_processing)

    def shutdown(self, wait: bool = True) -> None:
        """Shut down the scheduler, its executors and job stores.

        With *wait*, return once running jobs have finished (for up to horae's stop grace
        period, 30 seconds, after which they are cancelled). Called from one of its own
        jobs or from a listener, it never waits (that would wait for the caller).

        Raises:
            SchedulerNotRunningError: the scheduler is not running.
        """
        with self._lock:
            if self.state == STATE_STOPPED:
                raise SchedulerNotRunningError
            self.state = STATE_STOPPED
            core, self._core = self._running_core(), None
            delivery, self._delivery = self._delivery, None
        self._bridge.cancel_loop_jobs()

        def close() -> None:
            try:
                core.close()
            finally:
                if delivery is not None:
                    delivery.close()

        self._closing = self._on_control(close)
        if wait and self._can_wait_for_shutdown(core, delivery):
            self._closing.result()
        self._logger.info("Scheduler has been shut down")
        self._dispatch_shutdown(SchedulerEvent(EVENT_SCHEDULER_SHUTDOWN))

    def _dispatch_shutdown(self, event: SchedulerEvent) -> None:
        self._dispatch_event(event)

    def pause(self) -> None:
        """Stop processing jobs until :meth:`resume` (jobs already running go on).

        Raises:
            SchedulerNotRunningError: the scheduler is not running.
        """
        with self._lock:
            if self.state == STATE_STOPPED:
                raise SchedulerNotRunningError
            if self.state != STATE_RUNNING:
                return
            self.state = STATE_PAUSED
            self._on_control(self._running_core().stop_processing)
        self._logger.info("Paused scheduler job processing")
        self._dispatch_event(SchedulerEvent(EVENT_SCHEDULER_PAUSED))

    def resume(self) -> None:
        """Resume processing jobs (runs missed meanwhile follow ``misfire_grace_time`` and
        ``coalesce``).

        Raises:
            SchedulerNotRunningError: the scheduler is not running.
        """
        with self._lock:
            if self.state == STATE_STOPPED:
                raise SchedulerNotRunningError
            if self.state != STATE_PAUSED:
                return
            self.state = STATE_RUNNING
            self._on_control(self._running_core().resume_processing)
        self._logger.info("Resumed scheduler job processing")
        self._dispatch_event(SchedulerEvent(EVENT_SCHEDULER_RESUMED))

    def wakeup(self) -> None:
        """Kept for APScheduler 3 code: horae wakes itself whenever a job changes."""

    # ---- executors, job stores, listeners ---------------------------------------------

    def add_executor(
        self,
        executor: BaseExecutor | JobExecutor | str,
        alias: str = "default",
        **executor_opts: Any,
    ) -> None:
        """Add an executor (an instance, or a plugin name with its options).

        While the scheduler runs, this restarts its horae core (waiting for running jobs).

        Raises:
            ValueError: there is already an executor called *alias*.
        """
        with self._lock:
            if alias in self._executors:
                raise ValueError(
                    f'This scheduler already has an executor by the alias of "{alias}"'
                )
            if isinstance(executor, str):
                made = make_plugin(
                    "executor", BaseExecutor, EXECUTOR_TYPES, executor, executor_opts
                )
            elif isinstance(executor, (BaseExecutor, JobExecutor)):
                made = make_executor(executor, alias)
            else:
                raise TypeError(
                    f"Expected an executor instance or a string, got "
                    f"{type(executor).__name__} instead"
                )
            self._change_while_running(self._executors, alias, made)
        self._dispatch_event(SchedulerEvent(EVENT_EXECUTOR_ADDED, alias))

    def remove_executor(self, alias: str, shutdown: bool = True) -> None:
        """Remove the executor *alias* (restarting the core while the scheduler runs).

        Raises:
            KeyError: there is no such executor.
        """
        with self._lock:
            if alias not in self._executors:
                raise KeyError(f"No such executor: {alias}")
            self._change_while_running(self._executors, alias, None)
        self._dispatch_event(SchedulerEvent(EVENT_EXECUTOR_REMOVED, alias))

    def add_jobstore(
        self,
        jobstore: BaseJobStore | DataStore | str,
        alias: str = "default",
        **jobstore_opts: Any,
    ) -> None:
        """Add a job store (an instance, a horae data store, or a plugin name with its
        options). While the scheduler runs, this restarts its horae core (waiting for
        running jobs), so it cannot be done from inside a job.

        Raises:
            ValueError: there is already a job store called *alias*.
        """
        with self._lock:
            if alias in self._jobstores:
                raise ValueError(
                    f'This scheduler already has a job store by the alias of "{alias}"'
                )
            if isinstance(jobstore, str):
                made = make_plugin(
                    "jobstore", BaseJobStore, JOBSTORE_TYPES, jobstore, jobstore_opts
                )
            elif isinstance(jobstore, (BaseJobStore, DataStore)):
                made = make_jobstore(jobstore, alias)
            else:
                raise TypeError(
                    f"Expected a job store instance or a string, got "
                    f"{type(jobstore).__name__} instead"
                )
            self._change_while_running(self._jobstores, alias, made)
        self._dispatch_event(SchedulerEvent(EVENT_JOBSTORE_ADDED, alias))

    def remove_jobstore(self, alias: str, shutdown: bool = True) -> None:
        """Remove the job store *alias* (its data stays in the store). While the scheduler
        runs this restarts its core; the ``"default"`` store cannot be removed then.

        Raises:
            KeyError: there is no such job store.
        """
        with self._lock:
            if alias not in self._jobstores:
                raise KeyError(f"No such job store: {alias}")
            if alias == "default" and self.state != STATE_STOPPED:
                raise ValueError(
                    "the default job store cannot be removed while the scheduler runs "
                    "(horae needs one); shut the scheduler down first"
                )
            self._change_while_running(self._jobstores, alias, None)
        self._dispatch_event(SchedulerEvent(EVENT_JOBSTORE_REMOVED, alias))

    def _change_while_running(self, registry: dict[str, Any], alias: str, value: Any) -> None:
        previous = registry.get(alias)
        if value is None:
            del registry[alias]
        else:
            registry[alias] = value
        if self.state == STATE_STOPPED:
            return
        try:
            self._reopen_core()
        except BaseException:
            if previous is None:
                registry.pop(alias, None)
            else:
                registry[alias] = previous
            if self._core is None:
                self._core = self._open_core()
                if self.state == STATE_RUNNING:
                    self._core.start_processing()
            raise

    def add_listener(self, callback: Callable[[Any], object], mask: int = EVENT_ALL) -> None:
        """Call *callback* with every event whose code is in *mask*.

        Events caused by a call (job added, modified, removed...) arrive in the calling
        thread before the call returns; events of job runs arrive on one event thread
        (the event loop, for AsyncIOScheduler), in order. A listener may take a more
        specific event class (``JobExecutionEvent``) when its mask only selects those.
        """
        self._listeners.add(callback, mask)

    def remove_listener(self, callback: Callable[[Any], object]) -> None:
        """Remove a listener added with :meth:`add_listener`."""
        self._listeners.remove(callback)

    def _dispatch_event(self, event: SchedulerEvent) -> None:
        self._listeners.dispatch(event)

    def _real_add_job(self, core: Core, job: Job, alias: str, replace_existing: bool) -> None:
        if alias not in self._jobstores:
            raise KeyError(f"No such job store: {alias}")
        defaults = {k: v for k, v in self._job_defaults.items() if not hasattr(job, k)}
        if not hasattr(job, "next_run_time"):
            defaults["next_run_time"] = job.trigger.get_next_fire_time(None, utc_now())
        job._modify(**defaults)
        task = self._codec.task_of(core, job)
        try:
            core.call(core.write, alias, self._codec.stored(job, task), replace=replace_existing)
        except _HoraeConflictingIdError:
            raise ConflictingIdError(job.id) from None
        job._jobstore_alias = alias
        self._bridge.track(job, alias)
        self._dispatch_event(JobEvent(EVENT_JOB_ADDED, job.id, alias))
        self._logger.info('Added job "%s" to job store "%s"', job.name, alias)
