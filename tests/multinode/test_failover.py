"""Nodes that die, brokers that drop, and nodes with one role each, on real stores.

* Failover: three nodes; the one that runs a long job is killed with SIGKILL. The
  others must report that job ``abandoned`` (exactly once) within the lease plus a
  margin, take over its share of the schedules, and run every other fire once.
* Broker loss: the broker connections of every node are killed again and again for a
  few seconds (``pg_terminate_backend`` / ``CLIENT KILL``). One node only schedules
  and two only run jobs, so the workers learn about new jobs from the broker, or by
  polling while it is away: nothing may be lost or run twice, no fire may wait much
  longer than the poll interval, and every broker must reconnect.
* Roles: one scheduler-only and two worker-only nodes on a store without a shared
  broker (they find the work by polling); only workers run jobs.

Workloads are small (150-200 schedules over 8-10 seconds) so that lateness measures the
mechanisms under test (lease expiry, polling), not an overloaded machine.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import asyncpg  # type: ignore[import-untyped]
import pytest
from _multinode_harness import (
    POSTGRES_DSN,
    REDIS_URL,
    Backend,
    Cluster,
    Plan,
    Tally,
    backend,
    expected_runs,
    first_fire_time,
    mongodb_uri,
    poll_until,
    read_lines,
    seed,
    spread_plans,
    wait_for_runs,
)
from _multinode_jobs import hold, record
from redis.asyncio import Redis

from horae._clock import SystemClock
from horae.triggers import DateTrigger

__all__ = ["backend", "mongodb_uri"]  # fixtures, imported for this module's tests

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LEASE = 2.0
#: Scheduling and process noise allowed on top of what a mechanism promises (seconds).
MARGIN = 3.0


def released(cluster: Cluster, identity: str) -> list[dict[str, Any]]:
    return cluster.events(identity, "released")


# ---- failover --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgres+postgres", marks=pytest.mark.postgres),
        pytest.param("redis+redis", marks=pytest.mark.redis),
        pytest.param("sqlite", id="sqlite+local"),
    ],
    indirect=True,
)
async def test_a_killed_node_is_taken_over(backend: Backend, tmp_path: Path) -> None:
    """kill -9 of the node running a long job: the job ends abandoned, reported once,
    within the lease plus a margin; every other fire runs exactly once, none later than
    the lease plus a margin."""
    count = 150
    start = first_fire_time(backend, count + 1)
    plans = spread_plans(record, count, start, timedelta(seconds=8))
    plans.append(Plan("long", hold, DateTrigger(start + timedelta(seconds=1)), {"seconds": 60.0}))
    expected = expected_runs(plans)
    with Cluster(backend, tmp_path, lease_seconds=LEASE) as cluster:
        await seed(backend, plans)
        for number in range(3):
            cluster.start(f"node-{number}")
        await cluster.wait_ready()

        def long_job_started() -> bool:
            return any(line["schedule"] == "long" for line in cluster.job_lines())

        assert await poll_until(long_job_started, seconds=30), cluster.describe()
        (long_run,) = [line for line in cluster.job_lines() if line["schedule"] == "long"]
        victim = long_run["node"]
        killed_at = cluster.kill(victim)
        survivors = [identity for identity in cluster.nodes if identity != victim]

        def abandoned_runs() -> set[tuple[str, str]]:
            return {
                (line["schedule"], line["fire"])
                for identity in survivors
                for line in released(cluster, identity)
                if line["outcome"] == "abandoned"
            }

        def settled() -> bool:
            done = set(Tally.of(cluster.job_lines()).runs) | abandoned_runs()
            return expected <= done and ("long", long_run["fire"]) in abandoned_runs()

        await poll_until(settled, seconds=60, interval=0.25)
        await anyio.sleep(LEASE + 1)  # a duplicate from a late takeover would show now
        await cluster.stop()

        tally = Tally.of(cluster.job_lines())
        print(f"{backend.name}, {victim} killed: {tally.summary()}")
        assert not tally.duplicates(), tally.duplicates()
        abandoned = abandoned_runs()
        assert not expected - set(tally.runs) - abandoned, "fires neither run nor reported"
        # Only the dead node's jobs may end abandoned (its long one, and any it had
        # acquired but not yet started).
        holders = {
            line["holder"]
            for identity in survivors
            for line in released(cluster, identity)
            if line["outcome"] == "abandoned"
        }
        assert holders == {victim}

        reports = {
            identity: [
                line for line in released(cluster, identity) if line["job"] == long_run["job"]
            ]
            for identity in survivors
        }
        assert all(line["outcome"] == "abandoned" for lines in reports.values() for line in lines)
        counts = sorted(len(lines) for lines in reports.values())
        # Exactly once: with a shared broker every survivor hears of it once; with the
        # local broker only the node that ended it does.
        assert counts == ([1, 1] if backend.shared_broker else [0, 1]), reports
        first_report = min(line["t"] for lines in reports.values() for line in lines)
        assert first_report - killed_at <= LEASE + MARGIN, first_report - killed_at

        late = max(max(tally.lateness_by_node.get(identity, [0.0])) for identity in survivors)
        assert late <= LEASE + MARGIN, tally.summary()


# ---- broker loss -----------------------------------------------------------------------


async def _kill_postgres_listeners(backend: Backend) -> int:
    """Terminate the listening connections of this test's brokers; return how many."""
    conn = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            f"{backend.namespace} listener",
        )
    finally:
        await conn.close()
    return sum(1 for row in rows if row[0])


