"""``DataStoreContract`` tests of running jobs and results: leases, abandoned jobs,
release, results, cleanup, and persistence across restarts."""

from __future__ import annotations

import re
from datetime import timedelta
from uuid import uuid4

import anyio
import pytest

from horae._contract_datastore_harness import (
    LEASE,
    MINUTE,
    StoreFixtures,
    StoreHarness,
    advance,
    at,
    contract_test,
    fire_job,
    job_ids,
    make_job,
    make_task,
    result_of,
)
from horae._enums import ConflictPolicy, JobOutcome
from horae._exceptions import JobLookupError
from horae.datastores._base import ScheduleUpdate
from horae.events import JobReleased


class JobLeaseContractTests(StoreFixtures):
    """extend_job_leases, abandoned jobs and release_job."""

    @contract_test
    async def test_lapsed_job_lease_ends_as_abandoned_exactly_once(
        self, harness: StoreHarness
    ) -> None:
        first, second = await harness.nodes()
        job = make_job(start=0, result_expiration_time=MINUTE)
        await first.add_jobs([job])
        await first.acquire_jobs("dead", at(0), LEASE, 1)
        # still live through acquired_until itself
        assert await second.acquire_jobs("w2", at(0) + LEASE, LEASE, 10) == []
        assert harness.events_of(JobReleased) == []
        reap_time = at(1) + LEASE

        async def reap(number: int) -> None:
            store = first if number % 2 else second
            assert await store.acquire_jobs(f"w{number}", reap_time, LEASE, 10) == []

        async with anyio.create_task_group() as group:
            for number in range(10):
                group.start_soon(reap, number)
        [event] = harness.events_of(JobReleased)
        assert (event.job_id, event.scheduler_id, event.outcome) == (
            job.id,
            "dead",
            JobOutcome.abandoned,
        )
        assert (event.started_at, event.finished_at) == (at(0), reap_time)
        result = await first.get_job_result(job.id)
        assert result is not None
        assert (result.outcome, result.started_at, result.finished_at, result.expires_at) == (
            JobOutcome.abandoned,
            at(0),
            reap_time,
            reap_time + MINUTE,
        )
        assert await first.get_jobs() == []
        # the dead node, back from the dead, can neither renew nor release it
        assert await first.extend_job_leases("dead", [job.id], reap_time, LEASE) == set()
        assert await first.release_job("dead", result_of(job, finished=40)) is False
        assert await first.get_job_result(job.id) == result

    @contract_test
    async def test_abandoned_job_frees_its_task_slot(self, harness: StoreHarness) -> None:
        store = harness.store
        await store.add_task(make_task("a", max_running_jobs=1))
        jobs = [make_job("a", start=0), make_job("a", start=1)]
        await store.add_jobs(jobs)
        assert job_ids(await store.acquire_jobs("dead", at(1), LEASE, 10)) == [jobs[0].id]
        got = await store.acquire_jobs("w2", at(2) + LEASE, LEASE, 10)
        assert job_ids(got) == [jobs[1].id]

    @contract_test
    async def test_extend_job_leases_returns_the_ids_still_held(
        self, harness: StoreHarness
    ) -> None:
        store = harness.store
        mine, theirs = make_job(start=0), make_job(start=0)
        await store.add_jobs([mine, theirs])
        await store.acquire_jobs("w1", at(0), LEASE, 1)
        await store.acquire_jobs("w2", at(0), LEASE, 1)
        held = await store.extend_job_leases("w1", [mine.id, theirs.id, uuid4()], at(20), LEASE)
        assert held == {mine.id}
        jobs = {job.id: job for job in await store.get_jobs()}
        assert jobs[mine.id].acquired_until == at(20) + LEASE
        assert jobs[theirs.id].acquired_until == at(0) + LEASE
        # at(40): w2's lease lapsed, w1's renewed one did not
        await store.acquire_jobs("w3", at(40), LEASE, 10)
        assert job_ids(await store.get_jobs()) == [mine.id]
        [event] = harness.events_of(JobReleased)
        assert (event.job_id, event.outcome) == (theirs.id, JobOutcome.abandoned)

    @contract_test
    async def test_release_job_is_fenced_by_the_lease(self, harness: StoreHarness) -> None:
        store = harness.store
        job = make_job(start=0, result_expiration_time=MINUTE)
        await store.add_jobs([job])
        assert await store.release_job("w1", result_of(job, finished=1)) is False  # pending
        [running] = await store.acquire_jobs("w1", at(0), LEASE, 1)
        assert await store.release_job("w2", result_of(running, finished=1)) is False
        assert job_ids(await store.get_jobs()) == [job.id]
        assert harness.events_of(JobReleased) == []
        assert await store.release_job("w1", result_of(running, finished=1)) is True
        assert await store.release_job("w1", result_of(running, finished=2)) is False
        assert len(harness.events_of(JobReleased)) == 1

    @contract_test
    async def test_release_job_stores_result_and_publishes_job_released(
        self, harness: StoreHarness
    ) -> None:
        store = harness.store
        await store.add_schedule(harness.schedule("s1", fire=0), ConflictPolicy.exception)
        [schedule] = await store.acquire_schedules("n1", at(0), LEASE, 1)
        update = ScheduleUpdate(
            schedule_id="s1",
            next_fire_time=at(10),
            last_fire_time=at(0),
            jobs=[fire_job(schedule, at(0), result_expiration_time=MINUTE)],
        )
        [job] = await store.release_schedules("n1", [update])
        assert await store.get_job_result(job.id) is None  # pending
        [running] = await store.acquire_jobs("w1", at(1), LEASE, 1)
        assert await store.get_job_result(job.id) is None  # running
        error = ValueError("boom")
        result = result_of(
            running,
            finished=5,
            outcome=JobOutcome.error,
            exception=error,
            exception_type="builtins.ValueError",
            exception_message="boom",
        )
        assert await store.release_job("w1", result) is True
        assert await store.get_jobs() == []
        stored = await store.get_job_result(job.id)
        assert stored is not None
        assert (stored.outcome, stored.started_at, stored.finished_at, stored.expires_at) == (
            JobOutcome.error,
            at(1),
            at(5),
            at(5) + MINUTE,
        )
        assert (stored.schedule_id, stored.scheduled_fire_time) == ("s1", at(0))
        assert (stored.exception_type, stored.exception_message) == ("builtins.ValueError", "boom")
        if store.capabilities.keeps_exception_objects:
            assert isinstance(stored.exception, ValueError)
            assert str(stored.exception) == "boom"
        [event] = harness.events_of(JobReleased)
        assert (event.job_id, event.scheduler_id, event.task_id, event.schedule_id) == (
            job.id,
            "w1",
            "task",
            "s1",
        )
        assert (event.outcome, event.scheduled_fire_time, event.started_at, event.finished_at) == (
            JobOutcome.error,
            at(0),
            at(1),
            at(5),
        )
        assert (event.exception_type, event.exception_message) == ("builtins.ValueError", "boom")

    @pytest.mark.parametrize(("expiration", "kept"), [(MINUTE, True), (MINUTE * 0, False)])
    @contract_test
    async def test_result_kept_only_with_an_expiration_time(
        self, harness: StoreHarness, expiration: timedelta, kept: bool
    ) -> None:
        store = harness.store
        job = make_job(start=0, result_expiration_time=expiration)
        await store.add_jobs([job])
        [running] = await store.acquire_jobs("w1", at(0), LEASE, 1)
        result = result_of(running, finished=1, return_value=42)
        assert await store.release_job("w1", result) is True
        if kept:
            stored = await store.get_job_result(job.id)
            assert stored is not None
            assert (stored.outcome, stored.return_value) == (JobOutcome.success, 42)
        else:
            message = re.escape(f"no job with the id {job.id!r} was found")
            with pytest.raises(JobLookupError, match=message):
                await store.get_job_result(job.id)

    @contract_test
    async def test_unknown_job_result_raises(self, harness: StoreHarness) -> None:
        with pytest.raises(JobLookupError):
            await harness.store.get_job_result(uuid4())

    @contract_test
    async def test_cleanup_removes_expired_results(self, harness: StoreHarness) -> None:
        store = harness.store
        short = make_job(start=0, result_expiration_time=MINUTE)
        long = make_job(start=0, result_expiration_time=MINUTE * 10)
        await store.add_jobs([short, long])
        for running in await store.acquire_jobs("w1", at(0), LEASE, 2):
            assert await store.release_job("w1", result_of(running, finished=0)) is True
        await store.cleanup(at(0) + MINUTE - MINUTE / 60)
        assert await store.get_job_result(short.id) is not None
        await store.cleanup(at(0) + MINUTE)
        with pytest.raises(JobLookupError):
            await store.get_job_result(short.id)
        assert await store.get_job_result(long.id) is not None
        await store.cleanup(at(0) + MINUTE * 10)
        with pytest.raises(JobLookupError):
            await store.get_job_result(long.id)


