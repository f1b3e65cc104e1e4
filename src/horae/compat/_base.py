"""BaseScheduler: APScheduler 3's scheduler API over a horae core.

The job half lives here (``add_job`` ... ``print_jobs``); the life cycle, configuration,
executors, job stores and listeners in :mod:`horae.compat._lifecycle`.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

from ._codec import JobCodec
from ._errors import JobLookupError
from ._lifecycle import STATE_PAUSED, STATE_RUNNING, STATE_STOPPED, SchedulerLifecycle
from ._util import Undefined, undefined, utc_now
from .events import (
    EVENT_ALL_JOBS_REMOVED,
    EVENT_JOB_MODIFIED,
    EVENT_JOB_REMOVED,
    JobEvent,
    SchedulerEvent,
)
from .job import Job
from .triggers import DateTrigger, IntervalTrigger, create_trigger

__all__ = ("STATE_PAUSED", "STATE_RUNNING", "STATE_STOPPED", "BaseScheduler")


class BaseScheduler(SchedulerLifecycle):
    """The APScheduler 3 scheduler API (see the concrete schedulers).

    Args:
        gconfig: a "global" configuration dict whose keys start with ``"apscheduler."``
            (dotted keys such as ``"apscheduler.jobstores.default.type"`` are nested).
        **options: ``jobstores``, ``executors``, ``job_defaults``, ``timezone``,
            ``logger`` (a ``logging.Logger`` or its name; default
            ``"apscheduler.scheduler"``, so existing logging setups keep working),
            ``jobstore_retry_interval`` (accepted; horae retries stores with its own
            back-off), and the options of the concrete scheduler.

    Attributes:
        state: ``STATE_STOPPED``, ``STATE_RUNNING`` or ``STATE_PAUSED``.
        timezone: the default time zone of triggers and naive datetimes.
    """

    def __init__(self, gconfig: Mapping[str, Any] | None = None, **options: Any) -> None:
        super().__init__(gconfig, **options)
        self._codec = JobCodec(self, self._bridge)

    # ---- jobs -------------------------------------------------------------------------

    def add_job(
        self,
        func: Callable[..., Any] | str,
        trigger: Any = None,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        id: str | None = None,  # noqa: A002 - APScheduler 3's name
        name: str | None = None,
        misfire_grace_time: float | Undefined | None = undefined,
        coalesce: bool | Undefined = undefined,
        max_instances: int | Undefined = undefined,
        next_run_time: Any = undefined,
        jobstore: str = "default",
        executor: str = "default",
        replace_existing: bool = False,
        **trigger_args: Any,
    ) -> Job:
        """Add a job; before :meth:`start` it stays pending until the scheduler starts.

        Args:
            func: the callable, or a ``"module:name"`` reference to one.
            trigger: ``"cron"``, ``"interval"``, ``"date"`` (the default, run once now), a
                crontab string or ``"calendarinterval"`` (horae), or a trigger object.
            args: positional arguments of the callable.
            kwargs: keyword arguments of the callable.
            id: the job id (default: a new ``uuid4().hex``).
            name: the job's description (default: the callable's name).
            misfire_grace_time: seconds a run may start late, ``None`` for no limit.
            coalesce: run once instead of several times after missed runs.
            max_instances: at most this many runs at once.
            next_run_time: the first run time, whatever the trigger says; ``None`` adds
                the job paused.
            jobstore: the alias of the job store to keep it in.
            executor: the alias of the executor to run it on.
            replace_existing: replace a job with the same id instead of raising.
            **trigger_args: the trigger kind's arguments.

        Returns:
            The job.

        Raises:
            TypeError: a misspelt trigger argument ("did you mean ...?") or a bad option.
            ConflictingIdError: the id exists in the store and *replace_existing* is False.
        """
        options = {
            "trigger": create_trigger(trigger, trigger_args, self.timezone),
            "executor": executor,
            "func": func,
            "args": tuple(args) if args is not None else (),
            "kwargs": dict(kwargs) if kwargs is not None else {},
            "id": id,
            "name": name,
            "misfire_grace_time": misfire_grace_time,
            "coalesce": coalesce,
            "max_instances": max_instances,
            "next_run_time": next_run_time,
        }
        job = Job(self, **{key: value for key, value in options.items() if value is not undefined})
        with self._lock:
            if self.state == STATE_STOPPED:
                self._pending.append((job, jobstore, replace_existing))
                self._logger.info(
                    "Adding job tentatively -- it will be properly scheduled when the "
                    "scheduler starts"
                )
            else:
                self._real_add_job(self._running_core(), job, jobstore, replace_existing)
        return job

    def scheduled_job(
        self,
        trigger: Any,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        id: str | None = None,  # noqa: A002 - APScheduler 3's name
        name: str | None = None,
        misfire_grace_time: float | Undefined | None = undefined,
        coalesce: bool | Undefined = undefined,
        max_instances: int | Undefined = undefined,
        next_run_time: Any = undefined,
        jobstore: str = "default",
        executor: str = "default",
        **trigger_args: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """:meth:`add_job` as a decorator (with ``replace_existing=True``); the function
        is returned unchanged."""

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            self.add_job(
                func, trigger, args, kwargs, id, name, misfire_grace_time, coalesce,
                max_instances, next_run_time, jobstore, executor, True, **trigger_args,
            )  # fmt: skip
            return func

        return decorate

    def _aliases(self, jobstore: str | None) -> list[str]:
        return [alias for alias in self._jobstores if jobstore in (None, alias)]

    def _lookup_job(self, job_id: str, jobstore: str | None) -> tuple[Job, str | None]:
        """The job and its store alias (``None`` for a pending job), as APScheduler 3
        looks it up: pending jobs while stopped, else every store (or *jobstore*)."""
        if self.state == STATE_STOPPED:
            for job, _, _ in self._pending:
                if job.id == job_id:
                    return job, None
            raise JobLookupError(job_id)
        core = self._running_core()
        found = core.call(core.find, job_id, self._aliases(jobstore))
        if found is None:
            raise JobLookupError(job_id)
        alias, schedule = found
        return self._codec.view(alias, schedule), alias

    def modify_job(self, job_id: str, jobstore: str | None = None, **changes: Any) -> Job:
        """Change options of a job (``name``, ``func``, ``args``, ``kwargs``,
        ``trigger``, ``executor``, ``misfire_grace_time``, ``coalesce``,
        ``max_instances``, ``next_run_time``) and save them.

        Raises:
            JobLookupError: no such job.
        """
        with self._lock:
            job, alias = self._lookup_job(job_id, jobstore)
            job._modify(**changes)
            if alias is not None:
                self._save(alias, job, changes)
        self._dispatch_event(JobEvent(EVENT_JOB_MODIFIED, job_id, alias))
        return job

    def _save(self, alias: str, job: Job, changes: Mapping[str, Any]) -> None:
        core = self._running_core()
        anchors = isinstance(job.trigger, (IntervalTrigger, DateTrigger))
        if set(changes) == {"next_run_time"} and (job.next_run_time is None or not anchors):
            if job.next_run_time is None:
                core.call(core.pause, alias, job.id)
            else:
                core.call(core.unpause, alias, job.id, job.next_run_time)
        else:
            found = core.call(core.find, job.id, [alias])
            if found is None:
                raise JobLookupError(job.id)
            task = self._codec.task_of(core, job) if "func" in changes else found[1].task_id
            core.call(core.write, alias, self._codec.stored(job, task), replace=True)
        self._bridge.set_next_run_time(job.id, job.next_run_time)

    def reschedule_job(
        self, job_id: str, jobstore: str | None = None, trigger: Any = None, **trigger_args: Any
    ) -> Job:
        """Give a job a new trigger; its next run time is the trigger's first from now.

        Raises:
            JobLookupError: no such job.
        """
        new_trigger = create_trigger(trigger, trigger_args, self.timezone)
        next_run_time = new_trigger.get_next_fire_time(None, utc_now())
        return self.modify_job(job_id, jobstore, trigger=new_trigger, next_run_time=next_run_time)

    def pause_job(self, job_id: str, jobstore: str | None = None) -> Job:
        """Stop running a job until :meth:`resume_job` (its ``next_run_time`` is ``None``).

        Raises:
            JobLookupError: no such job.
        """
        return self.modify_job(job_id, jobstore, next_run_time=None)

    def resume_job(self, job_id: str, jobstore: str | None = None) -> Job | None:
        """Resume a paused job from its trigger's next fire time, or remove it (and return
        ``None``) when its trigger has no fire time left.

        Raises:
            JobLookupError: no such job.
        """
        with self._lock:
            job, alias = self._lookup_job(job_id, jobstore)
            next_run_time = job.trigger.get_next_fire_time(None, utc_now())
            if next_run_time is not None:
                return self.modify_job(job_id, alias, next_run_time=next_run_time)
            self.remove_job(job.id, alias)
            return None

    def get_jobs(self, jobstore: str | None = None, pending: bool | None = None) -> list[Job]:
        """The pending jobs (before :meth:`start`) or the stored ones, of every store or
        of *jobstore*, by next run time (paused jobs last) within each store."""
        if pending is not None:
            warnings.warn(
                'The "pending" option is deprecated -- get_jobs() always returns scheduled '
                "jobs if the scheduler has been started and pending jobs otherwise",
                DeprecationWarning,
                stacklevel=2,
            )
        with self._lock:
            if self.state == STATE_STOPPED:
                return [job for job, alias, _ in self._pending if jobstore in (None, alias)]
            core = self._running_core()
            found = core.call(core.schedules, self._aliases(jobstore))
            return [self._codec.view(alias, schedule) for alias, schedule in found]

    def get_job(self, job_id: str, jobstore: str | None = None) -> Job | None:
        """The job with this id, or ``None``."""
        with self._lock:
            try:
                return self._lookup_job(job_id, jobstore)[0]
            except JobLookupError:
                return None

    def remove_job(self, job_id: str, jobstore: str | None = None) -> None:
        """Remove a job so that it never runs again.

        Raises:
            JobLookupError: no such job.
        """
        removed_from: str | None = None
        with self._lock:
            if self.state == STATE_STOPPED:
                for index, (job, alias, _) in enumerate(self._pending):
                    if job.id == job_id and jobstore in (None, alias):
                        del self._pending[index]
                        removed_from = alias
                        break
            else:
                core = self._running_core()
                removed_from = core.call(core.remove, job_id, self._aliases(jobstore))
        if removed_from is None:
            raise JobLookupError(job_id)
        self._dispatch_event(JobEvent(EVENT_JOB_REMOVED, job_id, removed_from))
        self._logger.info("Removed job %s", job_id)

    def remove_all_jobs(self, jobstore: str | None = None) -> None:
        """Remove every job (of every store, or of *jobstore*)."""
        with self._lock:
            if self.state == STATE_STOPPED:
                self._pending = [p for p in self._pending if jobstore not in (None, p[1])]
            else:
                core = self._running_core()
                core.call(core.remove_all, self._aliases(jobstore))
        self._dispatch_event(SchedulerEvent(EVENT_ALL_JOBS_REMOVED, jobstore))

    def print_jobs(self, jobstore: str | None = None, out: IO[str] | None = None) -> None:
        """Print the jobs (pending ones before :meth:`start`) to *out* (stdout)."""
        out = out or sys.stdout
        with self._lock:
            if self.state == STATE_STOPPED:
                print("Pending jobs:", file=out)
                if self._pending:
                    for job, alias, _ in self._pending:
                        if jobstore in (None, alias):
                            print(f"    {job}", file=out)
                else:
                    print("    No pending jobs", file=out)
                return
            jobs = self.get_jobs()
        for alias in sorted(self._aliases(jobstore)):
            print(f"Jobstore {alias}:", file=out)
            in_store = [job for job in jobs if job._jobstore_alias == alias]
            for job in in_store:
                print(f"    {job}", file=out)
            if not in_store:
                print("    No scheduled jobs", file=out)
