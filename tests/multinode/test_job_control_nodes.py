"""Job control across processes (issue 8), on PostgreSQL and Redis with their brokers.

* Cancel: two nodes run long jobs that have a retry policy; the test process cancels
  them with ``cancel_job``. One node renews no lease while the test runs, so its job
  can only be cancelled by the ``JobCancellationRequested`` event that reaches it
  through the shared broker; the other job is cancelled through a scheduler whose
  broker is local, so the event never leaves the test process and its node must find
  the flag when it renews its leases. Both jobs must end ``cancelled`` on their node,
  once, and never be retried.
* Overlap: a schedule with ``overlap=skip`` fires every second and its jobs run longer
  than that. One node only schedules and two only run jobs, so every skip decision is
  made while the running job is on another node. The jobs' side files must show one
  job at a time, and every fire time must either run once or be reported skipped
  (``ScheduleFireSkipped``), never both.
* Declared schedules: three processes call ``sync_schedules`` with the same list at the
  same moment (a file barrier); then, at the same moment again, with a changed list.
  One copy of each schedule, each added by exactly one process, nothing updated the
  first time; the second time exactly the changed ones are updated, keeping their next
  fire time where the trigger is the same.

The assertions are about outcomes and orderings only; waits have generous deadlines.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from _job_control_node import (
    CHANGED,
    DRIFTING_CHANGED,
    KWARGS_CHANGED,
    POLICY_CHANGED,
    SAME_TRIGGER,
    TRIGGER_CHANGED,
    TRIGGER_DATES,
    declared,
)
from _multinode_harness import (
    HERE,
    Backend,
    Cluster,
    backend,
    mongodb_uri,
    poll_until,
    utc_key,
    whole_milliseconds,
)
from _multinode_jobs import hold
from _multinode_node import make_broker, make_store

from horae import (
    AsyncScheduler,
    CoalescePolicy,
    JobOutcome,
    OverlapPolicy,
    RetryPolicy,
)
from horae._clock import SystemClock
from horae.eventbrokers.local import LocalEventBroker
from horae.triggers import DateTrigger, IntervalTrigger

__all__ = ["backend", "mongodb_uri"]  # fixtures, imported for this module's tests

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

BACKENDS = [
    pytest.param("postgres+postgres", marks=pytest.mark.postgres),
    pytest.param("redis+redis", marks=pytest.mark.redis),
]
LEASE = 2.0
SYNC_SCRIPT = HERE / "_job_control_node.py"
#: The deadline of every wait for something that should take a second or two.
PATIENCE = 45.0


@contextlib.asynccontextmanager
async def client(backend: Backend, *, shared_broker: bool = True) -> AsyncIterator[AsyncScheduler]:
    """A scheduler of the test process on the backend's store (entered, never started);
    with ``shared_broker=False`` its events stay in this process."""
    broker = make_broker(backend.broker) if shared_broker else LocalEventBroker()
    async with AsyncScheduler(make_store(backend.store), broker, identity="test") as scheduler:
        yield scheduler


def starts_and_ends(cluster: Cluster, schedule_id: str) -> dict[str, dict[str, Any]]:
    """Job id -> ``{"start": [lines], "end": [lines]}`` of one schedule's jobs."""
    jobs: dict[str, dict[str, Any]] = {}
    for line in cluster.job_lines():
        if line["schedule"] == schedule_id:
            entry = jobs.setdefault(line["job"], {"start": [], "end": []})
            entry[line["kind"]].append(line)
    return jobs


# ---- cancel on another node ----------------------------------------------------------


