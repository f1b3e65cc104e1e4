"""MemoryDataStore: the public contract, plus memory-specific checks of its indexes.

The index classes (``ScheduleIndex``, ``JobQueue``) are synchronous; they are compared
here with naive reference models (sort everything, scan everything) by hypothesis state
machines, and their lazy heaps are checked to stay bounded.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import anyio
import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from horae._structures import Job, Schedule
from horae.datastores._base import ScheduleUpdate, StoreCapabilities
from horae.datastores._memory_schedules import LEASE_EPSILON, ScheduleIndex
from horae.datastores.memory import MemoryDataStore
from horae.eventbrokers.local import LocalEventBroker
from horae.events import Event
from horae.testing import DataStoreContract
from horae.triggers.interval import IntervalTrigger

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)
TRIGGER = IntervalTrigger(seconds=1, start_time=T0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class TestMemoryDataStore(DataStoreContract):
    @pytest.fixture
    def store_factory(self) -> type[MemoryDataStore]:
        return MemoryDataStore


def test_capabilities() -> None:
    assert MemoryDataStore().capabilities == StoreCapabilities(
        persistent=False, shared=False, requires_references=False, keeps_exception_objects=True
    )


@pytest.mark.anyio
async def test_methods_need_a_started_store() -> None:
    with anyio.fail_after(5), pytest.raises(RuntimeError, match=r"call 'await store\.start"):
        await MemoryDataStore().get_tasks()


@pytest.mark.anyio
async def test_broker_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class FailingBroker(LocalEventBroker):
        async def publish(self, event: Event) -> None:
            raise ConnectionError("broker down")

    store = MemoryDataStore()
    logger = logging.getLogger("test.memory")
    with anyio.fail_after(5):
        await store.start(FailingBroker(), logger)
        with caplog.at_level(logging.ERROR, logger="test.memory"):
            await store.add_jobs([Job(task_id="t", start_time=T0, created_at=T0)])
    assert len(await store.get_jobs()) == 1
    assert [record.getMessage() for record in caplog.records] == ["could not publish JobAdded"]


# ---- ScheduleIndex --------------------------------------------------------------------


def schedule(schedule_id: str, fire: float | None, **changes: object) -> Schedule:
    next_fire_time = None if fire is None else at(fire)
    return Schedule(
        id=schedule_id,
        task_id="task",
        trigger=TRIGGER,
        next_fire_time=next_fire_time,
        **changes,  # type: ignore[arg-type]
    )


def test_schedule_heaps_stay_bounded_under_churn() -> None:
    index = ScheduleIndex()
    for number in range(10):
        index.put(schedule(f"s{number}", fire=number))
    for step in range(5_000):
        schedule_id = f"s{step % 10}"
        current = index.get(schedule_id)
        assert current is not None
        if step % 3 == 0:
            index.put(attrs.evolve(current, paused=True, paused_until=at(1000 + step)))
        elif step % 3 == 1:
            index.put(attrs.evolve(current, paused=False, paused_until=None))
        else:
            index.put(attrs.evolve(current, next_fire_time=at(step)))
        entries, schedules = index.heap_sizes()
        assert entries <= 2 * schedules + 65
    acquired, _ = index.acquire("n1", at(10**6), LEASE, 100)
    unpaused = [s for s in index.get_many(None) if not s.paused]
    assert sorted(s.id for s in acquired) == sorted(s.id for s in unpaused)


def test_removed_and_readded_id_does_not_revive_old_entries() -> None:
    index = ScheduleIndex()
    index.put(schedule("s1", fire=0))
    index.remove("s1")
    index.put(schedule("s1", fire=50))
    assert index.next_time() == at(50)
    assert index.acquire("n1", at(10), LEASE, 10) == ([], [])


def test_watermark_drops_fire_times_at_or_before_it() -> None:
    index = ScheduleIndex()
    index.put(schedule("s1", fire=0))
    index.acquire("n1", at(0), LEASE, 1)

    def job(fire: float) -> Job:
        return Job(
            task_id="task",
            schedule_id="s1",
            scheduled_fire_time=at(fire),
            start_time=at(fire),
            created_at=T0,
        )

    update = ScheduleUpdate(schedule_id="s1", next_fire_time=at(5), jobs=[job(5), job(0)])
    [released] = index.release("n1", [update])
    assert [j.scheduled_fire_time for j in released.jobs] == [at(0), at(5)]
    index.acquire("n1", at(5), LEASE, 1)
    update = ScheduleUpdate(
        schedule_id="s1", next_fire_time=at(9), jobs=[job(3), job(5), job(6), job(6)]
    )
    [released] = index.release("n1", [update])
    assert [j.scheduled_fire_time for j in released.jobs] == [at(6)]


@attrs.define
class _ModelSchedule:
    fire: int
    paused: bool = False
    until: int | None = None
    holder: str | None = None
    lease_end: int | None = None
    lapsed: bool = False  # the index saw the lease lapse (it then counts as due)


NODES = st.sampled_from(["n1", "n2"])
IDS = st.sampled_from([f"s{number}" for number in range(6)])


class ScheduleIndexMachine(RuleBasedStateMachine):
    """ScheduleIndex against a model that sorts everything (times in whole seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.index = ScheduleIndex()
        self.model: dict[str, _ModelSchedule] = {}
        self.now = 0

    @rule(schedule_id=IDS, fire=st.integers(0, 60))
    def put(self, schedule_id: str, fire: int) -> None:
        self.index.put(schedule(schedule_id, fire))
        self.model[schedule_id] = _ModelSchedule(fire)

    @rule(schedule_id=IDS)
    def remove(self, schedule_id: str) -> None:
        removed = self.index.remove(schedule_id)
        assert (removed is not None) == (self.model.pop(schedule_id, None) is not None)

    @rule(schedule_id=IDS, until=st.none() | st.integers(0, 60))
    def pause(self, schedule_id: str, until: int | None) -> None:
        current = self.index.get(schedule_id)
        if current is None:
            return
        paused_until = None if until is None else at(until)
        self.index.put(attrs.evolve(current, paused=True, paused_until=paused_until))
        self.model[schedule_id].paused, self.model[schedule_id].until = True, until

    @rule(seconds=st.integers(0, 40))
    def advance_time(self, seconds: int) -> None:
        self.now += seconds

    @rule(node=NODES, limit=st.integers(0, 4))
    def acquire(self, node: str, limit: int) -> None:
        for item in self.model.values():
            if item.paused and item.until is not None and item.until <= self.now:
                item.paused, item.until = False, None
            if item.holder is not None and item.lease_end is not None:
                item.lapsed = item.lapsed or item.lease_end < self.now
        due = sorted(
            (item.fire, schedule_id)
            for schedule_id, item in self.model.items()
            if not item.paused
            and item.fire <= self.now
            and (item.holder in (None, node) or item.lapsed)
        )[:limit]
        acquired, _ = self.index.acquire(node, at(self.now), LEASE, limit)
        assert [s.id for s in acquired] == [schedule_id for _, schedule_id in due]
        for _, schedule_id in due:
            item = self.model[schedule_id]
            item.holder, item.lease_end, item.lapsed = node, self.now + 30, False

    @rule(node=NODES, schedule_id=IDS, step=st.integers(0, 30))
    def release(self, node: str, schedule_id: str, step: int) -> None:
        item = self.model.get(schedule_id)
        update = ScheduleUpdate(schedule_id=schedule_id, next_fire_time=at(self.now + step))
        released = self.index.release(node, [update])
        accepted = item is not None and item.holder == node
        assert len(released) == int(accepted)
        if item is not None and accepted:
            item.fire, item.holder, item.lease_end, item.lapsed = (
                self.now + step,
                None,
                None,
                False,
            )

    @invariant()
    def next_time_matches_model(self) -> None:
        times = []
        for item in self.model.values():
            if item.paused:
                if item.until is not None:
                    times.append(at(item.until))
            elif item.holder is not None and not item.lapsed:
                assert item.lease_end is not None
                times.append(at(item.lease_end) + LEASE_EPSILON)
            else:
                times.append(at(item.fire))
        assert self.index.next_time() == min(times, default=None)


TestScheduleIndexMachine = ScheduleIndexMachine.TestCase
TestScheduleIndexMachine.settings = settings(max_examples=60, stateful_step_count=40)
