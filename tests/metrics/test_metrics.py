"""horae.metrics: values after known sequences of fires (on a FakeClock), the store
wrapper's transparency (the DataStore contract), and the exporters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import anyio
import pytest

from horae import AsyncScheduler, CoalescePolicy, current_scheduler, events
from horae.datastores.memory import MemoryDataStore
from horae.eventbrokers.local import LocalEventBroker
from horae.metrics import InstrumentedDataStore, Metrics
from horae.testing import DataStoreContract, FakeClock
from horae.triggers import IntervalTrigger

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
TIMEOUT = 10
TASK = f"{__name__}:nothing"
FAILING = f"{__name__}:fail"


async def nothing() -> None:
    """A job that does nothing."""


async def fail() -> None:
    """A job that raises."""
    raise ValueError("no luck")


async def sleep_25_seconds() -> None:
    """A job that takes 25 s of the scheduler's clock."""
    clock = current_scheduler.get().clock
    await clock.sleep_until(clock.now() + timedelta(seconds=25))


async def run_until_released(
    metrics: Metrics,
    count: int,
    schedules: list[dict[str, Any]],
    *,
    downtime: timedelta = timedelta(0),
    **scheduler_args: Any,
) -> None:
    """Add *schedules*, let *downtime* pass, then run until *count* jobs have ended."""
    clock = FakeClock(T0, autojump=True)
    done = anyio.Event()
    released: list[events.JobReleased] = []

    def on_released(event: events.JobReleased) -> None:
        released.append(event)
        if len(released) >= count:
            done.set()

    store = metrics.instrument(MemoryDataStore())
    with anyio.fail_after(TIMEOUT):
        async with AsyncScheduler(store, clock=clock, **scheduler_args) as scheduler:
            scheduler.subscribe(on_released, events.JobReleased)
            for schedule in schedules:
                await scheduler.add_schedule(**schedule)
            clock.advance(downtime)
            await scheduler.start_in_background()
            await done.wait()
            await scheduler.stop()


pytestmark = pytest.mark.anyio


async def test_jobs_by_outcome_fire_lag_and_durations_after_six_fires() -> None:
    metrics = Metrics()
    every_10s = IntervalTrigger(seconds=10, start_time=T0)
    offset = IntervalTrigger(seconds=10, start_time=T0 + timedelta(seconds=5))
    schedules = [
        {"func_or_task_id": nothing, "trigger": every_10s, "id": "tick"},
        {"func_or_task_id": fail, "trigger": offset, "id": "boom"},
    ]
    await run_until_released(metrics, 6, schedules)
    assert metrics.jobs.value(task=TASK, outcome="success") == 3
    assert metrics.jobs.value(task=FAILING, outcome="error") == 3
    assert metrics.jobs.total() == 6
    assert metrics.fires.value(task=TASK) == 3
    assert metrics.fires.value(task=FAILING) == 3
    lag = metrics.fire_lag.get(task=TASK)
    # the fake clock stands still while the scheduler works: every job starts on time
    assert (lag.count, lag.sum) == (3, 0.0)
    assert lag.buckets[0] == (0.005, 3)
    duration = metrics.job_duration.get(task=FAILING, outcome="error")
    assert (duration.count, duration.sum) == (3, 0.0)
    assert metrics.misfires.total() == 0
    assert metrics.coalesced_fires.total() == 0


async def test_a_misfire_is_counted_once() -> None:
    metrics = Metrics()
    schedule = {
        "func_or_task_id": nothing,
        "trigger": IntervalTrigger(hours=1, start_time=T0),
        "id": "late",
        "misfire_grace_time": 1,
    }
    await run_until_released(metrics, 1, [schedule], downtime=timedelta(seconds=5))
    assert metrics.misfires.value(task=TASK) == 1
    assert metrics.jobs.value(task=TASK, outcome="missed_start_deadline") == 1
    assert metrics.fire_lag.get(task=TASK).count == 0  # it never started
    assert metrics.job_duration.values() == {}


@pytest.mark.parametrize(
    ("policy", "lag"), [(CoalescePolicy.latest, 0.5), (CoalescePolicy.earliest, 10.5)]
)
async def test_coalesced_fires_after_ten_and_a_half_seconds_of_downtime(
    policy: CoalescePolicy, lag: float
) -> None:
    metrics = Metrics()
    schedule = {
        "func_or_task_id": nothing,
        "trigger": IntervalTrigger(seconds=1, start_time=T0),
        "id": "every-second",
        "coalesce": policy,
    }
    await run_until_released(metrics, 1, [schedule], downtime=timedelta(seconds=10.5))
    # eleven fire times were due (T0 ... T0+10): one job, ten folded into it
    assert metrics.coalesced_fires.value(task=TASK) == 10
    assert metrics.fires.value(task=TASK) >= 1
    # the job started at T0+10.5 s, for the fire time T0+10 s (latest) or T0 (earliest);
    # any later job started on time
    assert metrics.fire_lag.get(task=TASK).sum == lag


async def test_coalesced_fires_are_counted_up_to_a_cap() -> None:
    metrics = Metrics()
    schedule = {
        "func_or_task_id": nothing,
        "trigger": IntervalTrigger(seconds=1, start_time=T0),
        "id": "every-second",
    }
    await run_until_released(metrics, 1, [schedule], downtime=timedelta(days=30))
    assert metrics.coalesced_fires.value(task=TASK) == 1000


