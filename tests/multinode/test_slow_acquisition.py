"""A worker whose job acquisition took much of the lease (in one process, fake clock).

Acquiring jobs can be slow: the store publishes an event per acquired job before it
returns, through a broker that may be far away, and a process can be paused. The leases
run from the moment the worker asked, and running jobs are renewed only every third of
a lease. So a worker that got its jobs late must renew their leases before starting
them, and must not start a job that another node has meanwhile ended as abandoned (the
multi-process tests hit this on a busy machine; here a store subclass makes the delay
exact).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from uuid import UUID

import anyio
import pytest

from horae import AsyncScheduler, JobOutcome
from horae._structures import Job
from horae.datastores import MemoryDataStore
from horae.testing import FakeClock

pytestmark = pytest.mark.anyio

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)
RAN: list[str] = []


async def note() -> None:
    RAN.append("ran")


class SlowAcquisition(MemoryDataStore):
    """Acquiring jobs takes *delay* of the clock; with ``reaped``, another node ends the
    jobs as abandoned while it does (their lease having lapsed by its clock)."""

    def __init__(self, clock: FakeClock, delay: timedelta, *, reaped: bool) -> None:
        super().__init__()
        self.fake_clock = clock
        self.delay = delay
        self.reaped = reaped
        self.calls: list[str] = []

    async def acquire_jobs(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> list[Job]:
        jobs = await super().acquire_jobs(scheduler_id, now, lease_duration, limit)
        if jobs and scheduler_id != "other-node":
            self.calls.append("acquired")
            self.fake_clock.advance(self.delay)
            if self.reaped:  # another node looks for work after the lease ran out
                await super().acquire_jobs("other-node", self.fake_clock.now(), LEASE, 0)
        return jobs

    async def extend_job_leases(
        self, scheduler_id: str, job_ids: Iterable[UUID], now: datetime, lease_duration: timedelta
    ) -> set[UUID]:
        self.calls.append("renewed")
        return await super().extend_job_leases(scheduler_id, job_ids, now, lease_duration)


async def run_one_job(store: SlowAcquisition, clock: FakeClock) -> JobOutcome:
    RAN.clear()
    with anyio.fail_after(10):
        async with AsyncScheduler(store, clock=clock, lease_duration=LEASE) as scheduler:
            job_id = await scheduler.add_job(note, result_expiration_time=3600)
            await scheduler.start_in_background()
            result = await scheduler.get_job_result(job_id)
    return result.outcome


async def test_a_late_acquisition_renews_the_leases_before_the_jobs_start() -> None:
    clock = FakeClock(T0, autojump=True)
    store = SlowAcquisition(clock, LEASE * 0.6, reaped=False)
    assert await run_one_job(store, clock) is JobOutcome.success
    assert RAN == ["ran"]
    assert store.calls[:2] == ["acquired", "renewed"]


async def test_a_job_taken_over_during_acquisition_is_not_run() -> None:
    clock = FakeClock(T0, autojump=True)
    store = SlowAcquisition(clock, LEASE * 1.5, reaped=True)
    assert await run_one_job(store, clock) is JobOutcome.abandoned
    assert RAN == []


async def test_a_quick_acquisition_costs_no_extra_round_trip() -> None:
    clock = FakeClock(T0, autojump=True)
    store = SlowAcquisition(clock, timedelta(0), reaped=False)
    assert await run_one_job(store, clock) is JobOutcome.success
    assert store.calls == ["acquired"]
