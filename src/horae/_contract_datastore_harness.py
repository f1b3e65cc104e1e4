"""The harness of ``DataStoreContract``: fixtures, started stores, recorded events, builders.

Everything here goes through the public :class:`~horae.datastores.DataStore` interface;
nothing reads a private attribute of a store.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

import anyio
import attrs
import pytest

from horae._enums import JobOutcome
from horae._fakeclock import FakeClock
from horae._structures import Job, JobResult, Schedule, Task
from horae.datastores._base import DataStore, ScheduleUpdate
from horae.eventbrokers.local import LocalEventBroker
from horae.events import Event
from horae.triggers._base import Trigger
from horae.triggers.interval import IntervalTrigger

#: Hard limit, in seconds, on each contract test (setup and teardown included).
CONTRACT_TEST_TIMEOUT = 30.0

#: The fixed instant the contract tests count from; times are passed to stores as ``now``.
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)
#: A store may report "just after a lease" up to this much after it (see the ABC).
LEASE_SLACK = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)

StoreFactory = Callable[[], DataStore]

_P = ParamSpec("_P")
_E = TypeVar("_E", bound=Event)


def contract_test(func: Callable[_P, Awaitable[None]]) -> Callable[_P, Awaitable[None]]:
    """Mark *func* as an anyio test and give it a hard timeout."""

    @functools.wraps(func)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
        with anyio.fail_after(CONTRACT_TEST_TIMEOUT):
            await func(*args, **kwargs)

    marked: Callable[_P, Awaitable[None]] = pytest.mark.anyio(wrapper)
    return marked


def at(seconds: float) -> datetime:
    """``T0`` plus *seconds*."""
    return T0 + timedelta(seconds=seconds)


def make_task(task_id: str = "task", **changes: Any) -> Task:
    """A task with a reference that persistent stores can keep."""
    return Task(id=task_id, func_ref="builtins:print", **changes)


def make_job(task_id: str = "task", start: float = 0, **changes: Any) -> Job:
    """A pending job of *task_id* that may start at ``at(start)``."""
    return Job(task_id=task_id, start_time=at(start), created_at=T0, **changes)


def fire_job(schedule: Schedule, fire_time: datetime, **changes: Any) -> Job:
    """The job a scheduler makes for *schedule* firing at *fire_time*."""
    return Job(
        task_id=schedule.task_id,
        schedule_id=schedule.id,
        scheduled_fire_time=fire_time,
        start_time=fire_time,
        created_at=fire_time,
        **changes,
    )


def result_of(
    job: Job, finished: float, outcome: JobOutcome = JobOutcome.success, **changes: Any
) -> JobResult:
    """The result a worker reports for *job*, finished at ``at(finished)``."""
    return JobResult(
        job_id=job.id,
        task_id=job.task_id,
        schedule_id=job.schedule_id,
        scheduled_fire_time=job.scheduled_fire_time,
        outcome=outcome,
        started_at=job.started_at,
        finished_at=at(finished),
        expires_at=at(finished),
        attempt=job.attempt,
        **changes,
    )


def advance(
    schedule: Schedule, *fire_times: datetime, next_fire_time: datetime | None
) -> ScheduleUpdate:
    """An update that makes one job per fire time and moves the schedule on."""
    return ScheduleUpdate(
        schedule_id=schedule.id,
        next_fire_time=next_fire_time,
        last_fire_time=fire_times[-1] if fire_times else None,
        jobs=[fire_job(schedule, fire_time) for fire_time in fire_times],
    )


def ids(items: Sequence[Schedule | Task]) -> list[str]:
    """The ids of *items*, in order."""
    return [item.id for item in items]


def job_ids(jobs: Sequence[Job]) -> list[UUID]:
    """The ids of *jobs*, in order."""
    return [job.id for job in jobs]


@attrs.define(eq=False)
class StoreHarness:
    """Started stores of one test, sharing one broker whose events are recorded.

    Attributes:
        store: the first started instance.
        broker: the :class:`LocalEventBroker` every instance publishes to.
        clock: the clock given to ``start`` (it only stamps events).
        events: every event published so far, in order.
    """

    factory: StoreFactory
    trigger: Trigger
    store: DataStore
    broker: LocalEventBroker
    clock: FakeClock
    logger: logging.Logger
    events: list[Event] = attrs.field(factory=list)
    _started: list[DataStore] = attrs.field(factory=list)

    @classmethod
    async def create(cls, factory: StoreFactory, trigger: Trigger) -> StoreHarness:
        """Start a broker and the first store (:meth:`close` stops them)."""
        logger = logging.getLogger("horae.testing.datastore")
        broker = LocalEventBroker()
        await broker.start(logger)
        harness = cls(factory, trigger, factory(), broker, FakeClock(T0), logger)
        broker.subscribe(harness.events.append)
        await harness.start(harness.store)
        return harness

    async def close(self) -> None:
        """Stop every started store, then the broker."""
        for started in reversed(self._started):
            await started.stop()
        self._started.clear()
        await self.broker.stop()

    async def start(self, store: DataStore) -> DataStore:
        """Start *store* on the shared broker and stop it with the harness."""
        await store.start(self.broker, self.logger, clock=self.clock)
        self._started.append(store)
        return store

    async def new_instance(self) -> DataStore:
        """Another started instance made by the factory (sharing data when the store
        is ``shared``)."""
        return await self.start(self.factory())

    async def nodes(self) -> tuple[DataStore, DataStore]:
        """The stores that two scheduler nodes use: two instances of a shared store,
        else the same instance twice (the nodes then differ only in scheduler id)."""
        if self.store.capabilities.shared:
            return self.store, await self.new_instance()
        return self.store, self.store

    async def restart(self) -> DataStore:
        """Stop every instance and start a new one (for persistence tests)."""
        for started in reversed(self._started):
            await started.stop()
        self._started.clear()
        self.store = await self.new_instance()
        return self.store

    def events_of(self, event_type: type[_E]) -> list[_E]:
        """The recorded events of *event_type* (subclasses included), in order."""
        return [event for event in self.events if isinstance(event, event_type)]

    def schedule(
        self, schedule_id: str = "s1", fire: float | None = 0, **changes: Any
    ) -> Schedule:
        """A schedule of task ``"task"`` whose next fire time is ``at(fire)``."""
        next_fire_time = None if fire is None else at(fire)
        return Schedule(
            id=schedule_id,
            task_id="task",
            trigger=self.trigger,
            next_fire_time=next_fire_time,
            **changes,
        )


class StoreFixtures:
    """The fixtures of ``DataStoreContract``; a subclass provides ``store_factory``."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        """The contract runs on asyncio, the event loop horae is built on."""
        return "asyncio"

    @pytest.fixture
    def schedule_trigger(self) -> Trigger:
        """The trigger of the test schedules; stores only keep it (they never call
        ``next``). Override it if your store cannot keep this kind of trigger."""
        return IntervalTrigger(seconds=10, start_time=T0)

    @pytest.fixture
    async def harness(
        self, store_factory: StoreFactory, schedule_trigger: Trigger
    ) -> AsyncIterator[StoreHarness]:
        """Started stores for one test (stopped afterwards, within the hard timeout)."""
        # Separate deadlines for setup and teardown: a cancel scope must not span the
        # yield of an async generator fixture.
        with anyio.fail_after(CONTRACT_TEST_TIMEOUT):
            harness = await StoreHarness.create(store_factory, schedule_trigger)
        try:
            yield harness
        finally:
            with anyio.fail_after(CONTRACT_TEST_TIMEOUT):
                await harness.close()
