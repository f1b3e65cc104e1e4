"""``DataStoreContract`` tests of jobs: adding, acquiring, running limits, deadlines."""

from __future__ import annotations

from uuid import uuid4

import anyio
import pytest

from horae._contract_datastore_harness import (
    LEASE,
    LEASE_SLACK,
    MINUTE,
    StoreFixtures,
    StoreHarness,
    at,
    contract_test,
    job_ids,
    make_job,
    make_task,
    result_of,
)
from horae._enums import JobOutcome
from horae._exceptions import JobLookupError
from horae._structures import Job
from horae.events import JobAcquired, JobAdded, JobReleased


class JobQueueContractTests(StoreFixtures):
    """add_jobs, get_jobs, acquire_jobs, running limits and start deadlines."""

    @contract_test
    async def test_add_and_get_jobs_in_start_order(self, harness: StoreHarness) -> None:
        store = harness.store
        j3 = make_job(start=3, args=(1, "a"), kwargs={"k": "v"}, metadata={"m": 1})
        j1 = make_job(start=1, result_expiration_time=MINUTE)
        j2 = make_job("other", start=2)
        await store.add_jobs([j3, j1, j2])
        assert await store.get_jobs() == [j1, j2, j3]
        assert await store.get_jobs([j3.id, uuid4(), j1.id]) == [j1, j3]
        added = [(e.job_id, e.task_id, e.schedule_id) for e in harness.events_of(JobAdded)]
        assert sorted(added, key=str) == sorted(
            [(j3.id, "task", None), (j1.id, "task", None), (j2.id, "other", None)], key=str
        )

    @contract_test
    async def test_adding_a_stored_job_again_changes_nothing(self, harness: StoreHarness) -> None:
        job = make_job(start=1)
        await harness.store.add_jobs([job])
        await harness.store.add_jobs([job, job])
        assert await harness.store.get_jobs() == [job]
        assert len(harness.events_of(JobAdded)) == 1

    @pytest.mark.parametrize("limit", [1, 2, 3, 10])
    @contract_test
    async def test_acquire_jobs_earliest_first_up_to_limit(
        self, harness: StoreHarness, limit: int
    ) -> None:
        store = harness.store
        jobs = [make_job(start=start) for start in (3, 1, 10, 2, 11)]
        await store.add_jobs(jobs)
        acquired = await store.acquire_jobs("w1", at(10), LEASE, limit)
        expected = sorted(jobs[:4], key=lambda job: job.start_time)[:limit]
        assert job_ids(acquired) == job_ids(expected)
        for job in acquired:
            assert (job.acquired_by, job.acquired_until, job.started_at) == (
                "w1",
                at(10) + LEASE,
                at(10),
            )
        running = {job.id: job for job in await store.get_jobs() if job.acquired_by}
        assert running == {job.id: job for job in acquired}
        events = {
            (
                e.job_id,
                e.scheduler_id,
                e.task_id,
                e.schedule_id,
                e.scheduled_fire_time,
                e.timestamp,
            )
            for e in harness.events_of(JobAcquired)
        }
        assert events == {(job.id, "w1", "task", None, None, at(10)) for job in acquired}

    @contract_test
    async def test_running_jobs_are_not_handed_out_again(self, harness: StoreHarness) -> None:
        first, second = await harness.nodes()
        jobs = [make_job(start=start) for start in (1, 2, 3)]
        await first.add_jobs(jobs)
        got_first = await first.acquire_jobs("w1", at(5), LEASE, 2)
        got_second = await second.acquire_jobs("w2", at(5), LEASE, 10)
        again = await first.acquire_jobs("w1", at(5), LEASE, 10)
        assert job_ids(got_first + got_second) == job_ids(jobs)
        assert again == []

    @contract_test
    async def test_concurrent_acquires_hand_each_job_out_once(self, harness: StoreHarness) -> None:
        first, second = await harness.nodes()
        jobs = [make_job(start=number % 5) for number in range(40)]
        await first.add_jobs(jobs)
        acquired: list[Job] = []

        async def acquire(number: int) -> None:
            store = first if number % 2 else second
            acquired.extend(await store.acquire_jobs(f"w{number}", at(10), LEASE, 3))

        async with anyio.create_task_group() as group:
            for number in range(20):
                group.start_soon(acquire, number)
        assert sorted(job_ids(acquired), key=str) == sorted(job_ids(jobs), key=str)

    @pytest.mark.parametrize(("start", "acquired"), [(10, True), (11, False)])
    @contract_test
    async def test_jobs_start_no_earlier_than_start_time(
        self, harness: StoreHarness, start: float, acquired: bool
    ) -> None:
        job = make_job(start=start)
        await harness.store.add_jobs([job])
        got = await harness.store.acquire_jobs("w1", at(10), LEASE, 10)
        assert job_ids(got) == ([job.id] if acquired else [])

    @contract_test
    async def test_task_limit_holds_across_nodes(self, harness: StoreHarness) -> None:
        first, second = await harness.nodes()
        await first.add_task(make_task("limited", max_running_jobs=2))
        jobs = [make_job("limited", start=number) for number in range(5)]
        await first.add_jobs(jobs)
        got = await first.acquire_jobs("w1", at(10), LEASE, 10)
        assert job_ids(got) == job_ids(jobs[:2])
        assert await second.acquire_jobs("w2", at(10), LEASE, 10) == []
        assert await first.release_job("w1", result_of(got[0], finished=11)) is True
        assert job_ids(await second.acquire_jobs("w2", at(12), LEASE, 10)) == [jobs[2].id]
        assert await second.acquire_jobs("w2", at(12), LEASE, 10) == []

    @contract_test
    async def test_task_limit_holds_under_concurrent_acquires(self, harness: StoreHarness) -> None:
        first, second = await harness.nodes()
        await first.add_task(make_task("limited", max_running_jobs=3))
        await first.add_jobs([make_job("limited", start=0) for _ in range(10)])
        acquired: list[Job] = []

        async def acquire(number: int) -> None:
            store = first if number % 2 else second
            acquired.extend(await store.acquire_jobs(f"w{number}", at(1), LEASE, 1))

        async with anyio.create_task_group() as group:
            for number in range(10):
                group.start_soon(acquire, number)
        assert len(acquired) == 3

    @contract_test
    async def test_schedule_level_limit(self, harness: StoreHarness) -> None:
        store = harness.store
        s1_jobs = [
            make_job(
                start=number, schedule_id="s1", scheduled_fire_time=at(number), max_running_jobs=1
            )
            for number in range(3)
        ]
        s2_job = make_job(start=5, schedule_id="s2", scheduled_fire_time=at(5), max_running_jobs=1)
        await store.add_jobs([*s1_jobs, s2_job])
        got = await store.acquire_jobs("w1", at(10), LEASE, 10)
        assert job_ids(got) == [s1_jobs[0].id, s2_job.id]
        assert await store.release_job("w1", result_of(got[0], finished=11)) is True
        assert job_ids(await store.acquire_jobs("w2", at(12), LEASE, 10)) == [s1_jobs[1].id]

    @contract_test
    async def test_blocked_task_does_not_stall_other_tasks(self, harness: StoreHarness) -> None:
        store = harness.store
        await store.add_task(make_task("a", max_running_jobs=1))
        a_jobs = [make_job("a", start=number) for number in (1, 2, 3)]
        b_jobs = [make_job("b", start=number) for number in (4, 5)]
        await store.add_jobs([*a_jobs, *b_jobs])
        assert job_ids(await store.acquire_jobs("w1", at(10), LEASE, 1)) == [a_jobs[0].id]
        # the limit is not used up by the blocked jobs: they are skipped
        assert job_ids(await store.acquire_jobs("w1", at(10), LEASE, 1)) == [b_jobs[0].id]
        assert job_ids(await store.acquire_jobs("w1", at(10), LEASE, 10)) == [b_jobs[1].id]
        assert await store.acquire_jobs("w1", at(10), LEASE, 10) == []
        # blocked jobs do not make the next job time "now" (a worker would spin)
        next_time = await store.get_next_job_time()
        assert next_time is not None
        assert at(10) + LEASE < next_time <= at(10) + LEASE + LEASE_SLACK
        running = await store.get_jobs([a_jobs[0].id])
        assert await store.release_job("w1", result_of(running[0], finished=11)) is True
        assert job_ids(await store.acquire_jobs("w1", at(11), LEASE, 10)) == [a_jobs[1].id]

    @contract_test
    async def test_raising_a_task_limit_frees_its_waiting_jobs(
        self, harness: StoreHarness
    ) -> None:
        store = harness.store
        await store.add_task(make_task("a", max_running_jobs=1))
        jobs = [make_job("a", start=number) for number in (1, 2, 3)]
        await store.add_jobs(jobs)
        assert len(await store.acquire_jobs("w1", at(10), LEASE, 10)) == 1
        await store.add_task(make_task("a", max_running_jobs=3))
        assert job_ids(await store.acquire_jobs("w1", at(10), LEASE, 10)) == job_ids(jobs[1:])

    @pytest.mark.parametrize(("now", "acquired"), [(5, True), (6, False)])
    @contract_test
    async def test_start_deadline(self, harness: StoreHarness, now: float, acquired: bool) -> None:
        store = harness.store
        job = make_job(
            start=0,
            start_deadline=at(5),
            schedule_id="s1",
            scheduled_fire_time=at(0),
            result_expiration_time=MINUTE,
        )
        await store.add_jobs([job])
        got = await store.acquire_jobs("w1", at(now), LEASE, 10)
        assert job_ids(got) == ([job.id] if acquired else [])
        if acquired:
            assert await store.get_job_result(job.id) is None
            return
        assert await store.get_jobs() == []
        result = await store.get_job_result(job.id)
        assert result is not None
        assert (result.outcome, result.started_at, result.finished_at, result.expires_at) == (
            JobOutcome.missed_start_deadline,
            None,
            at(now),
            at(now) + MINUTE,
        )
        [event] = harness.events_of(JobReleased)
        assert (event.job_id, event.scheduler_id, event.task_id, event.schedule_id) == (
            job.id,
            None,
            "task",
            "s1",
        )
        assert (event.outcome, event.scheduled_fire_time, event.started_at, event.finished_at) == (
            JobOutcome.missed_start_deadline,
            at(0),
            None,
            at(now),
        )

    @contract_test
    async def test_deadline_passes_while_blocked_by_a_limit(self, harness: StoreHarness) -> None:
        first, second = await harness.nodes()
        await first.add_task(make_task("a", max_running_jobs=1))
        running = make_job("a", start=0)
        waiting = make_job("a", start=1, start_deadline=at(5))
        await first.add_jobs([running, waiting])
        assert job_ids(await first.acquire_jobs("w1", at(1), LEASE, 10)) == [running.id]
        next_time = await first.get_next_job_time()
        assert next_time is not None
        assert at(5) < next_time <= at(5) + LEASE_SLACK
        assert await second.acquire_jobs("w2", next_time, LEASE, 10) == []
        [event] = harness.events_of(JobReleased)
        assert (event.job_id, event.outcome) == (waiting.id, JobOutcome.missed_start_deadline)
        assert job_ids(await first.get_jobs()) == [running.id]
        with pytest.raises(JobLookupError):
            await first.get_job_result(waiting.id)  # no result kept: expiration time 0

    @contract_test
    async def test_next_job_time(self, harness: StoreHarness) -> None:
        store = harness.store
        assert await store.get_next_job_time() is None
        j5, j3 = make_job(start=5), make_job(start=3)
        await store.add_jobs([j5, j3])
        assert await store.get_next_job_time() == at(3)
        assert job_ids(await store.acquire_jobs("w1", at(3), LEASE, 1)) == [j3.id]
        assert await store.get_next_job_time() == at(5)
        assert job_ids(await store.acquire_jobs("w1", at(5), LEASE, 1)) == [j5.id]
        next_time = await store.get_next_job_time()
        assert next_time is not None
        assert at(3) + LEASE < next_time <= at(3) + LEASE + LEASE_SLACK