#: node-a's lease: it renews no lease while the test runs (the first renewal would come
#: a third of it after its job started), so only the event can cancel its job.
NO_RENEWAL_LEASE = 600.0


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_a_job_running_on_another_node_is_cancelled(
    backend: Backend, tmp_path: Path
) -> None:
    """``cancel_job`` from the test process. node-a (one job at a time, no lease
    renewal in the test's time) runs ``by-event``: only the ``JobCancellationRequested``
    event can cancel it. node-b runs ``by-flag``, cancelled through a scheduler whose
    broker is local: only the flag read at a lease renewal can cancel it. Both jobs end
    ``cancelled`` on their node, are not retried, and their results say so."""
    retry = RetryPolicy(max_attempts=3, backoff=timedelta(seconds=0.2), jitter=False)
    ids = ("by-event", "by-flag")
    with Cluster(backend, tmp_path, lease_seconds=LEASE) as cluster:
        cluster.start("node-a", lease_seconds=NO_RENEWAL_LEASE, max_concurrent_jobs=1)
        await cluster.wait_ready()
        async with (
            client(backend) as via_broker,
            client(backend, shared_broker=False) as without_broker,
        ):

            async def run_long_job(schedule_id: str) -> None:
                await via_broker.add_schedule(
                    hold, DateTrigger(SystemClock().now()), id=schedule_id,
                    kwargs={"seconds": 120.0}, retry=retry, job_result_expiration_time=600,
                )  # fmt: skip
                assert await poll_until(
                    lambda: bool(starts_and_ends(cluster, schedule_id)), seconds=PATIENCE
                ), cluster.describe()

            await run_long_job("by-event")  # on node-a, the only worker
            cluster.start("node-b", role="worker")
            await cluster.wait_ready()
            await run_long_job("by-flag")  # on node-b: node-a is full
            runs = {
                schedule_id: next(iter(starts_and_ends(cluster, schedule_id).items()))
                for schedule_id in ids
            }
            job_ids = {schedule_id: job for schedule_id, (job, _) in runs.items()}
            holders = {
                schedule_id: lines["start"][0]["node"] for schedule_id, (_, lines) in runs.items()
            }
            assert holders == {"by-event": "node-a", "by-flag": "node-b"}
            assert await via_broker.cancel_job(job_ids["by-event"]) is True
            assert await without_broker.cancel_job(job_ids["by-flag"]) is True

            def released_by_holder() -> bool:
                return all(
                    any(
                        line["job"] == job_ids[s]
                        for line in cluster.events(holders[s], "released")
                    )
                    for s in ids
                )

            assert await poll_until(released_by_holder, seconds=PATIENCE), cluster.describe()
            # A retry would be pending in the store now (and start 0.2 s after the
            # release); give it the chance to show in the side files too.
            leftover = await via_broker.get_jobs()
            await anyio.sleep(1.0)
            results = {s: await via_broker.get_job_result(job_ids[s], wait=False) for s in ids}
            again = {s: await via_broker.cancel_job(job_ids[s]) for s in ids}
        await cluster.stop()

    assert leftover == [], f"cancelled jobs still in the store: {leftover}"
    outcomes = {s: result.outcome for s, result in results.items()}
    assert outcomes == dict.fromkeys(ids, JobOutcome.cancelled), outcomes
    assert again == dict.fromkeys(ids, False), "a second cancel_job of a finished job"
    for schedule_id in ids:
        lines = starts_and_ends(cluster, schedule_id)
        assert list(lines) == [job_ids[schedule_id]], f"{schedule_id} ran again: {lines}"
        [(job, run)] = lines.items()
        assert len(run["start"]) == 1, f"{schedule_id} was started more than once: {run}"
        assert run["end"] == [], f"{schedule_id} ran to its end: it was not cancelled"
        # Every node hears of the release through the shared broker, once.
        for identity in cluster.nodes:
            reports = [line for line in cluster.events(identity, "released") if line["job"] == job]
            assert [
                (line["outcome"], line["holder"], line["attempt"], line["retry_at"])
                for line in reports
            ] == [("cancelled", holders[schedule_id], 1, None)], (identity, reports)
    # The event reached the holder through the broker; the other request never left
    # the test process, so only the renewal's flag can have cancelled that job.
    requests = {
        identity: {line["job"] for line in cluster.events(identity, "cancel_requested")}
        for identity in cluster.nodes
    }
    assert job_ids["by-event"] in requests[holders["by-event"]], requests
    assert all(job_ids["by-flag"] not in jobs for jobs in requests.values()), requests


# ---- overlap=skip with the running job on another node -------------------------------

