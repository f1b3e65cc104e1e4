"""Helpers shared by the data store tests (and the race node script): the local broker
fixture, starting a store for an ``async with``, and the schedules, jobs and results the
store-specific tests make.

Import the ``broker`` fixture into a test module to use it (``from _store_helpers
import broker``); it is not in a conftest.py on purpose (see tests/conftest.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Generic, TypeVar

import pytest

from horae._enums import JobOutcome
from horae._structures import Job, JobResult, Schedule
from horae.datastores._base import DataStore, ScheduleUpdate
from horae.eventbrokers.local import LocalEventBroker
from horae.events import Event
from horae.triggers._base import Trigger
from horae.triggers.interval import IntervalTrigger

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
#: The trigger of :func:`schedule` unless a test passes its own.
TRIGGER = IntervalTrigger(seconds=10, start_time=T0)
LOGGER = logging.getLogger("horae.tests.datastores")

_S = TypeVar("_S", bound=DataStore)


@pytest.fixture
async def broker() -> AsyncIterator[LocalEventBroker]:
    broker = LocalEventBroker()
    await broker.start(LOGGER)
    yield broker
    await broker.stop()


class Started(Generic[_S]):
    """Starts a store on *broker* for the duration of an ``async with``."""

    def __init__(self, store: _S, broker: LocalEventBroker) -> None:
        self.store = store
        self.broker = broker

    async def __aenter__(self) -> _S:
        await self.store.start(self.broker, LOGGER)
        return self.store

    async def __aexit__(self, *exc_info: object) -> None:
        await self.store.stop()


def schedule(schedule_id: str, fire: datetime = T0, trigger: Trigger = TRIGGER) -> Schedule:
    return Schedule(id=schedule_id, task_id="task", trigger=trigger, next_fire_time=fire)


def fire_job(schedule_id: str, fire_time: datetime) -> Job:
    """The job of *schedule_id* for *fire_time* (its result kept for a day)."""
    return Job(
        task_id="task",
        schedule_id=schedule_id,
        scheduled_fire_time=fire_time,
        start_time=fire_time,
        created_at=fire_time,
        result_expiration_time=timedelta(days=1),
    )


def catch_up(s: Schedule, now: datetime, interval: timedelta) -> ScheduleUpdate:
    """One job per fire time of *s* up to *now* (``CoalescePolicy.all``), then the next."""
    assert s.next_fire_time is not None
    fire_times = []
    fire_time = s.next_fire_time
    while fire_time <= now:
        fire_times.append(fire_time)
        fire_time += interval
    return ScheduleUpdate(
        schedule_id=s.id,
        next_fire_time=fire_time,
        last_fire_time=fire_times[-1] if fire_times else None,
        jobs=[fire_job(s.id, fire) for fire in fire_times],
    )


def success(job: Job, finished: datetime) -> JobResult:
    return JobResult(
        job_id=job.id,
        task_id=job.task_id,
        schedule_id=job.schedule_id,
        scheduled_fire_time=job.scheduled_fire_time,
        outcome=JobOutcome.success,
        finished_at=finished,
        expires_at=finished,
    )


def record(broker: LocalEventBroker) -> list[Event]:
    events: list[Event] = []
    broker.subscribe(events.append)
    return events
