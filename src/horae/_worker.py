"""The worker: acquiring due jobs, running them, renewing their leases, releasing them
(steps 4-5 of DESIGN.md); and, for callers, waiting for a job's :class:`JobResult` and
turning it back into a value.

At most ``max_concurrent_jobs`` jobs run at once on this node; each runs in its own task
under its own cancel scope (cancelled when the stop grace period ends, at its timeout,
or when its lease was taken over). One background task renews the leases of all running
jobs, a third of the lease duration apart, so that a single failed renewal still leaves
time for the next one before the lease runs out.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio
import anyio.abc
import attrs

from ._clock import Clock
from ._context import current_job, current_scheduler
from ._enums import JobOutcome
from ._exceptions import (
    ConfigurationError,
    DeserializationError,
    HoraeError,
    JobCancelled,
    JobDeadlineMissed,
    JobLookupError,
    JobResultNotReady,
    TaskLookupError,
)
from ._logging import job_fields
from ._structures import Job, JobResult
from ._tasks import TaskCache, TaskRegistry
from ._wakeup import (
    RECHECK_DELAY,
    Backoff,
    Wakeup,
    earliest,
    new_cancel_scope,
    wait_for_event,
)
from .datastores._base import DataStore
from .events import Event, JobReleased
from .executors._base import JobExecutor

if TYPE_CHECKING:
    from ._scheduler import AsyncScheduler
    from ._scheduler_args import SchedulerConfig


def exception_type_name(exc: BaseException) -> str:
    """``"ValueError"`` for builtins, ``"package.module.Error"`` otherwise."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def unwrap_result(result: JobResult) -> Any:
    """Return the job's value, or raise what its outcome means.

    ``error``: the job's own exception (or, from a store that keeps only its type and
    message, a :exc:`~horae.HoraeError` saying both); ``cancelled``:
    :exc:`~horae.JobCancelled`; ``missed_start_deadline``:
    :exc:`~horae.JobDeadlineMissed`; ``timed_out``: :exc:`TimeoutError`; ``abandoned``:
    :exc:`~horae.HoraeError`; ``deserialization_failed``:
    :exc:`~horae.DeserializationError`.
    """
    outcome = result.outcome
    if outcome is JobOutcome.success:
        return result.return_value
    detail = (
        f": {result.exception_type}: {result.exception_message}" if result.exception_type else ""
    )
    if outcome is JobOutcome.error:
        if result.exception is not None:
            raise result.exception
        raise HoraeError(
            f"job {result.job_id} raised {result.exception_type}: {result.exception_message}"
        )
    if outcome is JobOutcome.cancelled:
        raise JobCancelled(f"job {result.job_id} was cancelled")
    if outcome is JobOutcome.missed_start_deadline:
        raise JobDeadlineMissed(
            f"job {result.job_id} could not start before its start deadline (its misfire "
            f"grace time ran out)"
        )
    if outcome is JobOutcome.timed_out:
        raise TimeoutError(f"job {result.job_id} ran longer than its job_timeout")
    if outcome is JobOutcome.deserialization_failed:
        raise DeserializationError(f"job {result.job_id} could not be loaded{detail}")
    raise HoraeError(
        f"job {result.job_id} was abandoned: the worker running it stopped renewing its "
        f"lease (it crashed or lost its store connection)"
    )


async def wait_for_result(config: SchedulerConfig, job_id: UUID, *, wait: bool) -> JobResult:
    """The result of *job_id* from whichever store has it, waiting for it if *wait*.

    Raises:
        JobLookupError: no store has the job or its result.
        JobResultNotReady: the job has not finished and *wait* is False.
    """
    released = [anyio.Event()]

    def on_released(event: Event) -> None:
        if isinstance(event, JobReleased) and event.job_id == job_id:
            released[0].set()

    # Subscribe before reading the stores: a job that finished between the read and the
    # subscription would otherwise never wake us. A fresh event per round: a release
    # that was only an attempt (the job is retried) must not keep waking us.
    with config.broker.subscribe(on_released, [JobReleased]):
        while True:
            released[0] = anyio.Event()
            result = await _lookup_result(config, job_id)
            if result is not None:
                return result
            if not wait:
                raise JobResultNotReady(job_id)
            # Where the JobReleased event may come from another node and get lost, poll.
            deadline = config.clock.now() + config.poll_interval if config.polls() else None
            await wait_for_event(released[0], config.clock, deadline)


