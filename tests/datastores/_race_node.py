"""One scheduler node of a store's multi-process race test (run as a script).

Usage: ``python _race_node.py STORE TARGET NAMESPACE NODE_ID SECONDS OUTPUT_JSON``

STORE is ``postgres``, ``redis``, ``mongodb`` or ``sqlite``; TARGET is the DSN, URL, URI
or database file, and NAMESPACE the schema, key prefix or database (``-`` for SQLite).

For SECONDS of real time the node loops like a scheduler: it leases due schedules, makes
one job per fire time up to now (``CoalescePolicy.all``), releases the schedules
(advancing them), then leases due jobs and releases each with a result. Now and then it
misbehaves the way real deployments do, as the store's :data:`PROFILES` entry says:

* it stalls past its schedule lease before releasing (a slow or paused node), so the
  other node takes the schedules over and the stale release must be fenced out;
* (``rewind_every``) it re-declares one schedule with ``ConflictPolicy.replace`` at its
  first fire time (as every process does with its declared schedules at start-up), so
  fire times that already made jobs (some long finished) are computed again and must be
  refused by the store's fire-time guard.

It writes to OUTPUT_JSON the (schedule id, ISO fire time) pairs of the jobs it created,
the ids of the jobs it ran, and counters: ``fenced`` (updates with jobs whose release
made none), ``offered`` (jobs offered in releases), ``stalls`` and ``rewinds``.
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

import attrs
from _store_helpers import catch_up, success

from horae._clock import SystemClock
from horae._enums import ConflictPolicy
from horae.datastores._base import DataStore
from horae.eventbrokers.local import LocalEventBroker

JOB_LEASE = timedelta(seconds=60)


@attrs.frozen(kw_only=True)
class Profile:
    """How one store's race runs (tuned per store so that each race stays short and
    still makes the other node take schedules over)."""

    #: the fire interval of every race schedule (the test makes them with it)
    interval: timedelta = timedelta(seconds=2)
    schedule_lease: timedelta = timedelta(milliseconds=400)
    schedule_batch: int = 25
    #: jobs run per loop (few, so that a loop is short and the other node sees stalls)
    job_batch: int = 50
    #: a stall lasts this many schedule leases
    stall_leases: float = 1.5
    #: the chance that a batch stalls, or ``None`` to stall every ``stall_every``-th batch
    stall_chance: float | None = 0.1
    stall_every: int = 0
    #: the nodes that stall (every node when empty)
    stalling_nodes: tuple[str, ...] = ()
    #: re-declare a schedule every this many loops (never when 0)
    rewind_every: int = 0
    #: whether every job release must succeed (a rewind with ``ConflictPolicy.replace``
    #: may drop a leased job's schedule, and with it the job)
    strict_release: bool = True
    idle_sleep: float = 0.01

    def stalls(self, node: str, batch: int, rng: random.Random) -> bool:
        """Whether *node* stalls before releasing its *batch*-th non-empty batch."""
        if self.stalling_nodes and node not in self.stalling_nodes:
            return False
        if self.stall_chance is not None:
            return rng.random() < self.stall_chance
        return batch % self.stall_every == 0


PROFILES: dict[str, Profile] = {
    "postgres": Profile(
        interval=timedelta(milliseconds=500),
        schedule_lease=timedelta(milliseconds=300),
        schedule_batch=50,
        job_batch=5,
        stall_leases=2,
        stall_chance=None,
        stall_every=3,
        rewind_every=2,
        strict_release=False,
        idle_sleep=0.02,
    ),
    "redis": Profile(),
    "mongodb": Profile(job_batch=10, stall_leases=3, stall_chance=0.2),
    # Only n1 stalls, so that n2 is busy acquiring while n1's leases lapse.
    "sqlite": Profile(
        job_batch=20, stall_leases=4, stall_chance=None, stall_every=2, stalling_nodes=("n1",)
    ),
}


def make_store(kind: str, target: str, namespace: str) -> DataStore:
    if kind == "postgres":
        from horae.datastores.postgres import PostgresDataStore

        return PostgresDataStore(target, namespace)
    if kind == "redis":
        from horae.datastores.redis import RedisDataStore

        return RedisDataStore(target, namespace)
    if kind == "mongodb":
        from horae.datastores.mongodb import MongoDBDataStore

        return MongoDBDataStore(target, namespace)
    from horae.datastores.sqlite import SQLiteDataStore

    return SQLiteDataStore(target, busy_timeout=10.0)


async def _run_jobs(store: DataStore, node: str, profile: Profile) -> list[str]:
    clock = SystemClock()
    ran = []
    for job in await store.acquire_jobs(node, clock.now(), JOB_LEASE, profile.job_batch):
        # A job is leased for far longer than the race, so no other node can take it
        # and its release must succeed: a refused one would mean it ran twice.
        released = await store.release_job(node, success(job, clock.now()))
        assert released or not profile.strict_release
        if released:
            ran.append(str(job.id))
    return ran


async def _rewind(store: DataStore, loop: int) -> None:
    for schedule in await store.get_schedules([f"s{loop * 37 % 200:03}"]):
        start = schedule.trigger.next()
        await store.add_schedule(
            attrs.evolve(schedule, next_fire_time=start), ConflictPolicy.replace
        )


async def race(store: DataStore, profile: Profile, node: str, seconds: float) -> dict[str, Any]:
    """Loop as described in the module docstring; return the report."""
    clock = SystemClock()
    rng = random.Random(node)
    report: dict[str, Any] = {
        "created": [], "ran": [], "fenced": 0, "offered": 0, "stalls": 0, "rewinds": 0
    }  # fmt: skip
    loops = batches = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        loops += 1
        lease = profile.schedule_lease
        schedules = await store.acquire_schedules(node, clock.now(), lease, profile.schedule_batch)
        if schedules:
            batches += 1
            now = clock.now()
            updates = [catch_up(schedule, now, profile.interval) for schedule in schedules]
            if profile.stalls(node, batches, rng):
                report["stalls"] += 1
                await asyncio.sleep(lease.total_seconds() * profile.stall_leases)
            jobs = await store.release_schedules(node, updates)
            made = {job.schedule_id for job in jobs}
            report["fenced"] += sum(1 for u in updates if u.jobs and u.schedule_id not in made)
            report["offered"] += sum(len(update.jobs) for update in updates)
            for job in jobs:
                assert job.scheduled_fire_time is not None
                report["created"].append([job.schedule_id, job.scheduled_fire_time.isoformat()])
        if profile.rewind_every and loops % profile.rewind_every == 0:
            await _rewind(store, loops)
            report["rewinds"] += 1
        report["ran"] += await _run_jobs(store, node, profile)
        if not schedules:
            await asyncio.sleep(profile.idle_sleep)
    report["ran"] += await _run_jobs(store, node, profile)
    return report


async def main(
    kind: str, target: str, namespace: str, node: str, seconds: float, output: Path
) -> None:
    logger = logging.getLogger(f"race.{node}")
    broker = LocalEventBroker()
    await broker.start(logger)
    store = make_store(kind, target, namespace)
    await store.start(broker, logger, clock=SystemClock())
    try:
        report = await race(store, PROFILES[kind], node, seconds)
    finally:
        await store.stop()
        await broker.stop()
    output.write_text(json.dumps(report), encoding="utf-8")  # noqa: ASYNC240 - once, at exit


if __name__ == "__main__":
    kind, target, namespace, node, seconds, output = sys.argv[1:]
    asyncio.run(main(kind, target, namespace, node, float(seconds), Path(output)))