async def test_lease_renewals_of_a_long_job() -> None:
    metrics = Metrics()
    schedule = {
        "func_or_task_id": sleep_25_seconds,
        "trigger": IntervalTrigger(hours=1, start_time=T0),
        "id": "long",
    }
    await run_until_released(metrics, 1, [schedule], lease_duration=timedelta(seconds=30))
    # renewed every third of the 30 s lease while it ran: at +10 s and +20 s
    assert metrics.lease_renewals.value(result="renewed") == 2
    assert metrics.lease_renewals.value(result="lost") == 0
    task = f"{__name__}:sleep_25_seconds"
    assert metrics.job_duration.get(task=task, outcome="success").sum == 25.0


async def test_store_latency_and_errors() -> None:
    metrics = Metrics()
    store = metrics.instrument(MemoryDataStore(), name="main")
    await store.start(LocalEventBroker(), logging.getLogger(__name__))
    try:
        await store.get_tasks()
        await store.get_tasks()
        with pytest.raises(RuntimeError, match="broken"):
            await InstrumentedDataStore(_Broken(), metrics, "broken").cleanup(T0)
        lost = await store.extend_job_leases("node", [uuid4()], T0, timedelta(seconds=30))
    finally:
        await store.stop()
    assert lost == set()
    assert metrics.lease_renewals.value(result="lost") == 1
    assert metrics.store_latency.get(store="main", operation="get_tasks").count == 2
    assert metrics.store_errors.value(store="broken", operation="cleanup") == 1
    assert metrics.store_errors.value(store="main", operation="get_tasks") == 0


async def test_lookup_misses_are_not_store_errors() -> None:
    metrics = Metrics()
    store = metrics.instrument(MemoryDataStore())
    await store.start(LocalEventBroker(), logging.getLogger(__name__))
    try:
        with pytest.raises(LookupError):
            await store.get_task("nope")
    finally:
        await store.stop()
    assert metrics.store_errors.total() == 0
    assert metrics.store_latency.get(store="memory", operation="get_task").count == 1


class _Broken(MemoryDataStore):
    async def cleanup(self, now: datetime) -> None:
        raise RuntimeError("broken")


def test_the_wrapper_names_itself_after_the_store() -> None:
    store = Metrics().instrument(MemoryDataStore())
    assert store.log_name == "memory"
    assert repr(store) == f"InstrumentedDataStore({store.wrapped!r})"
    assert store.capabilities == store.wrapped.capabilities
    with pytest.raises(TypeError, match="expected a DataStore to instrument, not str"):
        Metrics().instrument("sqlite:///x.db")  # type: ignore[arg-type]


def test_instruments_check_their_labels() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match=r"jobs takes the labels \['task', 'outcome'\]"):
        metrics.jobs.add(1, task="t")
    with pytest.raises(ValueError, match="a counter only goes up"):
        metrics.jobs.add(-1, task="t", outcome="success")


def test_listeners_see_every_change_and_their_errors_are_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    seen: list[tuple[str, float, dict[str, str]]] = []
    remove = metrics.add_listener(lambda i, v, labels: seen.append((i.name, v, dict(labels))))

    def broken(*_: object) -> None:
        raise RuntimeError("listener trouble")

    metrics.add_listener(broken)
    metrics.fire_lag.record(0.2, task="t")
    metrics.misfires.add(1, task="t")
    remove()
    metrics.misfires.add(1, task="t")
    assert seen == [("fire_lag_seconds", 0.2, {"task": "t"}), ("misfires", 1, {"task": "t"})]
    assert metrics.misfires.value(task="t") == 2
    assert "A metrics listener failed on misfires" in caplog.text


def test_horae_does_not_import_exporters() -> None:
    import subprocess
    import sys

    code = (
        "import sys, horae, horae.metrics; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('prometheus_client', 'opentelemetry', 'fastapi', 'starlette', 'aiohttp')))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert output.strip() == "[]"


class TestInstrumentedStoreContract(DataStoreContract):
    """The wrapper passes the DataStore contract: it changes nothing it measures."""

    @pytest.fixture
    def store_factory(self) -> Callable[[], InstrumentedDataStore]:
        metrics = Metrics()
        return lambda: metrics.instrument(MemoryDataStore())


async def test_the_instrumented_store_passes_event_batches_on_whole() -> None:
    """Events that a store publishes together still reach the broker together (one
    publish_many), not one by one."""

    class Recording(LocalEventBroker):
        def __init__(self) -> None:
            super().__init__()
            self.batches: list[list[events.Event]] = []

        async def publish_many(self, batch: Any) -> None:
            batch = list(batch)
            self.batches.append(batch)
            await super().publish_many(batch)

    class Batching(MemoryDataStore):
        async def add_jobs(self, jobs: Any) -> None:
            added = [
                events.JobAdded(timestamp=T0, job_id=job.id, task_id=job.task_id, schedule_id=None)
                for job in jobs
            ]
            await self._started().publish_many(added)

    from horae import Job

    metrics = Metrics()
    broker = Recording()
    await broker.start(logging.getLogger(__name__))
    store = InstrumentedDataStore(Batching(), metrics, "batching")
    await store.start(broker, logging.getLogger(__name__), clock=FakeClock(T0))
    jobs = [Job(task_id="t", start_time=T0, created_at=T0) for _ in range(3)]
    await store.add_jobs(jobs)
    assert [len(batch) for batch in broker.batches] == [3]
    await store.stop()
    await broker.stop()
