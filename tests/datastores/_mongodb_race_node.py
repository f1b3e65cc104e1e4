"""One scheduler node of the MongoDB multi-process race test (run as a script).

Usage: ``python _mongodb_race_node.py URI DATABASE NODE_ID SECONDS OUTPUT_JSON``

For SECONDS of real time the node loops like a scheduler: it leases due schedules, makes
one job per fire time up to now, releases the schedules (advancing them), then leases
due jobs and releases each with a result. Now and then it stalls past its schedule
lease before releasing, as a slow or paused node would, so that the other node takes
the schedules over and the stale release must be fenced out. It writes the (schedule,
fire time) pairs of the jobs it created and the ids of the jobs it ran to OUTPUT_JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from horae._clock import SystemClock
from horae._enums import JobOutcome
from horae._structures import Job, JobResult, Schedule
from horae.datastores._base import ScheduleUpdate
from horae.datastores.mongodb import MongoDBDataStore
from horae.eventbrokers.local import LocalEventBroker
from horae.serializers._records import to_epoch_us

#: The fire interval of every race schedule (the test makes them with this interval).
INTERVAL = timedelta(seconds=2)
SCHEDULE_LEASE = timedelta(milliseconds=400)
JOB_LEASE = timedelta(seconds=60)
STALL_PROBABILITY = 0.2
#: Jobs run per loop (few, so that a loop is short and the other node sees the stalls).
JOB_BATCH = 10


def make_update(schedule: Schedule, clock: SystemClock) -> ScheduleUpdate:
    """One job per fire time up to now (CoalescePolicy.all), then the next fire time."""
    now = clock.now()
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


async def _run_jobs(store: MongoDBDataStore, node: str, clock: SystemClock) -> list[str]:
    ran = []
    for job in await store.acquire_jobs(node, clock.now(), JOB_LEASE, JOB_BATCH):
        finished = clock.now()
        result = JobResult(
            job_id=job.id,
            task_id=job.task_id,
            schedule_id=job.schedule_id,
            scheduled_fire_time=job.scheduled_fire_time,
            outcome=JobOutcome.success,
            finished_at=finished,
            expires_at=finished,
        )
        assert await store.release_job(node, result)
        ran.append(str(job.id))
    return ran


async def main(uri: str, database: str, node: str, seconds: float) -> dict[str, Any]:
    logger = logging.getLogger(f"race.{node}")
    clock = SystemClock()
    rng = random.Random(node)
    broker = LocalEventBroker()
    await broker.start(logger)
    store = MongoDBDataStore(uri, database)
    await store.start(broker, logger)
    created: list[tuple[str, int]] = []
    ran: list[str] = []
    fenced = 0  # updates with jobs whose release was refused (the lease was taken over)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            schedules = await store.acquire_schedules(node, clock.now(), SCHEDULE_LEASE, 25)
            updates = [make_update(schedule, clock) for schedule in schedules]
            if updates and rng.random() < STALL_PROBABILITY:
                await asyncio.sleep(SCHEDULE_LEASE.total_seconds() * 3)
            jobs = await store.release_schedules(node, updates)
            made = {job.schedule_id for job in jobs}
            fenced += sum(1 for u in updates if u.jobs and u.schedule_id not in made)
            for job in jobs:
                assert job.schedule_id is not None
                assert job.scheduled_fire_time is not None
                created.append((job.schedule_id, to_epoch_us(job.scheduled_fire_time)))
            ran += await _run_jobs(store, node, clock)
            if not schedules:
                await asyncio.sleep(0.01)
        ran += await _run_jobs(store, node, clock)
    finally:
        await store.stop()
        await broker.stop()
    return {"created": created, "ran": ran, "fenced": fenced}


if __name__ == "__main__":
    report = asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
    Path(sys.argv[5]).write_text(json.dumps(report), encoding="utf-8")