#: Fires of the overlap schedule, the seconds between them, and how long each job runs.
FIRES = 7
INTERVAL = 1.0
RUN = 2.2


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_overlap_skip_with_the_running_job_on_another_node(
    backend: Backend, tmp_path: Path
) -> None:
    """``overlap=skip``, jobs longer than the interval, the scheduling node apart from
    the two worker nodes: never two jobs of the schedule at once; each fire time runs
    once or is reported skipped (by a job that had not finished), never both."""
    schedule_id = "skipper"
    with Cluster(backend, tmp_path, lease_seconds=LEASE) as cluster:
        cluster.start("scheduler", role="scheduler")
        cluster.start("worker-1", role="worker")
        cluster.start("worker-2", role="worker")
        await cluster.wait_ready()
        async with client(backend) as scheduler:
            start = whole_milliseconds(SystemClock().now() + timedelta(seconds=0.5))
            end = start + timedelta(seconds=INTERVAL * (FIRES - 1))
            trigger = IntervalTrigger(seconds=INTERVAL, start_time=start, end_time=end)
            fires = [utc_key(start + timedelta(seconds=INTERVAL * n)) for n in range(FIRES)]
            await scheduler.add_schedule(
                hold, trigger, id=schedule_id, kwargs={"seconds": RUN},
                overlap=OverlapPolicy.skip, coalesce=CoalescePolicy.all,
            )  # fmt: skip

            def skipped_fires() -> set[str]:
                return {
                    line["fire"]
                    for identity in cluster.nodes
                    for line in cluster.events(identity, "skipped")
                    if line["schedule"] == schedule_id
                }

            def settled() -> bool:
                jobs = starts_and_ends(cluster, schedule_id).values()
                ran = {line["fire"] for lines in jobs for line in lines["start"]}
                finished = all(lines["end"] for lines in jobs)
                return finished and ran | skipped_fires() >= set(fires)

            assert await poll_until(settled, seconds=PATIENCE, interval=0.1), cluster.describe()
            leftover = await scheduler.get_jobs()
        await cluster.stop()

    jobs = starts_and_ends(cluster, schedule_id)
    summary = {
        job: (lines["start"][0]["fire"], lines["start"][0]["node"]) for job, lines in jobs.items()
    }
    print(f"{backend.name}: jobs {summary}; skipped {sorted(skipped_fires())}")
    assert leftover == [], f"jobs left in the store: {leftover}"
    assert all(len(lines["start"]) == 1 and len(lines["end"]) == 1 for lines in jobs.values()), (
        jobs
    )
    ran = Counter(lines["start"][0]["fire"] for lines in jobs.values())
    assert all(count == 1 for count in ran.values()), f"a fire time ran twice: {ran}"
    skipped = skipped_fires()
    assert skipped, "no fire was skipped, though every job outlasts the interval"
    assert not set(ran) & skipped, f"fire times both run and skipped: {set(ran) & skipped}"
    assert set(ran) | skipped == set(fires), "fire times neither run nor skipped"
    assert {lines["start"][0]["node"] for lines in jobs.values()} <= {"worker-1", "worker-2"}

    # One at a time: each job started after the previous one had ended (the side
    # files' times are CLOCK_MONOTONIC, one clock for every process of the host).
    spans = sorted((lines["start"][0]["t"], lines["end"][0]["t"]) for lines in jobs.values())
    for (_, previous_end), (next_start, _) in itertools.pairwise(spans):
        assert previous_end < next_start, f"two jobs of the schedule ran at once: {spans}"

    # Each skip names why: a job of an earlier fire time that had not finished (one
    # that ran), or an earlier fire time of the same round.
    fire_of = {job: lines["start"][0]["fire"] for job, lines in jobs.items()}
    for identity in cluster.nodes:
        for line in cluster.events(identity, "skipped"):
            reason = line["reason"]
            assert reason.startswith("overlap=skip"), line
            blocking = next((job for job in fire_of if f"job {job} " in reason), None)
            if blocking is not None:
                assert fire_of[blocking] < line["fire"], (line, fire_of[blocking])
            else:
                assert "earlier fire time of the same round" in reason, line


# ---- sync_schedules from three processes ---------------------------------------------


def _results(directory: Path, identities: list[str], version: int) -> list[dict[str, Any]]:
    results = []
    for identity in identities:
        result = json.loads((directory / f"{identity}.result{version}").read_text())
        assert "error" not in result, f"{identity}, version {version}:\n{result['error']}"
        results.append(result)
    return results


