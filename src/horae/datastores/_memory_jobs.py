"""The job queue of the memory store: pending jobs in start order, running jobs by lease.

Plain synchronous code without events or results: :class:`~horae.datastores.MemoryDataStore`
calls it, turns ended jobs into results and publishes what changed. No method awaits, so
on one event loop each call is atomic.

**Pending jobs** are grouped by ``(task_id, schedule_id, schedule-level limit)``: every
job of a group is held back by the same running limits, so a blocked group can step
aside as a whole. Each group keeps a heap of ``(start_time, seq, job_id)``; the global
``_ready`` heap holds ``(head start_time, head seq, version, group key)`` for each group
that is not *parked*. When the head of a group is blocked by a limit, the group is parked
under the task or the schedule that blocks it and leaves ``_ready``; it comes back when
that task's or schedule's running count drops (a release, an abandoned job) or the
task's limit changes. So a task at its limit costs nothing per ``acquire`` and never
stalls the others, and ``next_time`` never reports a job that cannot start (a worker
would spin on it).

**Running jobs** sit in ``_running_by_task`` / ``_running_by_schedule`` (sets of ids,
never counters: a set cannot drift when a job ends twice or a lease is renewed) and in
the ``_leases`` heap of ``(acquired_until, seq, job_id)``. ``acquire`` first ends every
running job whose lease lapsed, so the sets hold exactly the live leases whenever a limit
is checked.

**Deadlines** of pending jobs sit in the ``_deadlines`` heap. Every heap uses lazy
deletion: an entry counts only while it still matches the job (same insertion ``seq``,
same state, same time); the rest are skipped when they surface and dropped by compaction.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from itertools import count
from uuid import UUID

import attrs

from horae._evolve import replace
from horae._structures import Job
from horae._wallclock import to_utc
from horae.datastores._memory_schedules import LEASE_EPSILON

_GroupKey = tuple[str, "str | None", "int | None"]
_JobEntry = tuple[datetime, int, UUID]
_ReadyEntry = tuple[datetime, int, int, _GroupKey]


@attrs.define
class _Group:
    key: _GroupKey
    heap: list[_JobEntry] = attrs.field(factory=list)
    version: int = -1
    #: "task" or "schedule" while parked behind that limit, else None
    parked_on: str | None = None


def _group_key(job: Job) -> _GroupKey:
    # The schedule-level limit only applies to jobs made by a schedule; it is part of
    # the key so that one group never mixes jobs with different limits.
    limit = job.max_running_jobs if job.schedule_id is not None else None
    return job.task_id, job.schedule_id, limit


class JobQueue:
    """Pending and running jobs, and the heaps that serve ``acquire_jobs``.

    Args:
        task_limit: returns the ``max_running_jobs`` of a task id (``None``: no limit).
    """

    def __init__(self, task_limit: Callable[[str], int | None]) -> None:
        self._task_limit = task_limit
        self._jobs: dict[UUID, Job] = {}
        self._seqs: dict[UUID, int] = {}
        self._groups: dict[_GroupKey, _Group] = {}
        self._ready: list[_ReadyEntry] = []
        self._leases: list[_JobEntry] = []
        self._deadlines: list[_JobEntry] = []
        self._running_by_task: dict[str, set[UUID]] = {}
        self._running_by_schedule: dict[str, set[UUID]] = {}
        self._parked: dict[tuple[str, str], set[_GroupKey]] = {}
        self._by_schedule: dict[str, set[UUID]] = {}
        self._counter = count()

    # ---- plain access -------------------------------------------------------------------

    def get(self, job_id: UUID) -> Job | None:
        return self._jobs.get(job_id)

    def get_many(self, ids: Iterable[UUID] | None) -> list[Job]:
        """Pending and running jobs in ``start_time`` order (ties: insertion order)."""
        if ids is None:
            jobs = list(self._jobs.values())
        else:
            jobs = [self._jobs[job_id] for job_id in set(ids) if job_id in self._jobs]
        return sorted(jobs, key=lambda job: (job.start_time, self._seqs[job.id]))

    def of_schedules(self, schedule_ids: Iterable[str]) -> list[Job]:
        """Pending and running jobs of these schedules, in ``start_time`` order."""
        ids = [
            job_id
            for schedule_id in set(schedule_ids)
            for job_id in self._by_schedule.get(schedule_id, ())
        ]
        return self.get_many(ids)

    def _store(self, job: Job, seq: int) -> None:
        self._jobs[job.id] = job
        self._seqs[job.id] = seq
        if job.schedule_id is not None:
            self._by_schedule.setdefault(job.schedule_id, set()).add(job.id)

    def _forget(self, job_id: UUID) -> Job:
        job = self._jobs.pop(job_id)
        del self._seqs[job_id]
        if job.schedule_id is not None:
            ids = self._by_schedule[job.schedule_id]
            ids.discard(job_id)
            if not ids:
                del self._by_schedule[job.schedule_id]
        return job

    def heap_sizes(self) -> tuple[int, int]:
        """``(entries in the global heaps, jobs)``; for tests of the lazy deletion."""
        return len(self._ready) + len(self._leases) + len(self._deadlines), len(self._jobs)

    # ---- pending jobs -------------------------------------------------------------------

    def add(self, job: Job) -> Job | None:
        """Insert *job* as pending; return it, or ``None`` if its id is already stored."""
        if job.id in self._jobs:
            return None
        if (
            job.acquired_by is not None
            or job.acquired_until is not None
            or job.started_at is not None
        ):
            job = replace(job, acquired_by=None, acquired_until=None, started_at=None)
        seq = next(self._counter)
        self._store(job, seq)
        key = _group_key(job)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key)
        old_head = group.heap[0] if group.heap else None
        heapq.heappush(group.heap, (to_utc(job.start_time), seq, job.id))
        if group.parked_on is None and group.heap[0] != old_head:
            self._activate(group)
        if job.start_deadline is not None:
            heapq.heappush(self._deadlines, (to_utc(job.start_deadline), seq, job.id))
        self._compact()
        return job

    def _is_pending(self, entry: _JobEntry) -> bool:
        job = self._jobs.get(entry[2])
        return job is not None and job.acquired_by is None and self._seqs[job.id] == entry[1]

    def _activate(self, group: _Group) -> None:
        """Unpark *group* and (re)announce its current head in ``_ready``."""
        while group.heap and not self._is_pending(group.heap[0]):
            heapq.heappop(group.heap)
        group.parked_on = None
        group.version = next(self._counter)  # stale _ready entries of the group go
        if not group.heap:
            del self._groups[group.key]
            return
        start_time, seq, _ = group.heap[0]
        heapq.heappush(self._ready, (start_time, seq, group.version, group.key))

    def _park(self, group: _Group, blocker: tuple[str, str]) -> None:
        group.parked_on = blocker[0]
        group.version = next(self._counter)
        self._parked.setdefault(blocker, set()).add(group.key)

    def _unpark(self, blocker: tuple[str, str]) -> None:
        """Capacity behind *blocker* changed: let its parked groups compete again."""
        for key in self._parked.pop(blocker, ()):
            group = self._groups.get(key)
            if group is not None and group.parked_on == blocker[0]:
                self._activate(group)

    def task_limit_changed(self, task_id: str) -> None:
        """The task's ``max_running_jobs`` changed (or the task went): recheck its jobs."""
        self._unpark(("task", task_id))

    def _blocker(self, job: Job) -> tuple[str, str] | None:
        limit = self._task_limit(job.task_id)
        if limit is not None and len(self._running_by_task.get(job.task_id, ())) >= limit:
            return "task", job.task_id
        if (
            job.schedule_id is not None
            and job.max_running_jobs is not None
            and len(self._running_by_schedule.get(job.schedule_id, ())) >= job.max_running_jobs
        ):
            return "schedule", job.schedule_id
        return None

    # ---- acquisition --------------------------------------------------------------------

    def acquire(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> tuple[list[Job], list[Job], list[Job]]:
        """Lease up to *limit* startable jobs; return ``(acquired, abandoned, missed)``.

        Lapsed leases are ended first, so that the capacity they held counts; then
        pending jobs whose start deadline passed; then jobs are taken in
        ``(start_time, insertion)`` order, skipping those held back by a limit.
        """
        abandoned = self._end_lapsed_leases(now)
        missed = self._end_missed_deadlines(now)
        acquired: list[Job] = []
        while len(acquired) < limit and self._ready:
            start_time, seq, version, key = self._ready[0]
            group = self._groups.get(key)
            if group is None or group.version != version or group.parked_on is not None:
                heapq.heappop(self._ready)
                continue
            if start_time > now:
                break
            heapq.heappop(self._ready)
            head = group.heap[0] if group.heap else None
            if head is None or head[:2] != (start_time, seq) or not self._is_pending(head):
                self._activate(group)  # its head went meanwhile: announce the new one
                continue
            job = self._jobs[head[2]]
            blocker = self._blocker(job)
            if blocker is not None:
                self._park(group, blocker)
                continue
            heapq.heappop(group.heap)
            acquired.append(self._start(job, scheduler_id, now, lease_duration))
            self._activate(group)
        self._compact()
        return acquired, abandoned, missed

    def _start(self, job: Job, scheduler_id: str, now: datetime, lease_duration: timedelta) -> Job:
        job = replace(
            job, acquired_by=scheduler_id, acquired_until=now + lease_duration, started_at=now
        )
        self._jobs[job.id] = job
        self._running_by_task.setdefault(job.task_id, set()).add(job.id)
        if job.schedule_id is not None:
            self._running_by_schedule.setdefault(job.schedule_id, set()).add(job.id)
        assert job.acquired_until is not None
        heapq.heappush(self._leases, (to_utc(job.acquired_until), self._seqs[job.id], job.id))
        return job

    def _end_lapsed_leases(self, now: datetime) -> list[Job]:
        # Live while acquired_until >= now; a lapsed lease means a dead (or hopelessly
        # late) worker. The job is removed here, in the same atomic step that frees its
        # capacity, so it ends as abandoned exactly once however many nodes call this.
        ended = []
        while (top := self._top_lease()) and top[0] < now:
            heapq.heappop(self._leases)
            ended.append(self._remove_running(top[2]))
        return ended

    def _end_missed_deadlines(self, now: datetime) -> list[Job]:
        # A job may still start at its deadline itself; it has missed it once the
        # deadline is strictly in the past.
        ended = []
        while (top := self._top_deadline()) and top[0] < now:
            heapq.heappop(self._deadlines)
            ended.append(self._remove_pending(top[2]))
        return ended

    def _remove_pending(self, job_id: UUID) -> Job:
        job = self._forget(job_id)
        group = self._groups.get(_group_key(job))
        if group is not None and group.parked_on is None and group.heap[0][2] == job.id:
            self._activate(group)  # it was the head: announce the next one
        return job

    def _is_live_lease(self, entry: _JobEntry) -> bool:
        # "live" as in: the entry still describes the job's current lease (a renewal
        # pushes a new entry and leaves the old one behind)
        job = self._jobs.get(entry[2])
        return (
            job is not None and self._seqs[job.id] == entry[1] and job.acquired_until == entry[0]
        )

    def _top_lease(self) -> _JobEntry | None:
        while self._leases and not self._is_live_lease(self._leases[0]):
            heapq.heappop(self._leases)
        return self._leases[0] if self._leases else None

    def _top_deadline(self) -> _JobEntry | None:
        while self._deadlines and not self._is_pending(self._deadlines[0]):
            heapq.heappop(self._deadlines)
        return self._deadlines[0] if self._deadlines else None

    def _top_ready(self) -> _ReadyEntry | None:
        while self._ready:
            _, _, version, key = self._ready[0]
            group = self._groups.get(key)
            if group is not None and group.version == version and group.parked_on is None:
                return self._ready[0]
            heapq.heappop(self._ready)
        return None

    # ---- running jobs -------------------------------------------------------------------

    def extend(
        self, scheduler_id: str, job_ids: Iterable[UUID], now: datetime, lease_duration: timedelta
    ) -> set[UUID]:
        """Renew the leases of the jobs *scheduler_id* holds; return their ids."""
        held = set()
        acquired_until = now + lease_duration
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            if job is None or job.acquired_by != scheduler_id:
                continue
            self._jobs[job_id] = replace(job, acquired_until=acquired_until)
            heapq.heappush(self._leases, (to_utc(acquired_until), self._seqs[job_id], job_id))
            held.add(job_id)
        self._compact()
        return held

    def release(self, scheduler_id: str, job_id: UUID) -> Job | None:
        """Remove the job if *scheduler_id* holds it; return it (else ``None``)."""
        job = self._jobs.get(job_id)
        if job is None or job.acquired_by != scheduler_id:
            return None
        return self._remove_running(job_id)

    def cancel(self, job_id: UUID, now: datetime) -> tuple[Job | None, bool]:
        """``(the job as it was, whether it was removed)``; ``(None, False)`` if absent.

        A pending job or one whose lease lapsed is removed; a running one is marked
        ``cancel_requested`` and stays (its holder ends it).
        """
        job = self._jobs.get(job_id)
        if job is None:
            return None, False
        if job.acquired_by is None:
            self._remove_pending(job_id)
            self._compact()
            return job, True
        assert job.acquired_until is not None
        if job.acquired_until < now:
            self._remove_running(job_id)
            return job, True
        self._jobs[job_id] = attrs.evolve(job, cancel_requested=True)
        return job, False

    def _remove_running(self, job_id: UUID) -> Job:
        job = self._forget(job_id)
        running = self._running_by_task.get(job.task_id)
        if running is not None:
            running.discard(job_id)
            if not running:
                del self._running_by_task[job.task_id]
        self._unpark(("task", job.task_id))
        if job.schedule_id is not None:
            running = self._running_by_schedule.get(job.schedule_id)
            if running is not None:
                running.discard(job_id)
                if not running:
                    del self._running_by_schedule[job.schedule_id]
            self._unpark(("schedule", job.schedule_id))
        return job

    # ---- housekeeping -------------------------------------------------------------------

    def next_time(self) -> datetime | None:
        """See ``DataStore.get_next_job_time``; O(1) amortized."""
        times = []
        if ready := self._top_ready():
            times.append(ready[0])
        # The first instants at which a lease counts as lapsed or a deadline as missed:
        # waking at the boundary itself would find nothing to do and spin.
        if lease := self._top_lease():
            times.append(lease[0] + LEASE_EPSILON)
        if deadline := self._top_deadline():
            times.append(deadline[0] + LEASE_EPSILON)
        return min(times, default=None)

    def _compact(self) -> None:
        # Every operation pushes O(1) entries per job it touches, so rebuilding once the
        # stale entries outnumber the live jobs (plus a constant) is O(1) amortized.
        if len(self._ready) + len(self._leases) + len(self._deadlines) <= 2 * len(self._jobs) + 64:
            return
        self._leases[:] = [entry for entry in self._leases if self._is_live_lease(entry)]
        self._deadlines[:] = [entry for entry in self._deadlines if self._is_pending(entry)]
        self._ready[:] = [
            entry
            for entry in self._ready
            if (group := self._groups.get(entry[3])) is not None
            and group.version == entry[2]
            and group.parked_on is None
        ]
        for heap in (self._leases, self._deadlines):
            heapq.heapify(heap)
        heapq.heapify(self._ready)