class PersistenceContractTests(StoreFixtures):
    """Data that survives a restart (stores that declare ``persistent``)."""

    @contract_test
    async def test_everything_survives_a_restart(self, harness: StoreHarness) -> None:
        if not harness.store.capabilities.persistent:
            pytest.skip("the store does not declare capabilities.persistent")
        store = harness.store
        task = make_task("t", max_running_jobs=2)
        await store.add_task(task)
        schedule = harness.schedule("s1", fire=0, args=(1,), kwargs={"a": "b"})
        await store.add_schedule(schedule, ConflictPolicy.exception)
        await store.add_schedule(harness.schedule("s2", fire=50), ConflictPolicy.exception)
        await store.acquire_schedules("n1", at(0), LEASE, 1)
        pending = make_job("t", start=100)
        finished = make_job("t", start=0, result_expiration_time=MINUTE)
        await store.add_jobs([pending, finished])
        [running] = await store.acquire_jobs("w1", at(0), LEASE, 1)
        assert await store.release_job("w1", result_of(running, finished=1)) is True
        restarted = await harness.restart()
        assert await restarted.get_tasks() == [task]
        assert [s.id for s in await restarted.get_schedules()] == ["s1", "s2"]
        assert job_ids(await restarted.get_jobs()) == [pending.id]
        result = await restarted.get_job_result(finished.id)
        assert result is not None
        assert result.outcome is JobOutcome.success
        # the lease taken before the restart still holds
        assert await restarted.acquire_schedules("n2", at(1), LEASE, 10) == []
        released = await restarted.release_schedules(
            "n1", [advance(schedule, at(0), next_fire_time=at(10))]
        )
        assert len(released) == 1
