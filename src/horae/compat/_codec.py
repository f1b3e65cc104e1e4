"""Converting between compat :class:`~horae.compat.Job` objects and horae schedules.

:class:`JobCodec` also remembers the callables of this process by horae task id, so that
``Job.func`` can be shown for stored jobs, and so that callables without an importable
reference (lambdas, closures: memory stores only) keep running after the core restarts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from horae._enums import CoalescePolicy
from horae._exceptions import DeserializationError, SerializationError
from horae._marshalling import ref_to_callable
from horae._structures import Schedule

from ._bridge import Bridge
from ._core import METADATA_KEY, Core, StoredJob
from ._util import get_callable_name
from .job import Job
from .triggers import CronTrigger, view_of

if TYPE_CHECKING:
    from ._base import BaseScheduler

#: Separates the name of a callable without a reference from the job id in its task id.
_LOCAL_MARK = "#"


def _seconds(value: timedelta | None) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds()
    return int(seconds) if seconds == int(seconds) else seconds


class JobCodec:
    """Makes Job objects from stored schedules and stored jobs from Job objects.

    Args:
        scheduler: the compat scheduler that the Job objects belong to.
        bridge: where Job objects are registered so that their next run time stays
            current.
    """

    def __init__(self, scheduler: BaseScheduler, bridge: Bridge) -> None:
        self._scheduler = scheduler
        self._bridge = bridge
        self._lock = threading.Lock()
        self._funcs: dict[str, Callable[..., Any]] = {}

    def task_of(self, core: Core, job: Job) -> Callable[..., Any] | str:
        """What ``add_schedule`` gets for *job*'s callable: the callable itself when it
        has an importable reference (horae's task id is then that reference), else the id
        of a task registered for it in this process (``"module:qualname#<job id>"``)."""
        func = job.func
        assert func is not None, "a job being stored always has its callable"
        if job.func_ref is not None:
            with self._lock:
                self._funcs[job.func_ref] = func
            return func
        module = getattr(func, "__module__", None) or type(func).__module__
        task_id = f"{module}:{get_callable_name(func)}{_LOCAL_MARK}{job.id}"
        core.call(core.register, task_id, func)
        with self._lock:
            self._funcs[task_id] = func
        return task_id

    def reregister(self, core: Core) -> None:
        """Hand a new core the callables that only this process can run."""
        with self._lock:
            local = [(task_id, f) for task_id, f in self._funcs.items() if _LOCAL_MARK in task_id]
        for task_id, func in local:
            with contextlib.suppress(SerializationError, LookupError):
                # (no store can hold it any more: nothing is left for it to run)
                core.call(core.register, task_id, func)

    def stored(self, job: Job, task: Callable[..., Any] | str) -> StoredJob:
        """What the core writes for *job* (all its options set), running *task*."""
        trigger = job.trigger
        next_run_time = job.next_run_time
        return StoredJob(
            id=job.id,
            task=task,
            trigger=trigger.horae_trigger
            if next_run_time is None
            else trigger.anchored_at(next_run_time),
            args=tuple(job.args),
            kwargs=dict(job.kwargs),
            executor=job.executor,
            coalesce=job.coalesce,
            misfire_grace_time=job.misfire_grace_time,
            max_instances=job.max_instances,
            max_jitter=trigger.max_jitter,
            name=job.name,
            trigger_text=str(trigger) if isinstance(trigger, CronTrigger) else None,
            next_run_time=next_run_time,
        )

    def func_of(self, task_id: str) -> tuple[Callable[..., Any] | None, str | None]:
        """The callable of the task *task_id* in this process and its reference (either
        may be ``None``: a lambda added by another process, an unimportable reference)."""
        with self._lock:
            func = self._funcs.get(task_id)
        ref = None if _LOCAL_MARK in task_id else task_id
        if func is None and ref is not None:
            try:
                func = ref_to_callable(ref)
            except (DeserializationError, ImportError, AttributeError, ValueError):
                return None, ref
            with self._lock:
                self._funcs[ref] = func
        return func, ref

    def view(self, alias: str, schedule: Schedule) -> Job:
        """The Job object for *schedule* of the store *alias* (kept current from now on)."""
        extra = schedule.metadata.get(METADATA_KEY)
        extra = extra if isinstance(extra, dict) else dict(extra or {})
        func, func_ref = self.func_of(schedule.task_id)
        name = extra.get("name") or (get_callable_name(func) if func else schedule.task_id)
        job = Job._view(
            self._scheduler,
            alias,
            id=schedule.id,
            name=name,
            func=func,
            func_ref=func_ref,
            args=tuple(schedule.args),
            kwargs=dict(schedule.kwargs),
            trigger=view_of(schedule.trigger, schedule.max_jitter, extra.get("trigger")),
            executor=schedule.job_executor or "default",
            misfire_grace_time=_seconds(schedule.misfire_grace_time),
            coalesce=schedule.coalesce is not CoalescePolicy.all,
            max_instances=schedule.max_running_jobs,
            next_run_time=None if schedule.paused else schedule.next_fire_time,
        )
        self._bridge.track(job, alias)
        return job
