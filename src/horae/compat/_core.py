"""The horae core of a compat scheduler and the store work the compat API needs.

:class:`Core` owns one horae :class:`~horae.Scheduler` (the sync facade: horae's event
loop on its own thread) built from the compat job stores and executors. Its coroutine
methods run on that loop (through ``Core.call``) and use the public AsyncScheduler and
DataStore APIs.

How a compat job is stored: as a horae schedule with the job's id, its executor alias as
``job_executor``, ``max_instances`` as ``max_running_jobs``, ``coalesce`` as the
``latest``/``all`` policy and its name and cron text in ``metadata["apscheduler"]``. Its
next run time is set explicitly: the schedule is written paused, then unpaused with the
next run time APScheduler 3 would use (``DataStore.unpause_schedule(next_fire_time=)``),
or left paused for ``next_run_time=None``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import attrs

from horae._context import current_job, current_scheduler
from horae._structures import Schedule
from horae._sync import Scheduler
from horae.datastores import DataStore
from horae.events import Event
from horae.executors._base import JobExecutor
from horae.triggers import Trigger

from ._bridge import BRIDGED_EVENTS

_T = TypeVar("_T")

#: Where a compat job keeps what horae's Schedule has no field for.
METADATA_KEY = "apscheduler"


@attrs.frozen(kw_only=True)
class StoredJob:
    """A compat job as it is written to a store."""

    id: str
    task: Callable[..., Any] | str
    trigger: Trigger
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    executor: str
    coalesce: bool
    misfire_grace_time: float | None
    max_instances: int | None
    max_jitter: timedelta | None
    name: str
    trigger_text: str | None
    next_run_time: datetime | None


def schedule_order(item: tuple[str, Schedule]) -> tuple[bool, float, str]:
    """APScheduler 3's job order within a store: by next run time, paused jobs last."""
    schedule = item[1]
    when = schedule.next_fire_time
    if schedule.paused or when is None:
        return True, 0.0, schedule.id
    return False, when.timestamp(), schedule.id


class Core:
    """One horae Scheduler built from a compat configuration.

    Args:
        stores: the data stores by job store alias (``"default"`` among them).
        executors: the job executors by executor alias (``"default"`` among them).
        logger: the logger of the horae scheduler.
        on_event: called (on horae's loop thread) with the events the bridge needs.
    """

    def __init__(
        self,
        stores: Mapping[str, DataStore],
        executors: Mapping[str, JobExecutor],
        logger: logging.Logger,
        on_event: Callable[[Event], None],
    ) -> None:
        self.stores = dict(stores)
        self.scheduler = Scheduler(
            data_stores=self.stores,
            job_executors=executors,
            default_job_executor="default",
            logger=logger,
        )
        self._on_event = on_event

    # ---- life cycle, from any thread but horae's loop ---------------------------------

    def open(self) -> None:
        """Start horae's loop thread and services (stores connect here)."""
        self.scheduler.subscribe(self._on_event, BRIDGED_EVENTS)

    def call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run the coroutine function *func* on horae's loop and return its result."""
        return self.scheduler.call(functools.partial(func, *args, **kwargs))

    def start_processing(self) -> None:
        """Start turning schedules into jobs and running them."""
        self.scheduler.start_in_background()

    def stop_processing(self) -> None:
        """Ask the processing to stop (returns at once)."""
        self.scheduler.stop()

    def resume_processing(self) -> None:
        """Wait until a previous stop has finished, then start processing again."""
        self.scheduler.wait_until_stopped()
        self.scheduler.start_in_background()

    def close(self) -> None:
        """Stop processing (running jobs get horae's stop grace period), close the stores
        and end the loop thread."""
        self.scheduler.close()

    def in_own_job(self) -> bool:
        """True when called from a job that this core is running (it cannot wait for the
        core to stop: that waits for the job itself)."""
        try:
            return (
                current_scheduler.get() is self.scheduler.async_scheduler
                and current_job.get() is not None
            )
        except LookupError:
            return False

    # ---- store work, on horae's loop --------------------------------------------------

    async def write(self, alias: str, job: StoredJob, *, replace: bool) -> None:
        """Store *job* in the store *alias* (replacing one with its id if *replace*).

        Raises:
            ConflictingIdError: the id exists and *replace* is False.
            ConfigurationError: unknown store alias or executor.
            SerializationError: a callable or arguments the store cannot keep.
        """
        metadata = {"name": job.name}
        if job.trigger_text is not None:
            metadata["trigger"] = job.trigger_text
        await self.scheduler.async_scheduler.add_schedule(
            job.task,
            job.trigger,
            id=job.id,
            args=job.args,
            kwargs=job.kwargs,
            paused=True,
            job_executor=job.executor,
            coalesce="latest" if job.coalesce else "all",
            misfire_grace_time=job.misfire_grace_time,
            max_jitter=job.max_jitter,
            max_running_jobs=job.max_instances,
            metadata={METADATA_KEY: metadata},
            conflict_policy="replace" if replace else "exception",
            data_store=alias,
        )
        if job.next_run_time is not None:
            await self.stores[alias].unpause_schedule(job.id, next_fire_time=job.next_run_time)

    async def register(self, task_id: str, func: Callable[..., Any]) -> str:
        """Make sure the task *task_id* runs *func* in this process (for callables that
        have no importable reference, such as lambdas); return the task id."""
        await self.scheduler.async_scheduler.configure_task(task_id, func=func)
        return task_id

    async def schedules(self, aliases: Iterable[str]) -> list[tuple[str, Schedule]]:
        """The schedules of the stores *aliases*, store by store, in APScheduler 3's order."""
        found: list[tuple[str, Schedule]] = []
        for alias in aliases:
            in_store = [(alias, schedule) for schedule in await self.stores[alias].get_schedules()]
            found.extend(sorted(in_store, key=schedule_order))
        return found

    async def find(self, job_id: str, aliases: Iterable[str]) -> tuple[str, Schedule] | None:
        """The first store among *aliases* that holds *job_id*, and its schedule."""
        for alias in aliases:
            found = await self.stores[alias].get_schedules([job_id])
            if found:
                return alias, found[0]
        return None

    async def remove(self, job_id: str, aliases: Iterable[str]) -> str | None:
        """Remove *job_id* from the first store among *aliases* that holds it; return
        that store's alias (``None``: no store had it)."""
        found = await self.find(job_id, aliases)
        if found is None:
            return None
        await self.stores[found[0]].remove_schedules([job_id])
        return found[0]

    async def remove_all(self, aliases: Iterable[str]) -> None:
        """Remove every schedule of the stores *aliases*."""
        for alias in aliases:
            store = self.stores[alias]
            schedules = await store.get_schedules()
            if schedules:
                await store.remove_schedules([schedule.id for schedule in schedules])

    async def pause(self, alias: str, job_id: str) -> None:
        """Pause the schedule *job_id* of the store *alias*."""
        await self.stores[alias].pause_schedule(job_id)

    async def unpause(self, alias: str, job_id: str, next_run_time: datetime) -> None:
        """Unpause the schedule *job_id*, due next at *next_run_time*."""
        await self.stores[alias].unpause_schedule(job_id, next_fire_time=next_run_time)

    async def task_ref(self, task_id: str) -> str | None:
        """The callable reference of the task *task_id* (``None`` if no store has it)."""
        for task in await self.scheduler.async_scheduler.get_tasks():
            if task.id == task_id:
                return task.func_ref
        return None
