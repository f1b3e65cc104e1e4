"""Logging: one logger per component under the scheduler's base logger, and structured
fields (job id, schedule id, task id, fire time) on the records about a job."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from logging import Logger

import anyio
import pytest

from horae import AsyncScheduler, events
from horae._clock import Clock
from horae.datastores.memory import MemoryDataStore
from horae.eventbrokers._base import EventBroker
from horae.eventbrokers.local import LocalEventBroker
from horae.testing import FakeClock
from horae.triggers import IntervalTrigger

pytestmark = pytest.mark.anyio
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


class RecordingStore(MemoryDataStore):
    """A memory store that remembers the logger it was started with."""

    logger_name = ""

    async def start(
        self, event_broker: EventBroker, logger: Logger, *, clock: Clock | None = None
    ) -> None:
        type(self).logger_name = logger.name
        await super().start(event_broker, logger, clock=clock)


class RecordingBroker(LocalEventBroker):
    """A local broker that remembers the logger it was started with."""

    logger_name = ""

    async def start(self, logger: Logger) -> None:
        type(self).logger_name = logger.name
        await super().start(logger)


async def fail() -> None:
    raise ValueError("the job failed")


async def run_one_failing_job(logger: Logger | None) -> None:
    clock = FakeClock(T0, autojump=True)
    released = anyio.Event()
    with anyio.fail_after(10):
        async with AsyncScheduler(
            RecordingStore(), RecordingBroker(), clock=clock, logger=logger
        ) as scheduler:
            scheduler.subscribe(lambda _: released.set(), events.JobReleased)
            await scheduler.add_schedule(
                fail, IntervalTrigger(minutes=1, start_time=T0), id="failing"
            )
            await scheduler.start_in_background()
            await released.wait()


@pytest.mark.parametrize("base", [None, "myapp.jobs"])
async def test_one_logger_per_component(
    caplog: pytest.LogCaptureFixture, base: str | None
) -> None:
    caplog.set_level(logging.DEBUG)
    await run_one_failing_job(None if base is None else logging.getLogger(base))
    prefix = base or "horae"
    assert RecordingStore.logger_name == f"{prefix}.datastores.recordingstore"
    assert RecordingBroker.logger_name == f"{prefix}.eventbrokers.recordingbroker"
    names = {record.name for record in caplog.records}
    assert f"{prefix}.scheduler" in names
    assert f"{prefix}.worker" in names
    started = [r for r in caplog.records if r.getMessage().startswith("Scheduler ")]
    assert started
    assert {r.name for r in started} == {f"{prefix}.scheduler"}


async def test_a_failing_job_is_logged_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await run_one_failing_job(None)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.name == "horae.worker"
    assert record.getMessage().endswith(
        f"of task '{__name__}:fail' raised ValueError: the job failed"
    )
    assert record.exc_info is not None
    assert record.schedule_id == "failing"  # type: ignore[attr-defined]
    assert record.task_id == f"{__name__}:fail"  # type: ignore[attr-defined]
    assert record.fire_time == T0.isoformat()  # type: ignore[attr-defined]
    assert record.job_id == record.getMessage().split()[1]  # type: ignore[attr-defined]
    fired = [r for r in caplog.records if r.getMessage().startswith("Schedule 'failing' fired")]
    assert fired
    assert fired[0].name == "horae.scheduler"
    assert fired[0].schedule_id == "failing"  # type: ignore[attr-defined]


def test_backend_names() -> None:
    from horae._logging import backend_name
    from horae.datastores.sqlite import SQLiteDataStore
    from horae.metrics import Metrics

    assert backend_name(MemoryDataStore()) == "memory"
    assert backend_name(SQLiteDataStore("x.sqlite3")) == "sqlite"
    assert backend_name(LocalEventBroker()) == "local"
    assert backend_name(Metrics().instrument(SQLiteDataStore("x.sqlite3"))) == "sqlite"
    assert backend_name(timedelta(1)) == "timedelta"
