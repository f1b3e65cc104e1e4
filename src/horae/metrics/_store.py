"""The measuring data store: a wrapper that feeds :class:`~horae.metrics.Metrics`.

Everything a node does to its schedules and jobs goes through its data stores, and every
event about it is published by them, so a wrapper around a store sees exactly this
node's share of the work, even when a shared event broker delivers other nodes' events
too (which a plain event subscription would count on every node):

* the store's events reach the metrics through a *tap*: the wrapper starts the real
  store with a broker proxy that notes each event the store publishes, then passes it
  on unchanged (``JobReleased`` → jobs by outcome, misfires, job durations;
  ``ScheduleFireSkipped`` → skipped fires);
* calls are timed (store latency) and some of their results counted:
  ``acquire_jobs`` → fire lag, ``release_schedules`` → fires and coalesced fires,
  ``extend_job_leases`` → lease renewals.

The cost is two ``perf_counter()`` calls and a histogram update per store call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from logging import Logger
from types import TracebackType
from typing import TYPE_CHECKING
from uuid import UUID

from horae._clock import Clock
from horae._enums import CoalescePolicy, ConflictPolicy
from horae._logging import backend_name
from horae._structures import Job, JobResult, Schedule, Task
from horae.datastores._base import DataStore, ScheduleUpdate, StoreCapabilities
from horae.eventbrokers._base import EventBroker, Subscription
from horae.events import Event, JobReleased, ScheduleFireSkipped

from ._instruments import metrics_logger

if TYPE_CHECKING:
    from . import Metrics

#: At most this many coalesced fire times are counted per schedule and catch-up: the
#: count walks the trigger, and a schedule down for years must not cost millions of
#: evaluations (the scheduler itself jumps over them in O(1)).
MAX_COUNTED_COALESCED = 1000


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def count_coalesced(schedule: Schedule, update: ScheduleUpdate) -> int:
    """How many fire times of *schedule* the *update* folded into another fire's job
    (at most :data:`MAX_COUNTED_COALESCED`)."""
    first = schedule.next_fire_time
    if schedule.coalesce is CoalescePolicy.all or not update.jobs or first is None:
        return 0
    trigger = schedule.trigger
    if schedule.coalesce is CoalescePolicy.latest:
        fired = update.jobs[-1].scheduled_fire_time
        if fired is None or _utc(fired) == _utc(first):
            return 0
        start: datetime | None = first  # first ... (before) fired were coalesced
        end: datetime | None = fired
    else:  # earliest: the job is for `first`; the ones after it up to the new next fire
        start, end = trigger.next(first), update.next_fire_time
    count = 0
    while (
        start is not None
        and (end is None or _utc(start) < _utc(end))
        and count < MAX_COUNTED_COALESCED
    ):
        count += 1
        start = trigger.next(start)
    return count


class _Timer:
    """Times one store call into the store latency histogram (failures counted too)."""

    __slots__ = ("_labels", "_metrics", "_started")

    def __init__(self, metrics: Metrics, store: str, operation: str) -> None:
        self._metrics = metrics
        self._labels = {"store": store, "operation": operation}
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        elapsed = time.perf_counter() - self._started
        self._metrics.store_latency.record_labeled(elapsed, self._labels)
        # Unknown ids and id conflicts (LookupError, which ConflictingIdError is) are
        # answers, not failures of the store.
        if (
            exc_type is not None
            and issubclass(exc_type, Exception)
            and not issubclass(exc_type, LookupError)
        ):
            self._metrics.store_errors.add_labeled(1, self._labels)


class _TapBroker(EventBroker):
    """Passes everything to the real broker, noting each event published through it."""

    __slots__ = ("_broker", "_on_event")

    def __init__(self, broker: EventBroker, on_event: Callable[[Event], None]) -> None:
        self._broker = broker
        self._on_event = on_event

    async def start(self, logger: Logger) -> None:
        await self._broker.start(logger)

    async def stop(self) -> None:
        await self._broker.stop()

    async def publish(self, event: Event) -> None:
        self._on_event(event)
        await self._broker.publish(event)

    async def publish_many(self, events: Iterable[Event]) -> None:
        batch = list(events)
        for event in batch:
            self._on_event(event)
        await self._broker.publish_many(batch)

    async def publish_local(self, event: Event) -> None:
        self._on_event(event)
        await self._broker.publish_local(event)

    def add_reconnect_callback(self, callback: Callable[[], object]) -> Callable[[], None]:
        return self._broker.add_reconnect_callback(callback)

    def subscribe(
        self,
        callback: Callable[[Event], object],
        event_types: Iterable[type[Event]] | None = None,
        *,
        one_shot: bool = False,
    ) -> Subscription:
        return self._broker.subscribe(callback, event_types, one_shot=one_shot)

    @property
    def connected(self) -> bool:
        return self._broker.connected

    @property
    def shared(self) -> bool:
        return self._broker.shared


class InstrumentedDataStore(DataStore):
    """A data store that measures what passes through it (see :meth:`Metrics.instrument`).

    It behaves exactly like the store it wraps (same capabilities, results, errors and
    events) and can be used wherever that store can.

    Args:
        store: the store to measure.
        metrics: where the measurements go.
        name: the ``store`` label of its latency (default: from the class,
            ``SQLiteDataStore`` → ``"sqlite"``).
    """

    def __init__(self, store: DataStore, metrics: Metrics, name: str | None = None) -> None:
        if not isinstance(store, DataStore):
            raise TypeError(f"expected a DataStore to instrument, not {type(store).__name__}")
        self._store = store
        self._metrics = metrics
        self.log_name = backend_name(store)
        self._name = name or self.log_name
        # The schedules this node holds, by id, to compare with their release.
        self._acquired: dict[str, Schedule] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store!r})"

    @property
    def wrapped(self) -> DataStore:
        """The store being measured."""
        return self._store

    @property
    def capabilities(self) -> StoreCapabilities:
        """The wrapped store's capabilities."""
        return self._store.capabilities

    def _timed(self, operation: str) -> _Timer:
        return _Timer(self._metrics, self._name, operation)

    def _on_event(self, event: Event) -> None:
        try:
            if isinstance(event, JobReleased):
                self._metrics.note_job_released(event)
            elif isinstance(event, ScheduleFireSkipped):
                self._metrics.skipped_fires.add(1, reason=event.reason)
        except Exception:
            # measuring must never break publishing
            metrics_logger.exception("Could not record %s", type(event).__name__)

    # ---- life cycle -------------------------------------------------------------------

    async def start(
        self, event_broker: EventBroker, logger: Logger, *, clock: Clock | None = None
    ) -> None:
        with self._timed("start"):
            await self._store.start(_TapBroker(event_broker, self._on_event), logger, clock=clock)

    async def stop(self) -> None:
        self._acquired.clear()
        with self._timed("stop"):
            await self._store.stop()

    # ---- tasks ------------------------------------------------------------------------

    async def add_task(self, task: Task) -> None:
        with self._timed("add_task"):
            await self._store.add_task(task)

    async def remove_task(self, task_id: str) -> None:
        with self._timed("remove_task"):
            await self._store.remove_task(task_id)

    async def get_task(self, task_id: str) -> Task:
        with self._timed("get_task"):
            return await self._store.get_task(task_id)

    async def get_tasks(self) -> list[Task]:
        with self._timed("get_tasks"):
            return await self._store.get_tasks()

    # ---- schedules --------------------------------------------------------------------

    async def add_schedule(self, schedule: Schedule, conflict_policy: ConflictPolicy) -> bool:
        with self._timed("add_schedule"):
            return await self._store.add_schedule(schedule, conflict_policy)

    async def remove_schedules(self, ids: Iterable[str], *, finished: bool = False) -> None:
        with self._timed("remove_schedules"):
            await self._store.remove_schedules(ids, finished=finished)

    async def get_schedules(self, ids: Iterable[str] | None = None) -> list[Schedule]:
        with self._timed("get_schedules"):
            return await self._store.get_schedules(ids)

    async def pause_schedule(
        self, schedule_id: str, *, reason: str | None = None, until: datetime | None = None
    ) -> Schedule:
        with self._timed("pause_schedule"):
            return await self._store.pause_schedule(schedule_id, reason=reason, until=until)

    async def unpause_schedule(
        self, schedule_id: str, *, next_fire_time: datetime | None
    ) -> Schedule:
        with self._timed("unpause_schedule"):
            return await self._store.unpause_schedule(schedule_id, next_fire_time=next_fire_time)

    async def acquire_schedules(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Schedule]:
        with self._timed("acquire_schedules"):
            schedules = await self._store.acquire_schedules(
                scheduler_id, now, lease_duration, limit
            )
        for schedule in schedules:
            self._acquired[schedule.id] = schedule
        return schedules

    async def release_schedules(
        self, scheduler_id: str, updates: Sequence[ScheduleUpdate]
    ) -> list[Job]:
        with self._timed("release_schedules"):
            created = await self._store.release_schedules(scheduler_id, updates)
        made_jobs = {job.schedule_id for job in created}
        for update in updates:
            schedule = self._acquired.pop(update.schedule_id, None)
            if schedule is not None and update.schedule_id in made_jobs:
                coalesced = count_coalesced(schedule, update)
                if coalesced:
                    self._metrics.coalesced_fires.add(coalesced, task=schedule.task_id)
        for job in created:
            self._metrics.fires.add(1, task=job.task_id)
        return created

    async def get_next_schedule_time(self) -> datetime | None:
        with self._timed("get_next_schedule_time"):
            return await self._store.get_next_schedule_time()

    # ---- jobs -------------------------------------------------------------------------

    async def add_jobs(self, jobs: Sequence[Job]) -> None:
        with self._timed("add_jobs"):
            await self._store.add_jobs(jobs)

    async def get_jobs(self, ids: Iterable[UUID] | None = None) -> list[Job]:
        with self._timed("get_jobs"):
            return await self._store.get_jobs(ids)

    async def acquire_jobs(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Job]:
        with self._timed("acquire_jobs"):
            jobs = await self._store.acquire_jobs(scheduler_id, now, lease_duration, limit)
        for job in jobs:
            # Retries start late on purpose (their back-off): only first attempts count.
            if job.scheduled_fire_time is not None and job.attempt == 1:
                started = job.started_at or now
                lag = (_utc(started) - _utc(job.scheduled_fire_time)).total_seconds()
                self._metrics.fire_lag.record(max(lag, 0.0), task=job.task_id)
        return jobs

    async def extend_job_leases(
        self,
        scheduler_id: str,
        job_ids: Iterable[UUID],
        now: datetime,
        lease_duration: timedelta,
    ) -> set[UUID]:
        asked = set(job_ids)
        with self._timed("extend_job_leases"):
            kept = await self._store.extend_job_leases(scheduler_id, asked, now, lease_duration)
        if kept:
            self._metrics.lease_renewals.add(len(kept), result="renewed")
        if len(asked) > len(kept):
            self._metrics.lease_renewals.add(len(asked - kept), result="lost")
        return kept

    async def release_job(
        self, scheduler_id: str, result: JobResult, *, retry_at: datetime | None = None
    ) -> bool:
        with self._timed("release_job"):
            return await self._store.release_job(scheduler_id, result, retry_at=retry_at)

    async def cancel_job(self, job_id: UUID, now: datetime) -> Job | None:
        with self._timed("cancel_job"):
            return await self._store.cancel_job(job_id, now)

    async def get_schedule_jobs(self, schedule_ids: Iterable[str]) -> list[Job]:
        with self._timed("get_schedule_jobs"):
            return await self._store.get_schedule_jobs(schedule_ids)

    async def get_next_job_time(self) -> datetime | None:
        with self._timed("get_next_job_time"):
            return await self._store.get_next_job_time()

    # ---- results and housekeeping -----------------------------------------------------

    async def get_job_result(self, job_id: UUID) -> JobResult | None:
        with self._timed("get_job_result"):
            return await self._store.get_job_result(job_id)

    async def cleanup(self, now: datetime) -> None:
        with self._timed("cleanup"):
            await self._store.cleanup(now)
