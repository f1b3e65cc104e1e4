"""``DataStoreContract`` tests of job control: retried attempts, cancellation, and the
jobs of a schedule (what overlap policies read)."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import anyio
import pytest

from horae._contract_datastore_harness import (
    LEASE,
    MINUTE,
    StoreFixtures,
    StoreHarness,
    at,
    contract_test,
    job_ids,
    make_job,
    result_of,
)
from horae._enums import JobOutcome
from horae._structures import RetryPolicy
from horae.events import JobCancellationRequested, JobReleased

#: A policy without jitter, so that the stores' own retry times can be asserted.
RETRY_TWICE = RetryPolicy(max_attempts=2, backoff=timedelta(seconds=10), jitter=False)


class JobControlContractTests(StoreFixtures):
    """release_job(retry_at=...), retried abandoned jobs, cancel_job, get_schedule_jobs."""

    # ---- retries --------------------------------------------------------------------

    @contract_test
    async def test_release_with_retry_at_makes_the_next_attempt(
        self, harness: StoreHarness
    ) -> None:
        first, second = await harness.nodes()
        job = make_job(
            start=0, start_deadline=at(10), result_expiration_time=MINUTE, schedule_id="s1"
        )
        await first.add_jobs([job])
        [running] = await first.acquire_jobs("w1", at(1), LEASE, 10)
        failed = result_of(running, 2, JobOutcome.error, exception_type="ValueError")
        assert await first.release_job("w1", failed, retry_at=at(5))
        [pending] = await second.get_jobs()
        assert (pending.id, pending.attempt, pending.start_time, pending.start_deadline) == (
            job.id,
            2,
            at(5),
            at(15),
        )
        assert (pending.acquired_by, pending.acquired_until, pending.started_at) == (
            None,
            None,
            None,
        )
        assert (pending.args, pending.schedule_id, pending.created_at) == (
            (),
            "s1",
            job.created_at,
        )
        assert await second.get_job_result(job.id) is None  # not finished yet
        [event] = harness.events_of(JobReleased)
        assert (event.outcome, event.attempt, event.retry_at, event.scheduler_id) == (
            JobOutcome.error,
            1,
            at(5),
            "w1",
        )
        assert await second.get_next_job_time() == at(5)
        assert await second.acquire_jobs("w2", at(4), LEASE, 10) == []
        [second_attempt] = await second.acquire_jobs("w2", at(5), LEASE, 10)
        assert (second_attempt.id, second_attempt.attempt, second_attempt.started_at) == (
            job.id,
            2,
            at(5),
        )
        assert await second.release_job("w2", result_of(second_attempt, 6))
        result = await first.get_job_result(job.id)
        assert result is not None
        assert (result.outcome, result.attempt) == (JobOutcome.success, 2)
        last = harness.events_of(JobReleased)[-1]
        assert (last.attempt, last.retry_at) == (2, None)

    @contract_test
    async def test_release_with_retry_at_is_fenced(self, harness: StoreHarness) -> None:
        first, second = await harness.nodes()
        job = make_job(start=0)
        await first.add_jobs([job])
        [running] = await first.acquire_jobs("w1", at(0), LEASE, 10)
        assert await second.acquire_jobs("w2", at(1) + LEASE, LEASE, 10) == []  # abandoned
        failed = result_of(running, 2, JobOutcome.error)
        assert not await first.release_job("w1", failed, retry_at=at(5))
        assert await second.get_jobs() == []

    @contract_test
    async def test_abandoned_job_is_retried_by_its_policy(self, harness: StoreHarness) -> None:
        first, second = await harness.nodes()
        job = make_job(start=0, retry=RETRY_TWICE, result_expiration_time=MINUTE)
        await first.add_jobs([job])
        await first.acquire_jobs("dead", at(0), LEASE, 10)
        reap_time = at(1) + LEASE
        assert await second.acquire_jobs("w2", reap_time, LEASE, 10) == []
        [event] = harness.events_of(JobReleased)
        retry_at = reap_time + timedelta(seconds=10)
        assert (event.outcome, event.scheduler_id, event.attempt, event.retry_at) == (
            JobOutcome.abandoned,
            "dead",
            1,
            retry_at,
        )
        [pending] = await first.get_jobs()
        assert (pending.attempt, pending.start_time, pending.acquired_by) == (2, retry_at, None)
        assert await first.get_job_result(job.id) is None
        [again] = await first.acquire_jobs("dead-too", retry_at, LEASE, 10)
        assert again.attempt == 2
        # the last attempt is abandoned for good
        assert (
            await second.acquire_jobs("w2", retry_at + LEASE + timedelta(seconds=1), LEASE, 1)
            == []
        )
        result = await second.get_job_result(job.id)
        assert result is not None
        assert (result.outcome, result.attempt) == (JobOutcome.abandoned, 2)
        assert harness.events_of(JobReleased)[-1].retry_at is None

    # ---- cancellation ---------------------------------------------------------------

    @contract_test
    async def test_cancel_a_pending_job(self, harness: StoreHarness) -> None:
        first, second = await harness.nodes()
        job = make_job(start=5, schedule_id="s1", result_expiration_time=MINUTE)
        other = make_job(start=6)
        await first.add_jobs([job, other])
        cancelled = await second.cancel_job(job.id, at(1))
        assert cancelled is not None
        assert (cancelled.id, cancelled.acquired_by) == (job.id, None)
        assert job_ids(await first.get_jobs()) == [other.id]
        result = await first.get_job_result(job.id)
        assert result is not None
        assert (result.outcome, result.started_at, result.finished_at, result.schedule_id) == (
            JobOutcome.cancelled,
            None,
            at(1),
            "s1",
        )
        [event] = harness.events_of(JobReleased)
        assert (event.job_id, event.outcome, event.scheduler_id) == (
            job.id,
            JobOutcome.cancelled,
            None,
        )
        assert await first.cancel_job(job.id, at(2)) is None  # finished: nothing to cancel
        assert len(harness.events_of(JobReleased)) == 1
        assert job_ids(await first.acquire_jobs("w1", at(10), LEASE, 10)) == [other.id]

    @contract_test
    async def test_cancel_an_unknown_job(self, harness: StoreHarness) -> None:
        assert await harness.store.cancel_job(uuid4(), at(0)) is None
        assert harness.events_of(JobReleased) == []

    @contract_test
    async def test_cancel_a_running_job_asks_its_holder(self, harness: StoreHarness) -> None:
        first, second = await harness.nodes()
        job = make_job(start=0, retry=RETRY_TWICE, result_expiration_time=MINUTE)
        await first.add_jobs([job])
        [running] = await first.acquire_jobs("w1", at(0), LEASE, 10)
        requested = await second.cancel_job(job.id, at(1))
        assert requested is not None
        assert requested.acquired_by == "w1"
        [event] = harness.events_of(JobCancellationRequested)
        assert (event.job_id, event.scheduler_id, event.task_id, event.schedule_id) == (
            job.id,
            "w1",
            "task",
            None,
        )
        [stored] = await first.get_jobs()
        assert (stored.cancel_requested, stored.acquired_by) == (True, "w1")
        assert harness.events_of(JobReleased) == []
        # asking again repeats the request (a lost event can be made good)
        assert await first.cancel_job(job.id, at(2)) is not None
        assert len(harness.events_of(JobCancellationRequested)) == 2
        # the holder still renews it, and it is never retried
        assert await first.extend_job_leases("w1", [job.id], at(3), LEASE) == {job.id}
        result = result_of(running, 4, JobOutcome.cancelled)
        assert await first.release_job("w1", result, retry_at=at(20))
        assert await second.get_jobs() == []
        stored_result = await second.get_job_result(job.id)
        assert stored_result is not None
        assert stored_result.outcome is JobOutcome.cancelled
        assert harness.events_of(JobReleased)[-1].retry_at is None

    @contract_test
    async def test_cancel_a_job_whose_holder_died(self, harness: StoreHarness) -> None:
        first, second = await harness.nodes()
        job = make_job(start=0, retry=RETRY_TWICE, result_expiration_time=MINUTE)
        await first.add_jobs([job])
        await first.acquire_jobs("dead", at(0), LEASE, 10)
        cancelled = await second.cancel_job(job.id, at(1) + LEASE)
        assert cancelled is not None
        assert await first.get_jobs() == []
        [event] = harness.events_of(JobReleased)
        assert (event.outcome, event.scheduler_id, event.retry_at) == (
            JobOutcome.cancelled,
            "dead",
            None,
        )
        assert harness.events_of(JobCancellationRequested) == []

    @contract_test
    async def test_abandoned_job_whose_cancellation_was_asked_ends_cancelled(
        self, harness: StoreHarness
    ) -> None:
        first, second = await harness.nodes()
        job = make_job(start=0, retry=RETRY_TWICE, result_expiration_time=MINUTE)
        await first.add_jobs([job])
        await first.acquire_jobs("dead", at(0), LEASE, 10)
        assert await second.cancel_job(job.id, at(1)) is not None
        assert await second.acquire_jobs("w2", at(1) + LEASE, LEASE, 10) == []
        assert await first.get_jobs() == []  # not retried
        result = await first.get_job_result(job.id)
        assert result is not None
        assert result.outcome is JobOutcome.cancelled

    @contract_test
    async def test_cancel_races_with_acquire_and_release(self, harness: StoreHarness) -> None:
        """However cancel_job interleaves with acquire_jobs and release_job, the job ends
        exactly once, and a job handed out before the cancel is marked for its holder."""
        first, second = await harness.nodes()
        jobs = [make_job(start=0, result_expiration_time=MINUTE) for _ in range(8)]
        await first.add_jobs(jobs)
        acquired: list[list[object]] = []

        async def acquire() -> None:
            acquired.append(list(await first.acquire_jobs("w1", at(1), LEASE, 8)))

        async def cancel_all() -> None:
            for job in jobs:
                await second.cancel_job(job.id, at(1))

        async with anyio.create_task_group() as group:
            group.start_soon(acquire)
            group.start_soon(cancel_all)
        held = {job.id for job in await first.get_jobs()}
        assert all(job.cancel_requested for job in await first.get_jobs())
        released = {event.job_id for event in harness.events_of(JobReleased)}
        assert held | released == {job.id for job in jobs}
        assert not held & released
        assert len(harness.events_of(JobReleased)) == len(released)

    # ---- jobs of a schedule ---------------------------------------------------------

    @contract_test
    async def test_get_schedule_jobs(self, harness: StoreHarness) -> None:
        first, second = await harness.nodes()
        s1_late = make_job(start=3, schedule_id="s1")
        s1_early = make_job(start=1, schedule_id="s1")
        s2 = make_job(start=2, schedule_id="s2")
        s3 = make_job(start=0, schedule_id="s3")
        adhoc = make_job(start=0)
        await first.add_jobs([s1_late, s1_early, s2, s3, adhoc])
        assert await second.get_schedule_jobs([]) == []
        assert await second.get_schedule_jobs(["none"]) == []
        assert job_ids(await second.get_schedule_jobs(["s1"])) == [s1_early.id, s1_late.id]
        assert job_ids(await second.get_schedule_jobs(["s2", "s1"])) == [
            s1_early.id,
            s2.id,
            s1_late.id,
        ]
        # running jobs count, finished ones do not
        running = await first.acquire_jobs("w1", at(0), LEASE, 10)
        assert sorted(job_ids(running), key=str) == sorted([s3.id, adhoc.id], key=str)
        [running_s3] = [job for job in running if job.id == s3.id]
        [listed] = await second.get_schedule_jobs(["s3"])
        assert (listed.id, listed.acquired_by) == (s3.id, "w1")
        assert await first.release_job("w1", result_of(running_s3, 1))
        assert await second.get_schedule_jobs(["s3"]) == []
        await second.cancel_job(s1_early.id, at(1))
        assert job_ids(await first.get_schedule_jobs(["s1"])) == [s1_late.id]

    @pytest.mark.parametrize("attempt", [1, 2])
    @contract_test
    async def test_cancel_requested_is_stored(self, harness: StoreHarness, attempt: int) -> None:
        first, second = await harness.nodes()
        job = make_job(start=0, attempt=attempt)
        await first.add_jobs([job])
        await first.acquire_jobs("w1", at(0), LEASE, 1)
        await first.cancel_job(job.id, at(1))
        [stored] = await second.get_jobs()
        assert (stored.cancel_requested, stored.attempt) == (True, attempt)
        if harness.store.capabilities.persistent:
            [stored] = await (await harness.restart()).get_jobs()
            assert (stored.cancel_requested, stored.attempt) == (True, attempt)