async def _sync_round(
    cluster: Cluster, directory: Path, identities: list[str], version: int
) -> list[dict[str, Any]]:
    """Let every process sync *version* at once; return their SyncResults (as dicts)."""

    def present(suffix: str) -> bool:
        for identity in identities:
            node = cluster.nodes[identity]
            if not (directory / f"{identity}.{suffix}").exists():
                if node.process.poll() is not None:
                    raise AssertionError(
                        f"{identity} exited with {node.process.returncode}:\n"
                        f"{cluster.stderr_tail(node)}"
                    )
                return False
        return True

    assert await poll_until(lambda: present(f"ready{version}"), seconds=PATIENCE), (
        cluster.describe()
    )
    (directory / f"go{version}").touch()
    assert await poll_until(lambda: present(f"result{version}"), seconds=PATIENCE), (
        cluster.describe()
    )
    return _results(directory, identities, version)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_sync_schedules_from_three_processes_at_once(
    backend: Backend, tmp_path: Path
) -> None:
    """Three processes sync the same declared list at once, then a changed list at
    once: one copy of each schedule, each added once, nothing updated; then exactly
    the changed schedules updated, keeping their next fire time where the trigger is
    the same, and every other schedule untouched."""
    identities = [f"sync-{number}" for number in range(3)]
    first_ids = {spec.id for spec in declared(1)}
    with Cluster(backend, tmp_path, lease_seconds=LEASE) as cluster:
        for identity in identities:
            cluster.start(identity, script=SYNC_SCRIPT, directory=str(tmp_path), versions=[1, 2])
        async with client(backend, shared_broker=False) as reader:
            first = await _sync_round(cluster, tmp_path, identities, 1)
            before = await reader.get_schedules()
            second = await _sync_round(cluster, tmp_path, identities, 2)
            after = await reader.get_schedules()

        def exited() -> bool:
            return all(node.process.poll() is not None for node in cluster.nodes.values())

        assert await poll_until(exited, seconds=PATIENCE), cluster.describe()
        await cluster.stop()  # checks that each exited cleanly

    print(
        f"{backend.name}: added per process {[len(result['added']) for result in first]}, "
        f"updated per process {[result['updated'] for result in second]}"
    )
    # ---- the first round: every process declares the same list
    assert Counter(schedule.id for schedule in before) == Counter(first_ids), (
        "not exactly one copy of each declared schedule"
    )
    added = Counter(sid for result in first for sid in result["added"])
    assert added == Counter(first_ids), f"not each schedule added exactly once: {added}"
    for identity, result in zip(identities, first, strict=True):
        assert result["updated"] == [], (identity, result)
        assert result["removed"] == [], (identity, result)
        assert sorted(result["added"] + result["unchanged"]) == sorted(first_ids), (
            identity,
            result,
        )

    # ---- the second round: the same ids, four of them changed
    second_ids = {spec.id for spec in declared(2)}
    assert second_ids == first_ids
    assert Counter(schedule.id for schedule in after) == Counter(second_ids)
    updated = {sid for result in second for sid in result["updated"]}
    assert updated == set(CHANGED), f"updated {sorted(updated)}, changed {sorted(CHANGED)}"
    for identity, result in zip(identities, second, strict=True):
        assert result["added"] == [], (identity, result)
        assert result["removed"] == [], (identity, result)
        assert sorted(result["updated"] + result["unchanged"]) == sorted(second_ids), (
            identity,
            result,
        )
        # A process that found another's update already stored may see no change; an
        # unchanged declaration is unchanged for every process.
        assert set(result["updated"]) <= set(CHANGED), (identity, result)

    old = {schedule.id: schedule for schedule in before}
    new = {schedule.id: schedule for schedule in after}
    for sid in second_ids - set(CHANGED):
        assert new[sid] == old[sid], f"{sid} was declared the same but changed"
    for sid in SAME_TRIGGER:
        assert new[sid].next_fire_time == old[sid].next_fire_time, (
            sid,
            old[sid].next_fire_time,
            new[sid].next_fire_time,
        )
        assert new[sid].trigger == old[sid].trigger, sid
    assert new[TRIGGER_CHANGED].next_fire_time == TRIGGER_DATES[2]
    assert new[KWARGS_CHANGED].kwargs == {"version": 2}
    assert new[DRIFTING_CHANGED].kwargs == {"version": 2}
    assert new[POLICY_CHANGED].overlap is OverlapPolicy.skip
    assert new[POLICY_CHANGED].retry == RetryPolicy(max_attempts=2, jitter=False)
