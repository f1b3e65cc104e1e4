"""AsyncScheduler: the public API of the async core.

This module owns the life cycle (services, start, stop) and the user-facing methods. The
work itself lives elsewhere: :mod:`horae._scheduler_loop` turns due schedules into jobs,
:mod:`horae._worker` runs jobs, :mod:`horae._tasks` maps callables to tasks and
:mod:`horae._scheduler_args` checks arguments.

Life cycle::

    async with AsyncScheduler() as scheduler:    # services: broker, stores, executors
        await scheduler.add_schedule(...)          # works as soon as services run
        await scheduler.run_until_stopped()        # or start_in_background()
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, TypeVar, cast
from uuid import UUID

import anyio
import anyio.abc

from . import _scheduler_control as _control
from ._clock import Clock
from ._enums import CoalescePolicy, ConflictPolicy, OverlapPolicy, RunState, SchedulerRole
from ._exceptions import ScheduleLookupError
from ._logging import component_logger
from ._scheduler_args import (
    CoalesceName,
    ConflictName,
    OverlapName,
    RoleName,
    as_args,
    as_enum,
    as_job_id,
    as_kwargs,
    as_optional_duration,
    as_optional_positive_duration,
    check_event_types,
    check_metadata,
    check_optional_positive_int,
    check_optional_str,
    check_retry,
    first_fire_time_from,
    make_config,
    make_schedule,
    non_negative_duration,
    positive_int,
    resume_fire_time,
    upcoming_fire_times,
)
from ._scheduler_control import ScheduleSpec, SyncResult
from ._scheduler_loop import make_adhoc_job
from ._scheduler_runtime import Runtime, open_services
from ._structures import Job, JobResult, RetryPolicy, Schedule, Task
from ._tasks import TaskService
from ._validation import require_aware
from ._worker import unwrap_result, wait_for_result
from .datastores._base import DataStore
from .eventbrokers._base import EventBroker, Subscription
from .events import (
    Event,
    JobAdded,
    JobCancellationRequested,
    JobReleased,
    ScheduleAdded,
    ScheduleUnpaused,
    ScheduleUpdated,
    TaskAdded,
    TaskRemoved,
    TaskUpdated,
)
from .executors._base import JobExecutor
from .triggers._base import Trigger

_E = TypeVar("_E", bound=Event)

#: How long ``run_job`` keeps the result it waits for (it reads it at once, unless the
#: broker lost the event, in which case it finds the result by polling within this time).
RUN_JOB_RESULT_EXPIRATION = timedelta(minutes=15)

_WAKE_EVENTS = (
    TaskAdded, TaskUpdated, TaskRemoved, ScheduleAdded, ScheduleUpdated, ScheduleUnpaused,
    JobAdded, JobReleased, JobCancellationRequested,
)  # fmt: skip


class AsyncScheduler:
    """The asyncio-native scheduler.

    ``async with scheduler:`` starts its services (broker, stores, executors); then
    :meth:`start_in_background` or :meth:`run_until_stopped` runs the processing: a loop
    that turns due schedules into jobs (``role`` "scheduler"), a worker that runs them
    (``role`` "worker"), and a cleanup loop. How it behaves:

    * Time comes only from ``clock``. Nothing polls busily: each loop sleeps until the
      earliest next fire time or job start its stores report, woken early by broker
      events (schedule added or changed, job added or released). Only where a store is
      shared with other processes, or the broker lost its connection, does it also poll
      every ``lease_duration / 2``, in case an event was lost.
    * A store error inside a loop is logged and retried after 0.5 s, doubling up to 60 s;
      it never stops the scheduler.
    * Clock skew between nodes sharing a store: every store method gets ``now`` from this
      scheduler's clock, never from another machine. Running jobs' leases are renewed
      every third of ``lease_duration``, so another node takes one for lapsed only if
      its clock is ahead by more than about two thirds of ``lease_duration`` (the lease
      margin). Skew below that margin shifts when fires start (a node ahead by *d* may
      start a job *d* early) but cannot duplicate one: exactly-once is guarded by a
      durable key per (schedule, fire time) and by fencing on the holder's identity,
      neither of which compares clocks. Beyond the margin a job may be declared
      abandoned while it still runs; keep clocks synchronised well below it.
    * A callable's task id is its ``"module:qualname"`` (or its ``@task`` id). Lambdas,
      closures and bound methods of local objects get ``"module:qualname#<random>"``;
      only the memory store takes them, and they run only in this process.
    * After downtime, ``CoalescePolicy.latest``/``earliest`` make one job whatever the
      number of missed fire times, in O(1) trigger evaluations; ``all`` makes one per
      missed fire time, at most 1000 per schedule per round.

    Args:
        data_store: the ``"default"`` data store (a new :class:`MemoryDataStore` if
            neither this nor ``data_stores`` is given).
        event_broker: the event broker (a new :class:`LocalEventBroker` by default).
        data_stores: named stores, ``{"default": ..., "redis": ...}``; pick one with
            ``data_store="redis"`` in ``add_schedule``/``add_job``. Ids are unique per
            store. Lookups without an alias search every store, ``"default"`` first.
        identity: this node's id in leases (default ``"<host>-<pid>-<object id>"``).
        role: ``both`` (default), ``scheduler`` (only turns schedules into jobs) or
            ``worker`` (only runs jobs).
        max_concurrent_jobs: at most this many jobs run at once on this node.
        job_executors: extra or replacement executors by name; ``"async"``,
            ``"threadpool"`` and ``"processpool"`` are always there.
        default_job_executor: the executor for plain functions (``"threadpool"``);
            coroutine functions always default to ``"async"``.
        lease_duration: how long a schedule or job lease lasts before another node may
            take it over; running jobs renew theirs every third of it. Where the store
            is shared, a node also polls every half of it, in case a broker event is lost.
        cleanup_interval: how often expired results are removed (``None``: never).
        logger: where the scheduler logs (``logging.getLogger("horae")``).
        clock: the time source (:class:`SystemClock`; tests pass a ``FakeClock``).
        stop_grace_period: after ``stop()``, running jobs may finish for this long (30
            seconds by default, on the scheduler's clock) before they are cancelled.
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
        self._config = make_config(
            self, data_store=data_store, event_broker=event_broker, data_stores=data_stores,
            identity=identity, role=role, max_concurrent_jobs=max_concurrent_jobs,
            job_executors=job_executors, default_job_executor=default_job_executor,
            lease_duration=lease_duration, cleanup_interval=cleanup_interval, logger=logger,
            clock=clock, stop_grace_period=stop_grace_period,
        )  # fmt: skip
        self._stores = self._config.stores
        self._broker = self._config.broker
        self._clock = self._config.clock
        self._logger = component_logger(self._config.logger, "scheduler")
        self._tasks = TaskService(
            self._stores, self._config.executors, self._config.default_executor
        )
        self._state = RunState.stopped
        self._services: AsyncExitStack | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._runtime: Runtime | None = None
        self._stopped: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"AsyncScheduler(identity={self.identity!r}, state={self._state.value!r})"

    @property
    def state(self) -> RunState:
        """``stopped``, ``starting``, ``started`` or ``stopping``."""
        return self._state

    @property
    def identity(self) -> str:
        """This node's id in leases and events."""
        return self._config.identity

    @property
    def role(self) -> SchedulerRole:
        """Whether this node processes schedules, runs jobs, or both."""
        return self._config.role

    @property
    def clock(self) -> Clock:
        """The clock the scheduler reads and sleeps on."""
        return self._clock

    # ---- life cycle -------------------------------------------------------------------

    async def __aenter__(self) -> AsyncScheduler:
        """Start the services (broker, stores, executors); processing starts with
        :meth:`start_in_background` or :meth:`run_until_stopped`."""
        if self._services is not None:
            raise RuntimeError("this AsyncScheduler is already entered ('async with')")
        self._services, self._task_group = await open_services(
            self._config, self._on_event, _WAKE_EVENTS
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop processing (letting running jobs finish), then the services."""
        try:
            if self._state is not RunState.stopped:
                await self.stop()
                await self.wait_until_stopped()
        finally:
            stack, self._services, self._task_group = self._services, None, None
            if stack is not None:
                # Not handing the body's exception to the stack: its task group would
                # wrap it in an ExceptionGroup; let it propagate as it is instead.
                await stack.aclose()

    async def run_until_stopped(self) -> None:
        """Process schedules and run jobs in this task until :meth:`stop` is called.

        Enters the services first (and leaves them afterwards) if the scheduler is not
        already inside ``async with``.
        """
        if self._services is None:
            async with self:
                await self._run()
        else:
            await self._run()

    async def start_in_background(self) -> None:
        """Start processing in a background task and return once it has started.

        Needs ``async with scheduler:`` (the background task lives in its task group).
        """
        if self._task_group is None:
            raise RuntimeError(
                "start_in_background() needs the scheduler's services: use 'async with "
                "AsyncScheduler(...) as scheduler: await scheduler.start_in_background()', "
                "or call 'await scheduler.run_until_stopped()' instead"
            )
        await self._task_group.start(self._run)

    async def stop(self) -> None:
        """Ask the scheduler to stop; returns at once (see :meth:`wait_until_stopped`).

        It stops acquiring schedules and jobs, lets running jobs finish for up to
        ``stop_grace_period``, cancels the rest, releases its leases and publishes
        ``SchedulerStopped``. Safe to call from a job, and when already stopped.
        """
        if self._state not in (RunState.starting, RunState.started):
            return
        self._state = RunState.stopping
        if self._runtime is not None:
            self._runtime.request_stop()

    async def wait_until_stopped(self) -> None:
        """Return once the scheduler has stopped (at once if it is not running)."""
        if self._stopped is not None and self._state is not RunState.stopped:
            await self._stopped.wait()

    async def _run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        if self._state is not RunState.stopped:
            raise RuntimeError(f"the scheduler is already running (state: {self._state})")
        self._state = RunState.starting
        self._stopped = anyio.Event()
        self._runtime = runtime = Runtime(self, self._config, self._tasks)

        def started() -> None:
            if self._state is RunState.starting:  # stop() may already have come
                self._state = RunState.started
            self._logger.info("Scheduler %s started (role: %s)", self.identity, self.role)
            task_status.started()

        try:
            await runtime.run(started)
        finally:
            self._runtime = None
            self._state = RunState.stopped
            self._stopped.set()

    def _on_event(self, event: Event) -> None:
        # Runs inline in the broker's publish, on the event loop thread; must not block.
        if isinstance(event, (TaskAdded, TaskUpdated, TaskRemoved)):
            self._tasks.cache.invalidate(event.task_id)
        elif self._runtime is not None:
            self._runtime.on_event(event)

    def _require_services(self, method: str) -> None:
        if self._services is None:
            raise RuntimeError(
                f"{method}() needs the scheduler's services: use 'async with "
                f"AsyncScheduler(...) as scheduler:' first"
            )

    # ---- tasks ------------------------------------------------------------------------

    async def configure_task(
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
        """Create or update a task on every data store that can hold it.

        Arguments left as ``None`` keep the current value (or the ``@task`` setting, or
        the default, for a new task). A callable without an importable reference (a
        lambda) only goes to stores that do not require references.

        Args:
            func_or_task_id: the callable, or a task id (then ``func`` may give the
                callable).
            func: the callable for a task id given as a string.
            job_executor: the executor name for its jobs.
            misfire_grace_time: its jobs' default start deadline after their scheduled
                time (``timedelta`` or seconds).
            max_running_jobs: at most this many of its jobs run at once, on all nodes.
            job_timeout: its jobs are stopped after running this long (async jobs are
                cancelled, thread jobs abandoned, process jobs' workers killed) and end
                as ``JobOutcome.timed_out``.
            retry: how its failed jobs are retried (:class:`RetryPolicy`).
            metadata: free-form JSON-safe data.

        Returns:
            The task as stored in the first store that holds it ("default" first).

        Raises:
            TaskLookupError: a task id that no store knows, without ``func``.
            SerializationError: a callable that no configured store can hold.
        """
        self._require_services("configure_task")
        changes: dict[str, Any] = {}
        if job_executor is not None:
            changes["job_executor"] = job_executor
        if misfire_grace_time is not None:
            changes["misfire_grace_time"] = as_optional_duration(
                misfire_grace_time, "misfire_grace_time"
            )
        if max_running_jobs is not None:
            changes["max_running_jobs"] = check_optional_positive_int(
                max_running_jobs, "max_running_jobs"
            )
        if job_timeout is not None:
            changes["job_timeout"] = as_optional_positive_duration(job_timeout, "job_timeout")
        if retry is not None:
            changes["retry"] = check_retry(retry)
        if metadata is not None:
            changes["metadata"] = check_metadata(metadata)
        return await self._tasks.configure(func_or_task_id, func, changes)

    async def get_tasks(self) -> list[Task]:
        """Every task of every store, sorted by id (a task in two stores appears twice)."""
        self._require_services("get_tasks")
        tasks = [task for store in self._stores.values() for task in await store.get_tasks()]
        return sorted(tasks, key=lambda task: task.id)

    # ---- schedules --------------------------------------------------------------------

    async def add_schedule(
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
        """Schedule a callable (or a task id) to run whenever *trigger* fires.

        Args:
            func_or_task_id: the callable, or the id of a configured task.
            trigger: a :class:`Trigger`, a crontab string (``"*/5 * * * *"``), or a
                trigger kind (``"cron"``, ``"interval"``, ``"date"``,
                ``"calendarinterval"``) whose arguments follow as ``**trigger_args``
                (APScheduler 3 spellings and ``jitter=`` accepted).
            id: the schedule id (default: a new UUID string).
            args: positional arguments for each job.
            kwargs: keyword arguments for each job.
            paused: store the schedule paused.
            job_executor: run its jobs on this executor instead of the task's.
            coalesce: after downtime, one job for the ``latest`` (default) or
                ``earliest`` missed fire time, or ``all`` of them.
            misfire_grace_time: a job that cannot start within this time of its fire
                time ends as ``missed_start_deadline`` (default: the task's; no limit).
            max_jitter: delay each job by a random ``0..max_jitter``, never past the
                next fire time.
            max_running_jobs: at most this many jobs of this schedule run at once.
            job_timeout: stop each job after it has run this long (default: the
                task's); it ends as ``JobOutcome.timed_out``.
            retry: retry failed jobs by this :class:`RetryPolicy` (default: the
                task's).
            overlap: what a fire does while a job of this schedule is unfinished, on
                any node: ``allow`` (default: run side by side), ``skip`` (make no
                job), ``buffer_one`` (keep one waiting), ``cancel_running`` (cancel
                it; the new job starts once it has ended). Under every policy but
                ``allow`` the schedule's jobs run one at a time.
            max_catchup: with ``coalesce="all"``, make jobs for at most this many
                (the latest) missed fire times after downtime; the rest are reported
                by a ``SchedulerCaughtUp`` event.
            job_result_expiration_time: keep each job's result this long.
            metadata: free-form JSON-safe data.
            conflict_policy: when the id exists: ``do_nothing`` (default, keep it),
                ``replace``, or ``exception`` (:exc:`ConflictingIdError`).
            data_store: the alias of the store to keep it in.
            **trigger_args: the trigger kind's arguments.

        Returns:
            The schedule id (the existing one's when ``do_nothing`` kept it).

        Raises:
            ConfigurationError: unknown store alias or job executor.
            SerializationError: a callable (lambda, closure) that a store keeping
                references cannot hold; nothing is stored.
            ConflictingIdError: the id exists and ``conflict_policy`` is ``exception``.
            TypeError, ValueError: bad arguments; nothing is stored.
        """
        self._require_services("add_schedule")
        store = self._config.store(data_store)
        task_id, _, _ = self._tasks.identify(func_or_task_id)
        schedule = make_schedule(
            self._config.executors, id=id, task_id=task_id, trigger=trigger,
            trigger_args=trigger_args, args=args, kwargs=kwargs, paused=paused,
            job_executor=job_executor, coalesce=coalesce,
            misfire_grace_time=misfire_grace_time, max_jitter=max_jitter,
            max_running_jobs=max_running_jobs,
            job_result_expiration_time=job_result_expiration_time, metadata=metadata,
            job_timeout=job_timeout, retry=retry, overlap=overlap, max_catchup=max_catchup,
        )  # fmt: skip
        schedule_id = schedule.id
        conflict_policy = as_enum(conflict_policy, ConflictPolicy, "conflict_policy")
        # A generated id (a new UUID) cannot conflict: no need to read the store first.
        if (
            id is not None
            and conflict_policy is not ConflictPolicy.replace
            and (await store.get_schedules([schedule_id]))
        ):
            # Settle the conflict before touching the task, so that a refused schedule
            # leaves nothing behind (the store still decides races atomically).
            self._tasks.register_only(func_or_task_id)
            if await store.add_schedule(schedule, conflict_policy):
                # the old schedule vanished meanwhile and this one was stored instead
                await self._tasks.prepare(func_or_task_id, data_store, store, job_executor)
            return schedule_id
        await self._tasks.prepare(func_or_task_id, data_store, store, job_executor)
        await store.add_schedule(schedule, conflict_policy)
        return schedule_id

    async def _locate_schedule(
        self, schedule_id: Any, alias: str | None
    ) -> tuple[str, DataStore, Schedule]:
        """``(store alias, store, schedule)`` of the first store that has the schedule."""
        if not isinstance(schedule_id, str):
            raise TypeError(
                f"a schedule id must be a str, not {type(schedule_id).__name__} {schedule_id!r}"
            )
        for store_alias, store in self._config.search(alias):
            found = await store.get_schedules([schedule_id])
            if found:
                return store_alias, store, found[0]
        raise ScheduleLookupError(schedule_id)

    async def _find_schedule(
        self, schedule_id: Any, alias: str | None
    ) -> tuple[DataStore, Schedule]:
        _, store, schedule = await self._locate_schedule(schedule_id, alias)
        return store, schedule

    async def get_schedule(
        self,
        id: str,  # noqa: A002 - the SPEC's name
        *,
        data_store: str | None = None,
    ) -> Schedule:
        """Return the schedule (searching every store unless ``data_store`` names one).

        Raises:
            ScheduleLookupError: no such schedule.
        """
        self._require_services("get_schedule")
        return (await self._find_schedule(id, data_store))[1]

    async def get_schedules(self, *, data_store: str | None = None) -> list[Schedule]:
        """Every schedule (of one store, or of all), sorted by id."""
        self._require_services("get_schedules")
        found = [
            s for _, store in self._config.search(data_store) for s in await store.get_schedules()
        ]
        return sorted(found, key=lambda schedule: schedule.id)

    async def remove_schedule(
        self,
        id: str,  # noqa: A002 - the SPEC's name
        *,
        data_store: str | None = None,
    ) -> None:
        """Remove the schedule (its pending jobs stay and run).

        Raises:
            ScheduleLookupError: no such schedule.
        """
        self._require_services("remove_schedule")
        store, _ = await self._find_schedule(id, data_store)
        await store.remove_schedules([id])

    async def pause_schedule(
        self,
        id: str,  # noqa: A002 - the SPEC's name
        *,
        reason: str | None = None,
        until: datetime | None = None,
        data_store: str | None = None,
    ) -> None:
        """Pause the schedule: it makes no jobs until unpaused.

        Args:
            id: the schedule id.
            reason: why (kept with the schedule, shown by ``horae schedules list`` and
                in the ``SchedulePaused`` event).
            until: unpause by itself at this moment (an aware datetime); fire times
                missed while paused then follow the coalesce policy.
            data_store: the store alias (default: search every store).

        Raises:
            ScheduleLookupError: no such schedule.
            TypeError, ValueError: a non-str reason, a naive or non-datetime ``until``.
        """
        self._require_services("pause_schedule")
        reason = check_optional_str(reason, "reason")
        if until is not None:
            until = require_aware(until, "until")
        store, _ = await self._find_schedule(id, data_store)
        await store.pause_schedule(id, reason=reason, until=until)

    async def unpause_schedule(
        self,
        id: str,  # noqa: A002 - the SPEC's name
        *,
        resume_from: datetime | Literal["now"] | None = None,
        data_store: str | None = None,
    ) -> None:
        """Unpause the schedule.

        Args:
            id: the schedule id.
            resume_from: ``None`` keeps the fire times missed while paused, which the
                coalesce policy then handles; ``"now"`` skips them; a datetime skips
                those before it. A schedule whose trigger has no fire time left after
                ``resume_from`` is removed as finished.
            data_store: the store alias (default: search every store).

        Raises:
            ScheduleLookupError: no such schedule.
        """
        self._require_services("unpause_schedule")
        store, schedule = await self._find_schedule(id, data_store)
        try:
            next_fire_time = resume_fire_time(schedule, resume_from, self._clock.now())
        except LookupError:
            await store.remove_schedules([id], finished=True)
            return
        await store.unpause_schedule(id, next_fire_time=next_fire_time)

    async def preview(
        self, id_or_trigger: str | Trigger, count: int = 10, *, data_store: str | None = None
    ) -> list[datetime]:
        """The next *count* fire times of a schedule (from its next fire time) or of a
        trigger (from now), without changing anything."""
        count = positive_int(count, "count")
        if isinstance(id_or_trigger, Trigger):
            start = first_fire_time_from(id_or_trigger, self._clock.now())
            return upcoming_fire_times(id_or_trigger, start, count)
        self._require_services("preview")
        _, schedule = await self._find_schedule(id_or_trigger, data_store)
        return upcoming_fire_times(schedule.trigger, schedule.next_fire_time, count)

    async def _find_with_task(
        self, schedule_id: Any, alias: str | None
    ) -> tuple[DataStore, Schedule, Task | None]:
        store_alias, store, schedule = await self._locate_schedule(schedule_id, alias)
        task = await self._tasks.cache.get_optional(store_alias, store, schedule.task_id)
        return store, schedule, task

    async def run_schedule_now(
        self,
        id: str,  # noqa: A002 - the SPEC's name
        *,
        data_store: str | None = None,
    ) -> UUID:
        """Make one extra job of the schedule, due now, without moving the schedule.

        The job has the schedule's arguments and policies and no scheduled fire time.
        Under an overlap policy other than ``allow`` it waits for a running job of the
        schedule to end (the schedule's jobs run one at a time); it is never skipped,
        since it was asked for explicitly.

        Returns:
            The new job's id.

        Raises:
            ScheduleLookupError: no such schedule.
        """
        self._require_services("run_schedule_now")
        store, schedule, task = await self._find_with_task(id, data_store)
        job = await _control.run_schedule_now(store, schedule, task, self._clock.now())
        return job.id

    async def backfill(
        self,
        id: str,  # noqa: A002 - the SPEC's name
        start: datetime,
        end: datetime,
        *,
        dry_run: bool = False,
        data_store: str | None = None,
    ) -> list[datetime]:
        """Make one job per fire time of the schedule in ``[start, end]``; return those
        fire times (only return them with ``dry_run=True``).

        The jobs start now, in fire-time order, each with its fire time as
        ``scheduled_fire_time`` (so a job can read which period it covers from
        ``current_job``). The schedule itself does not move, and fire times that have
        already run are run again: a backfill is an explicit request. Overlap is
        respected: under any policy but ``allow`` the backfilled jobs run one at a time,
        after a running job of the schedule, never beside it. At most
        10,000 fire times per call.

        Raises:
            ScheduleLookupError: no such schedule.
            ValueError: ``end`` before ``start``, or too many fire times.
            TypeError: naive or non-datetime bounds.
        """
        self._require_services("backfill")
        start = require_aware(start, "start")
        end = require_aware(end, "end")
        store, schedule, task = await self._find_with_task(id, data_store)
        fire_times = _control.backfill_fire_times(schedule, start, end)
        if not dry_run and fire_times:
            await _control.backfill(store, schedule, task, fire_times, self._clock.now())
        return fire_times

    async def sync_schedules(
        self,
        specs: Iterable[ScheduleSpec],
        *,
        prune: bool = False,
        data_store: str = "default",
    ) -> SyncResult:
        """Make the store's schedules match the ones declared in code.

        Adds the declared schedules that are missing, updates the ones whose
        declaration changed, and with ``prune=True`` removes every other schedule of
        the store (including ones made with ``add_schedule``: prune only a store whose
        schedules are all declared). Every process of a deployment may call it with the
        same list at the same time: they converge on one copy of each schedule. An
        update keeps the schedule's pause state, and keeps its next fire time when the
        trigger did not change (an interval trigger without a start time counts as
        unchanged), so a redeploy neither re-fires nor delays anything.

        Returns:
            :class:`SyncResult`: the ids added, updated, unchanged and removed.

        Raises:
            TypeError, ValueError: not ScheduleSpec objects, an id declared twice, or a
                bad argument in a spec (checked for all specs before anything changes).
            SerializationError: a callable the store cannot keep a reference to.
        """
        self._require_services("sync_schedules")
        checked = _control.check_specs(specs)
        if not isinstance(prune, bool):
            raise TypeError(f"prune must be a bool, not {type(prune).__name__} {prune!r}")
        return await _control.sync_schedules(
            self._config, self._tasks, checked, prune=prune, alias=data_store
        )

    # ---- jobs -------------------------------------------------------------------------

    async def add_job(
        self,
        func_or_task_id: Callable[..., Any] | str,
        *,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        job_executor: str | None = None,
        result_expiration_time: timedelta | float = 0,
        data_store: str = "default",
    ) -> UUID:
        """Add a job that runs as soon as a worker is free; return its id.

        Keep its result with ``result_expiration_time`` to read it with
        :meth:`get_job_result` (with 0 the result is not kept).
        """
        self._require_services("add_job")
        store = self._config.store(data_store)
        job_args, job_kwargs = as_args(args), as_kwargs(kwargs)
        expiration = non_negative_duration(result_expiration_time, "result_expiration_time")
        task = await self._tasks.prepare(func_or_task_id, data_store, store, job_executor)
        job = make_adhoc_job(
            task, job_args, job_kwargs, job_executor, expiration, self._clock.now()
        )
        await store.add_jobs([job])
        return job.id

    async def get_jobs(self, *, data_store: str | None = None) -> list[Job]:
        """The pending and running jobs (of one store, or of all), by start time."""
        self._require_services("get_jobs")
        jobs = [
            job for _, store in self._config.search(data_store) for job in await store.get_jobs()
        ]
        return sorted(jobs, key=lambda job: job.start_time)

    async def get_job_result(self, job_id: UUID | str, *, wait: bool = True) -> JobResult:
        """The result of a job, waiting for it to finish unless ``wait=False``.

        The result is returned for every outcome (read ``result.outcome``); use
        :meth:`run_job` to get the value or the exception directly.

        Raises:
            JobLookupError: no such job, or it finished without keeping its result
                (``result_expiration_time`` was 0, or it has expired).
            JobResultNotReady: ``wait=False`` and the job has not finished.
        """
        self._require_services("get_job_result")
        return await wait_for_result(self._config, as_job_id(job_id), wait=wait)

    async def run_job(
        self,
        func_or_task_id: Callable[..., Any] | str,
        *,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        job_executor: str | None = None,
    ) -> Any:
        """Run a job, wait for it and return its value (a worker must be running).

        Raises:
            Exception: whatever the job raised.
            JobCancelled: the job was cancelled.
            JobDeadlineMissed: it could not start before its start deadline.
            TimeoutError: it ran past its ``job_timeout``.
        """
        job_id = await self.add_job(
            func_or_task_id,
            args=args,
            kwargs=kwargs,
            job_executor=job_executor,
            result_expiration_time=RUN_JOB_RESULT_EXPIRATION,
        )
        return unwrap_result(await self.get_job_result(job_id))

    async def cancel_job(self, job_id: UUID | str) -> bool:
        """Cancel a pending or running job, on whichever node it runs.

        A pending job ends at once; a running one is cancelled by the node that runs it
        (an async job at its next ``await``, a thread job abandoned, a process job's
        worker killed), within moments. Either way it ends as
        ``JobOutcome.cancelled`` and is not retried.

        Returns:
            True if the job was cancelled (or its cancellation requested); False if it
            had already finished.

        Raises:
            JobLookupError: no such job, and no result of one.
        """
        self._require_services("cancel_job")
        return await _control.cancel_job(self._config, as_job_id(job_id))

    # ---- events -----------------------------------------------------------------------

    def subscribe(
        self,
        callback: Callable[[_E], object],
        event_types: type[_E] | Iterable[type[_E]] | None = None,
        *,
        one_shot: bool = False,
    ) -> Subscription:
        """Call *callback* with every event of *event_types* (all if ``None``).

        Sync callbacks run on the event loop thread and must return quickly; async
        ones are awaited in a task of their own. A callback that raises is logged and
        never breaks the scheduler. ``one_shot`` ends the subscription after one event.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        types = check_event_types(event_types)
        # With event_types given, the broker only passes events of those types.
        broker_callback = cast("Callable[[Event], object]", callback)
        return self._broker.subscribe(broker_callback, types, one_shot=bool(one_shot))