async def _kill_redis_broker_clients(backend: Backend) -> int:
    """``CLIENT KILL`` every connection of this test's brokers; return how many."""
    client = Redis.from_url(REDIS_URL)
    try:
        name = f"horae-broker:{backend.broker['channel']}"
        clients = await client.client_list()
        killed = 0
        for info in clients:
            if info.get("name") == name:
                killed += int(await client.client_kill_filter(_id=info["id"]))
        return killed
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgres+postgres", marks=pytest.mark.postgres),
        pytest.param("redis+redis", marks=pytest.mark.redis),
    ],
    indirect=True,
)
async def test_scheduling_goes_on_while_the_broker_is_away(
    backend: Backend, tmp_path: Path
) -> None:
    """The broker connections are killed every 0.3 s for 5 s while one scheduler node
    and two worker nodes run: every fire runs once, none waits much longer than the
    poll interval (half a lease), and every node's broker reconnects."""
    count = 150
    start = first_fire_time(backend, count)
    plans = spread_plans(record, count, start, timedelta(seconds=10))
    expected = expected_runs(plans)
    kill = (
        _kill_postgres_listeners
        if backend.broker_kind == "postgres"
        else _kill_redis_broker_clients
    )
    with Cluster(backend, tmp_path, lease_seconds=LEASE) as cluster:
        await seed(backend, plans)
        cluster.start("scheduler", role="scheduler")
        cluster.start("worker-1", role="worker")
        cluster.start("worker-2", role="worker")
        await cluster.wait_ready()
        await anyio.sleep(max(0.0, (start - SystemClock().now()).total_seconds() + 2))
        killed = 0
        with anyio.move_on_after(5):
            while True:
                killed += await kill(backend)
                await anyio.sleep(0.3)

        def reconnected() -> bool:
            return all(_connected(cluster, identity) for identity in cluster.nodes)

        assert await poll_until(reconnected, seconds=20), cluster.describe()
        await wait_for_runs(cluster, expected, seconds=60)
        await anyio.sleep(LEASE + 1)
        await cluster.stop()

        tally = Tally.of(cluster.job_lines())
        print(f"{backend.name}: {killed} broker connections killed; {tally.summary()}")
        assert killed >= 3, "the test killed no broker connection"
        for identity in cluster.nodes:
            states = [line["connected"] for line in cluster.events(identity, "broker")]
            assert False in states, f"{identity} never noticed that its broker was gone"
        assert not tally.duplicates(), tally.duplicates()
        assert not tally.missing(expected), sorted(tally.missing(expected))[:10]
        assert tally.by_node["scheduler"] == 0
        assert tally.by_node["worker-1"] > 0
        assert tally.by_node["worker-2"] > 0
        assert max(tally.lateness) <= LEASE / 2 + MARGIN, tally.summary()


def _connected(cluster: Cluster, identity: str) -> bool:
    """The node's broker state as it last logged it (``ready`` logs the first)."""
    state = None
    for line in read_lines(cluster.nodes[identity].events):
        if line["kind"] in ("ready", "broker"):
            state = line["connected"]
    return bool(state)


# ---- roles -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend",
    [pytest.param("sqlite", id="sqlite+local")],
    indirect=True,
)
async def test_scheduler_and_worker_nodes_share_the_work(backend: Backend, tmp_path: Path) -> None:
    """One scheduler-only node makes the jobs, two worker-only nodes run them; with
    the local broker the workers find new jobs only by polling (every half lease)."""
    count = 200
    plans = spread_plans(record, count, first_fire_time(backend, count), timedelta(seconds=8))
    expected = expected_runs(plans)
    with Cluster(backend, tmp_path, lease_seconds=LEASE) as cluster:
        await seed(backend, plans)
        cluster.start("scheduler", role="scheduler")
        cluster.start("worker-1", role="worker")
        cluster.start("worker-2", role="worker")
        await cluster.wait_ready()
        await wait_for_runs(cluster, expected, seconds=60)
        await anyio.sleep(LEASE + 1)
        await cluster.stop()
        tally = Tally.of(cluster.job_lines())
        print(f"{backend.name}, split roles: {tally.summary()}")
        assert not tally.duplicates(), tally.duplicates()
        assert not tally.missing(expected), sorted(tally.missing(expected))[:10]
        assert tally.by_node == Counter(
            {"worker-1": tally.by_node["worker-1"], "worker-2": tally.by_node["worker-2"]}
        )
        assert tally.by_node["worker-1"] > 0
        assert tally.by_node["worker-2"] > 0
        assert max(tally.lateness) <= LEASE / 2 + MARGIN, tally.summary()
