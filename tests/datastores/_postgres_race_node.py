"""One scheduler node of the PostgreSQL multi-process race test (run as a script).

Usage: ``python _postgres_race_node.py DSN SCHEMA NODE_ID SECONDS OUTPUT_JSON``

For SECONDS of real time the node loops like a scheduler: it leases due schedules, makes
one job per fire time up to now (``CoalescePolicy.all``), releases the schedules
(advancing them), then leases due jobs and releases each with a result. Now and then it
misbehaves the way real deployments do:

* every ``STALL_EVERY``-th batch it stalls past its schedule lease before releasing (a
  slow or paused node), so the other node takes the schedules over and the stale
  release must be fenced out;
* every ``REWIND_EVERY``-th batch it re-declares one schedule with
  ``ConflictPolicy.replace`` at its first fire time (as every process does with its
  declared schedules at start-up), so fire times that already made jobs (some long
  finished) are computed again and must be refused by the store's fire-time guard.

It writes the (schedule, fire time) pairs of the jobs it created, the ids of the jobs it
ran, and counters to OUTPUT_JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from horae._clock import SystemClock
from horae._enums import ConflictPolicy, JobOutcome
from horae._structures import Job, JobResult, Schedule
from horae.datastores._base import ScheduleUpdate
from horae.datastores.postgres import PostgresDataStore
from horae.eventbrokers.local import LocalEventBroker

#: The fire interval of every race schedule (the test makes them with this interval).
INTERVAL = timedelta(milliseconds=500)
SCHEDULE_LEASE = timedelta(milliseconds=300)
JOB_LEASE = timedelta(seconds=60)
STALL_EVERY = 3
STALL = SCHEDULE_LEASE * 2
REWIND_EVERY = 2


def make_update(schedule: Schedule, now: datetime) -> ScheduleUpdate:
    """One job per fire time up to *now*, then the next fire time."""
    assert schedule.next_fire_time is not None
    fire_times = []
    fire_time = schedule.next_fire_time
    while fire_time <= now:
        fire_times.append(fire_time)
        fire_time += INTERVAL
    jobs = [
        Job(
            task_id=schedule.task_id,
            schedule_id=schedule.id,
            scheduled_fire_time=fire,
            start_time=fire,
            created_at=now,
            result_expiration_time=timedelta(hours=1),
        )
        for fire in fire_times
    ]
    return ScheduleUpdate(
        schedule_id=schedule.id,
        next_fire_time=fire_time,
        last_fire_time=fire_times[-1] if fire_times else None,
        jobs=jobs,
    )


async def _run_jobs(store: PostgresDataStore, node: str, clock: SystemClock) -> list[str]:
    ran = []
    for job in await store.acquire_jobs(node, clock.now(), JOB_LEASE, 5):
        result = JobResult(
            job_id=job.id,
            task_id=job.task_id,
            schedule_id=job.schedule_id,
            scheduled_fire_time=job.scheduled_fire_time,
            outcome=JobOutcome.success,
            finished_at=clock.now(),
            expires_at=clock.now(),
        )
        if await store.release_job(node, result):
            ran.append(str(job.id))
    return ran


async def _rewind(store: PostgresDataStore, batch: int) -> None:
    schedules = await store.get_schedules([f"s{batch * 37 % 200:03}"])
    for schedule in schedules:
        start = schedule.trigger.next()
        await store.add_schedule(
            attrs.evolve(schedule, next_fire_time=start), ConflictPolicy.replace
        )


async def main(dsn: str, schema: str, node: str, seconds: float, output: Path) -> None:
    clock = SystemClock()
    broker = LocalEventBroker()
    logger = logging.getLogger(f"race.{node}")
    await broker.start(logger)
    store = PostgresDataStore(dsn, schema)
    await store.start(broker, logger, clock=clock)
    report: dict[str, Any] = {"created": [], "ran": [], "offered": 0, "rewinds": 0}
    deadline = time.monotonic() + seconds
    batch = 0
    try:
        while time.monotonic() < deadline:
            batch += 1
            schedules = await store.acquire_schedules(node, clock.now(), SCHEDULE_LEASE, 50)
            if schedules:
                now = clock.now()
                updates = [make_update(schedule, now) for schedule in schedules]
                if batch % STALL_EVERY == 0:
                    await asyncio.sleep(STALL.total_seconds())
                created = await store.release_schedules(node, updates)
                report["offered"] += sum(len(update.jobs) for update in updates)
                for job in created:
                    assert job.scheduled_fire_time is not None
                    report["created"].append(
                        [job.schedule_id, job.scheduled_fire_time.isoformat()]
                    )
            if batch % REWIND_EVERY == 0:
                await _rewind(store, batch)
                report["rewinds"] += 1
            report["ran"] += await _run_jobs(store, node, clock)
            if not schedules:
                await asyncio.sleep(0.02)
    finally:
        await store.stop()
        await broker.stop()
    output.write_text(json.dumps(report))  # noqa: ASYNC240 - once, at exit


if __name__ == "__main__":
    dsn, schema, node, seconds, output = sys.argv[1:]
    asyncio.run(main(dsn, schema, node, float(seconds), Path(output)))
