"""The memory store's JobQueue against a reference model that scans every job.

The model is the plain definition: acquire ends lapsed leases and missed deadlines, then
walks all pending jobs in (start_time, insertion) order and takes those whose task and
schedule are below their running limits. The queue must give the same answers with its
parked groups and lazy heaps, and its ``next_time`` must neither spin (report a time at
which nothing can happen) nor oversleep (let something become possible before it).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import UUID

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from horae._structures import Job
from horae.datastores._memory_jobs import JobQueue

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)
MICROSECOND = timedelta(microseconds=1)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


@attrs.define
class _ModelJob:
    job_id: UUID
    seq: int
    task: str
    schedule: str | None
    limit: int | None
    start: datetime
    deadline: datetime | None
    holder: str | None = None
    lease_end: datetime | None = None


@attrs.define
class _Outcome:
    acquired: list[UUID]
    abandoned: set[UUID]
    missed: set[UUID]


TASKS = st.sampled_from(["a", "b"])
NODES = st.sampled_from(["w1", "w2"])


class JobQueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.limits: dict[str, int | None] = {}
        self.queue = JobQueue(self.limits.get)
        self.model: dict[UUID, _ModelJob] = {}
        self.now = at(0)
        self.seq = 0

    # ---- the reference --------------------------------------------------------------

    def _reference_acquire(self, node: str, now: datetime, limit: int) -> _Outcome:
        abandoned = {
            job.job_id
            for job in self.model.values()
            if job.lease_end is not None and job.lease_end < now
        }
        missed = {
            job.job_id
            for job in self.model.values()
            if job.holder is None and job.deadline is not None and job.deadline < now
        }
        for job_id in abandoned | missed:
            del self.model[job_id]
        running = [job for job in self.model.values() if job.holder is not None]
        by_task = {task: sum(j.task == task for j in running) for task in ("a", "b")}
        by_schedule = {"s1": sum(j.schedule == "s1" for j in running)}
        pending = sorted(
            (job for job in self.model.values() if job.holder is None),
            key=lambda job: (job.start, job.seq),
        )
        acquired: list[UUID] = []
        for job in pending:
            if len(acquired) >= limit or job.start > now:
                break
            task_limit = self.limits.get(job.task)
            if task_limit is not None and by_task[job.task] >= task_limit:
                continue
            if (
                job.schedule is not None
                and job.limit is not None
                and by_schedule[job.schedule] >= job.limit
            ):
                continue
            by_task[job.task] += 1
            if job.schedule is not None:
                by_schedule[job.schedule] += 1
            job.holder, job.lease_end = node, now + LEASE
            acquired.append(job.job_id)
        return _Outcome(acquired, abandoned, missed)

    def _acquire_both(self, node: str, now: datetime, limit: int) -> int:
        expected = self._reference_acquire(node, now, limit)
        acquired, abandoned, missed = self.queue.acquire(node, now, LEASE, limit)
        assert [job.id for job in acquired] == expected.acquired
        assert {job.id for job in abandoned} == expected.abandoned
        assert {job.id for job in missed} == expected.missed
        return len(acquired)

    # ---- rules ----------------------------------------------------------------------

    @rule(
        task=TASKS,
        schedule=st.sampled_from([None, "s1"]),
        limit=st.sampled_from([None, 1, 2]),
        start=st.integers(0, 40),
        deadline=st.none() | st.integers(0, 50),
    )
    def add(
        self, task: str, schedule: str | None, limit: int | None, start: int, deadline: int | None
    ) -> None:
        job = Job(
            id=UUID(int=self.seq + 1),  # deterministic, so that hypothesis can replay
            task_id=task,
            schedule_id=schedule,
            max_running_jobs=limit,
            start_time=at(start),
            start_deadline=None if deadline is None else at(start + deadline),
            created_at=T0,
        )
        assert self.queue.add(job) is not None
        self.model[job.id] = _ModelJob(
            job.id, self.seq, task, schedule, limit, job.start_time, job.start_deadline
        )
        self.seq += 1

    @rule(task=TASKS, limit=st.none() | st.integers(0, 2))
    def set_task_limit(self, task: str, limit: int | None) -> None:
        self.limits[task] = limit
        self.queue.task_limit_changed(task)

    @rule(seconds=st.integers(0, 25))
    def advance_time(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(node=NODES, limit=st.integers(0, 6))
    def acquire(self, node: str, limit: int) -> None:
        if self._acquire_both(node, self.now, limit) < limit:
            # Fewer than asked for: everything startable was taken or found blocked, so
            # the next time must lie in the future, or a worker that sleeps until it
            # would spin.
            next_time = self.queue.next_time()
            assert next_time is None or next_time > self.now

    @rule(data=st.data())
    def release_running(self, data: st.DataObject) -> None:
        running = sorted((j.job_id for j in self.model.values() if j.holder), key=str)
        if not running:
            return
        job = self.model.pop(data.draw(st.sampled_from(running)))
        assert job.holder is not None
        assert self.queue.release(job.holder, job.job_id) is not None

    @rule(node=NODES, data=st.data())
    def release(self, node: str, data: st.DataObject) -> None:
        if not self.model:
            return
        job_id = data.draw(st.sampled_from(sorted(self.model, key=str)))
        held = self.model[job_id].holder == node
        assert (self.queue.release(node, job_id) is not None) == held
        if held:
            del self.model[job_id]

    @rule(node=NODES, data=st.data())
    def extend(self, node: str, data: st.DataObject) -> None:
        known = sorted(self.model, key=str)
        wanted = data.draw(st.lists(st.sampled_from(known))) if known else []
        held = {job_id for job_id in wanted if self.model[job_id].holder == node}
        assert self.queue.extend(node, wanted, self.now, LEASE) == held
        for job_id in held:
            self.model[job_id].lease_end = self.now + LEASE

    @rule(node=NODES)
    def probe_just_before_next_time(self, node: str) -> None:
        # Nothing may become possible before next_time (a worker sleeping until then
        # would miss it): just before it, acquiring finds and ends nothing.
        next_time = self.queue.next_time()
        if next_time is None or next_time - MICROSECOND < self.now:
            return
        probe = next_time - MICROSECOND
        expected = self._reference_acquire(node, probe, 100)
        assert expected == _Outcome([], set(), set())
        self._acquire_both_checked(node, probe)

    def _acquire_both_checked(self, node: str, probe: datetime) -> None:
        acquired, abandoned, missed = self.queue.acquire(node, probe, LEASE, 100)
        assert (acquired, abandoned, missed) == ([], [], [])


TestJobQueueMachine = JobQueueMachine.TestCase
TestJobQueueMachine.settings = settings(max_examples=80, stateful_step_count=50)


def test_job_heaps_stay_bounded_under_lease_renewals() -> None:
    queue = JobQueue(lambda task_id: None)
    jobs = [Job(task_id="t", start_time=T0, created_at=T0) for _ in range(5)]
    for job in jobs:
        queue.add(job)
    queue.acquire("w1", T0, LEASE, 5)
    for step in range(5_000):
        queue.extend("w1", [job.id for job in jobs], T0 + timedelta(seconds=step), LEASE)
        entries, stored = queue.heap_sizes()
        assert entries <= 2 * stored + 65
    assert {job.id for job in queue.get_many(None)} == {job.id for job in jobs}


def test_duplicate_ids_are_not_added_twice() -> None:
    queue = JobQueue(lambda task_id: None)
    job = Job(task_id="t", start_time=T0, created_at=T0)
    assert queue.add(job) is not None
    assert queue.add(job) is None
    acquired, _, _ = queue.acquire("w1", T0, LEASE, 10)
    assert [j.id for j in acquired] == [job.id]