async def _lookup_result(config: SchedulerConfig, job_id: UUID) -> JobResult | None:
    pending = False
    for store in config.stores.values():
        try:
            result = await store.get_job_result(job_id)
        except JobLookupError:
            continue
        if result is not None:
            return result
        pending = True
    if not pending:
        raise JobLookupError(job_id)
    return None


def _fields(job: Job) -> dict[str, Any]:
    return job_fields(
        job_id=job.id,
        schedule_id=job.schedule_id,
        task_id=job.task_id,
        fire_time=job.scheduled_fire_time,
    )


@attrs.define(eq=False)
class _RunningJob:
    job: Job
    alias: str
    scope: anyio.CancelScope
    timed_out: bool = False
    lease_lost: bool = False
    cancel_requested: bool = False


class Worker:
    """Runs the jobs of every data store of one scheduler (the worker role)."""

    def __init__(
        self,
        *,
        scheduler: AsyncScheduler,
        stores: Mapping[str, DataStore],
        identity: str,
        clock: Clock,
        lease_duration: timedelta,
        poll_interval: timedelta,
        max_concurrent_jobs: int,
        executors: Mapping[str, JobExecutor],
        registry: TaskRegistry,
        tasks: TaskCache,
        logger: logging.Logger,
        polls: Callable[[], bool],
        stop_grace_period: timedelta,
    ) -> None:
        self._scheduler = scheduler
        self._stores = stores
        self._identity = identity
        self._clock = clock
        self._lease_duration = lease_duration
        self._poll_interval = poll_interval
        self._max_concurrent_jobs = max_concurrent_jobs
        self._executors = executors
        self._registry = registry
        self._tasks = tasks
        self._logger = logger
        self._polls = polls
        self._stop_grace_period = stop_grace_period
        self._running: dict[UUID, _RunningJob] = {}
        self._rng = random.Random()  # noqa: S311 - retry jitter, not crypto
        self._all_done = anyio.Event()
        self._jobs_started = anyio.Event()
        self._stopping = False
        self._next_store = 0
        self.wakeup = Wakeup(clock)
        self._recheck = Backoff(RECHECK_DELAY, poll_interval)
        self._new_scope = new_cancel_scope

    def request_stop(self) -> None:
        """Stop acquiring jobs; running ones get the grace period, then are cancelled."""
        self._stopping = True
        self.wakeup.set()

    async def run(self) -> None:
        """Acquire and run jobs until :meth:`request_stop`, then drain."""
        async with anyio.create_task_group() as group:
            renewal = anyio.CancelScope()
            group.start_soon(self._renew_leases, renewal)
            backoff = Backoff()
            while not self._stopping:
                try:
                    deadline = await self._acquire(group)
                    backoff.reset()
                except Exception:
                    delay = backoff.next_delay()
                    self._logger.exception("Error while acquiring jobs; retrying in %s", delay)
                    deadline = self._clock.now() + delay
                await self.wakeup.wait(deadline)
            await self._drain()
            renewal.cancel()

    # ---- acquiring ------------------------------------------------------------------

    async def _acquire(self, group: anyio.abc.TaskGroup) -> datetime | None:
        """Start due jobs up to capacity; return when to look again."""
        aliases = list(self._stores)
        # rotate the starting store so that one busy store cannot starve the others
        self._next_store = (self._next_store + 1) % len(aliases)
        for alias in aliases[self._next_store :] + aliases[: self._next_store]:
            capacity = self._max_concurrent_jobs - len(self._running)
            if capacity <= 0:
                return None  # a finishing job wakes us
            store = self._stores[alias]
            # read per store: a lease runs from this moment, not from the first store's
            now = self._clock.now()
            acquired = await store.acquire_jobs(
                self._identity, now, self._lease_duration, capacity
            )
            for job in await self._confirm_leases(store, acquired, now):
                self._start(group, alias, store, job)
            if len(acquired) >= capacity:
                return now  # full batch: look again at once
        return await self._next_wakeup(self._clock.now())

    async def _confirm_leases(
        self, store: DataStore, jobs: list[Job], leased_at: datetime
    ) -> list[Job]:
        """The acquired jobs that may start.

        Their leases run from *leased_at*, and the renewal task first renews a job a
        third of a lease after it starts. So a job may only start while less than two
        thirds of its lease are gone, or another node may take it for abandoned while it
        runs. Acquiring usually takes milliseconds, but a slow store or broker (the
        store publishes an event per job before it returns) or a paused process can use
        up much of a short lease. Then the leases are renewed before the jobs start, and
        a job whose lease another node has already ended (as abandoned) is not started.
        """
        if not jobs or self._clock.now() - leased_at < self._lease_duration / 3:
            return jobs
        try:
            kept = await store.extend_job_leases(
                self._identity, [job.id for job in jobs], self._clock.now(), self._lease_duration
            )
        except Exception:
            # The renewal task retries soon; running them is the better bet.
            self._logger.exception("Could not renew the leases of %d new jobs", len(jobs))
            return jobs
        if len(kept) < len(jobs):
            self._logger.warning(
                "%d of %d jobs were taken over before they could start (acquiring them "
                "took longer than their lease of %s); they are not run here",
                len(jobs) - len(kept), len(jobs), self._lease_duration,
            )  # fmt: skip
        return [job for job in jobs if job.id in kept]

    async def _next_wakeup(self, now: datetime) -> datetime | None:
        deadline: datetime | None = None
        poll = self._polls()
        due = False
        for store in self._stores.values():
            next_time = await store.get_next_job_time()
            if next_time is not None and next_time <= now:
                # A due job we did not get (stores leave jobs held back by a running
                # limit out of this time): it came due meanwhile; see RECHECK_DELAY.
                due = True
            else:
                deadline = earliest(deadline, next_time)
        if due:
            deadline = earliest(deadline, now + self._recheck.next_delay())
        else:
            self._recheck.reset()
        if poll:
            deadline = earliest(deadline, now + self._poll_interval)
        return deadline

    def _start(self, group: anyio.abc.TaskGroup, alias: str, store: DataStore, job: Job) -> None:
        running = _RunningJob(job, alias, self._new_scope())
        if not self._running:
            self._all_done = anyio.Event()
        self._running[job.id] = running
        self._jobs_started.set()
        # A constant name: formatting the job id into it costs more than the spawn.
        group.start_soon(self._run_job, store, running, name="horae job")

    # ---- running --------------------------------------------------------------------

    async def _run_job(self, store: DataStore, running: _RunningJob) -> None:
        job = running.job
        started_at = job.started_at or self._clock.now()
        try:
            try:
                result = await self._execute(store, running, started_at)
            except Exception as exc:
                # Not the job's own exception (that is in the result): the store failed
                # while looking up its task. Record it rather than crash the worker.
                self._logger.exception("Could not run job %s", job.id, extra=_fields(job))
                result = self._result(job, JobOutcome.error, started_at, exception=exc)
            except BaseException as exc:
                # Cancelled from outside (the scheduler's task group is going away), or
                # SystemExit/KeyboardInterrupt from a job: release the lease with what
                # happened, then let it propagate; it is never swallowed.
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    result = self._result(job, JobOutcome.cancelled, started_at)
                else:
                    result = self._result(job, JobOutcome.error, started_at, exception=exc)
                with self._new_scope(shield=True):
                    await self._release(store, running, result)
                raise
            with self._new_scope(shield=True):
                await self._release(store, running, result, self._retry_at(running, result))
        finally:
            del self._running[job.id]
            if not self._running:
                self._all_done.set()
            self.wakeup.set()  # capacity freed

    async def _execute(
        self, store: DataStore, running: _RunningJob, started_at: datetime
    ) -> JobResult:
        job = running.job
        try:
            task = self._tasks.peek(running.alias, job.task_id)
            if task is None:
                task = await self._tasks.get(running.alias, store, job.task_id)
            func = self._registry.resolve(task)
            executor_name = job.job_executor or task.job_executor
            executor = self._executors.get(executor_name)
            if executor is None:
                raise ConfigurationError(
                    f"job {job.id} of task {task.id!r} asks for the job executor "
                    f"{executor_name!r}, which this scheduler does not have (known: "
                    f"{', '.join(map(repr, sorted(self._executors)))})"
                )
        except (TaskLookupError, DeserializationError, ConfigurationError) as exc:
            return self._result(job, JobOutcome.deserialization_failed, started_at, exc)
        job_token = current_job.set(job)
        scheduler_token = current_scheduler.set(self._scheduler)
        try:
            with running.scope:
                try:
                    if job.job_timeout is None:
                        value = await executor.run_job(func, job)
                    else:
                        value = await self._run_with_timeout(executor, func, running, started_at)
                except Exception as exc:
                    self._logger.error(
                        "Job %s of task %r raised %s: %s", job.id, job.task_id,
                        exception_type_name(exc), exc, exc_info=exc, extra=_fields(job),
                    )  # fmt: skip
                    return self._result(job, JobOutcome.error, started_at, exc)
                return self._result(job, JobOutcome.success, started_at, value=value)
        finally:
            current_scheduler.reset(scheduler_token)
            current_job.reset(job_token)
        # only reached when running.scope was cancelled (and absorbed the cancellation)
        outcome = JobOutcome.timed_out if running.timed_out else JobOutcome.cancelled
        return self._result(job, outcome, started_at)

    async def _run_with_timeout(
        self,
        executor: JobExecutor,
        func: Callable[..., Any],
        running: _RunningJob,
        started_at: datetime,
    ) -> Any:
        # The timeout runs on the scheduler's clock (a FakeClock in tests), so it is a
        # task sleeping on that clock, not a deadline on the cancel scope. Only jobs
        # with a timeout pay for the task group.
        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(self._enforce_timeout, running, started_at)
            try:
                value = await executor.run_job(func, running.job)
            except Exception as exc:
                failure = exc  # raised below: inside the group it would be wrapped
            finally:
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return value

    async def _enforce_timeout(self, running: _RunningJob, started_at: datetime) -> None:
        assert running.job.job_timeout is not None
        await self._clock.sleep_until(started_at + running.job.job_timeout)
        running.timed_out = True
        running.scope.cancel()

    def _result(
        self,
        job: Job,
        outcome: JobOutcome,
        started_at: datetime | None,
        exception: BaseException | None = None,
        value: Any = None,
    ) -> JobResult:
        finished_at = self._clock.now()
        return JobResult(
            job_id=job.id,
            task_id=job.task_id,
            schedule_id=job.schedule_id,
            scheduled_fire_time=job.scheduled_fire_time,
            outcome=outcome,
            started_at=started_at,
            finished_at=finished_at,
            expires_at=finished_at + job.result_expiration_time,
            attempt=job.attempt,
            return_value=value,
            exception=exception,
            exception_type=None if exception is None else exception_type_name(exception),
            exception_message=None if exception is None else str(exception),
        )

    def cancel(self, job_id: UUID) -> None:
        """``cancel_job`` asked for this job: cancel it if it runs here (it then ends
        as ``JobOutcome.cancelled`` and is not retried)."""
        running = self._running.get(job_id)
        if running is not None and not running.cancel_requested:
            self._logger.info("Cancelling job %s as requested", job_id, extra=_fields(running.job))
            running.cancel_requested = True
            running.scope.cancel()

    def _retry_at(self, running: _RunningJob, result: JobResult) -> datetime | None:
        """When the job's next attempt may start, if its retry policy gives it one."""
        policy = running.job.retry
        if policy is None or running.cancel_requested or running.lease_lost:
            return None
        if result.outcome is JobOutcome.error:
            exception = result.exception
        elif result.outcome is JobOutcome.timed_out:
            exception = TimeoutError()
        else:
            return None
        if exception is None or not policy.retries(running.job.attempt, exception):
            return None
        return result.finished_at + policy.delay(running.job.attempt, self._rng)

    async def _release(
        self,
        store: DataStore,
        running: _RunningJob,
        result: JobResult,
        retry_at: datetime | None = None,
    ) -> None:
        if running.lease_lost:
            return  # another node owns the job now; its outcome is theirs to record
        if self._logger.isEnabledFor(logging.DEBUG):
            self._logger.debug(
                "Job %s of task %r ended: %s", result.job_id, result.task_id, result.outcome,
                extra=_fields(running.job),
            )  # fmt: skip
        if retry_at is not None:
            self._logger.info(
                "Job %s of task %r ended with %s on attempt %d; retrying at %s",
                result.job_id, result.task_id, result.outcome.name, result.attempt, retry_at,
                extra=_fields(running.job),
            )  # fmt: skip
        try:
            released = await store.release_job(self._identity, result, retry_at=retry_at)
        except Exception:
            # The lease will expire and the job will end as abandoned elsewhere.
            self._logger.exception(
                "Could not release job %s", result.job_id, extra=_fields(running.job)
            )
            return
        if not released:
            self._logger.warning(
                "Job %s finished after its lease was taken over; its result was discarded",
                result.job_id,
                extra=_fields(running.job),
            )

    # ---- leases and shutdown ----------------------------------------------------------

    async def _renew_leases(self, scope: anyio.CancelScope) -> None:
        interval = self._lease_duration / 3
        with scope:
            while True:
                if not self._running:
                    self._jobs_started = anyio.Event()
                    await self._jobs_started.wait()
                    continue
                await self._clock.sleep_until(self._clock.now() + interval)
                await self._renew_once()

    async def _renew_once(self) -> None:
        by_alias: dict[str, set[UUID]] = {}
        for job_id, running in self._running.items():
            by_alias.setdefault(running.alias, set()).add(job_id)
        now = self._clock.now()
        for alias, job_ids in by_alias.items():
            try:
                kept = await self._stores[alias].extend_job_leases(
                    self._identity, job_ids, now, self._lease_duration
                )
            except Exception:
                self._logger.exception("Could not renew the leases of %d jobs", len(job_ids))
                continue
            await self._check_cancellations(alias, kept)
            for job_id in job_ids - kept:
                # The lease expired and the job was taken from us (it ends as abandoned
                # there): stop running it, and do not release it.
                lost = self._running.get(job_id)
                if lost is not None:
                    self._logger.warning(
                        "Lost the lease of job %s; cancelling it", job_id, extra=_fields(lost.job)
                    )
                    lost.lease_lost = True
                    lost.scope.cancel()

    async def _check_cancellations(self, alias: str, job_ids: set[UUID]) -> None:
        # JobCancellationRequested normally cancels a job at once; reading the flag at
        # each renewal catches a request whose event was lost (a broker outage).
        if not job_ids:
            return
        try:
            jobs = await self._stores[alias].get_jobs(job_ids)
        except Exception:
            self._logger.exception("Could not check %d jobs for cancellation", len(job_ids))
            return
        for job in jobs:
            if job.cancel_requested:
                self.cancel(job.id)

    async def _drain(self) -> None:
        """Let running jobs finish within the grace period, then cancel the rest."""
        if not self._running:
            return
        deadline = self._clock.now() + self._stop_grace_period
        if not await wait_for_event(self._all_done, self._clock, deadline):
            self._logger.warning(
                "Cancelling %d jobs still running after the stop grace period of %s",
                len(self._running),
                self._stop_grace_period,
            )
            for running in list(self._running.values()):
                running.scope.cancel()
            await self._all_done.wait()
