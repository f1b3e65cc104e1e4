"""The schedule index of the memory store: schedules by id, due-heaps, leases, fire guards.

Plain synchronous code without events: :class:`~horae.datastores.MemoryDataStore` calls
it and publishes what changed. Every method runs without awaiting, so on one event loop
each call is atomic.

Three heaps with lazy deletion hold every schedule that may become actionable:

* ``_due``: ``(next_fire_time, id, version)`` of unpaused schedules that nobody holds,
  or whose holder's lease was seen to lapse;
* ``_leased``: ``(acquired_until, id, version)`` of schedules under a live lease;
* ``_paused``: ``(paused_until, id, version)`` of paused schedules that unpause at a time.

A schedule is in at most one heap. Each change of a schedule takes a fresh version from
one counter and pushes one entry; older entries no longer match the schedule's version
and are skipped when they surface (and dropped by :meth:`ScheduleIndex._compact` once
stale entries outnumber live ones). Versions come from a global counter, never per
schedule, so that a removed and re-added id cannot revive entries of its predecessor.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from itertools import count

import attrs

from horae._evolve import replace
from horae._structures import Job, Schedule
from horae._wallclock import to_utc
from horae.datastores._base import ScheduleUpdate

#: A lease is live while ``acquired_until >= now``; the first instant it counts as lapsed
#: is one microsecond later (the resolution of ``datetime``).
LEASE_EPSILON = timedelta(microseconds=1)

_Entry = tuple[datetime, str, int]


@attrs.define
class _Slot:
    schedule: Schedule
    version: int = -1
    #: the holder's lease was seen to lapse (the schedule moved from _leased to _due)
    lapsed: bool = False


@attrs.frozen
class ReleasedSchedule:
    """One accepted update: the schedule before, after (``None``: removed as finished),
    and the jobs that passed the fire-time guard."""

    before: Schedule
    after: Schedule | None
    jobs: list[Job]


class ScheduleIndex:
    """Schedules by id plus the heaps and guards that serve ``acquire_schedules``."""

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}
        self._due: list[_Entry] = []
        self._leased: list[_Entry] = []
        self._paused: list[_Entry] = []
        #: scheduler id -> ids of the schedules it holds under a live lease
        self._held: dict[str, set[str]] = {}
        #: schedule id -> the latest fire time that made a job (the exactly-once guard)
        self._watermarks: dict[str, datetime] = {}
        self._versions = count()

    # ---- plain access -------------------------------------------------------------------

    def get(self, schedule_id: str) -> Schedule | None:
        slot = self._slots.get(schedule_id)
        return None if slot is None else slot.schedule

    def get_many(self, ids: Iterable[str] | None) -> list[Schedule]:
        if ids is None:
            wanted: Iterable[str] = self._slots
        else:
            wanted = {schedule_id for schedule_id in ids if schedule_id in self._slots}
        return [self._slots[schedule_id].schedule for schedule_id in sorted(wanted)]

    def heap_sizes(self) -> tuple[int, int]:
        """``(entries in all heaps, schedules)``; for tests of the lazy deletion."""
        return len(self._due) + len(self._leased) + len(self._paused), len(self._slots)

    # ---- changes ------------------------------------------------------------------------

    def put(self, schedule: Schedule) -> None:
        """Insert or overwrite *schedule* as given (lease fields included)."""
        slot = self._slots.get(schedule.id)
        if slot is None:
            slot = self._slots[schedule.id] = _Slot(schedule)
        old = slot.schedule
        # A change that keeps the lease (pause, unpause) keeps what we know about it.
        same_lease = (old.acquired_by, old.acquired_until) == (
            schedule.acquired_by,
            schedule.acquired_until,
        )
        self._update(slot, schedule, lapsed=slot.lapsed and same_lease)

    def remove(self, schedule_id: str) -> Schedule | None:
        """Remove the schedule and its fire guard; its heap entries go stale."""
        slot = self._slots.pop(schedule_id, None)
        if slot is None:
            return None
        self._forget_holder(slot)
        self._watermarks.pop(schedule_id, None)
        return slot.schedule

    def _update(self, slot: _Slot, schedule: Schedule, *, lapsed: bool = False) -> None:
        self._forget_holder(slot)
        slot.schedule = schedule
        slot.lapsed = lapsed and schedule.acquired_by is not None
        if schedule.acquired_by is not None and not slot.lapsed:
            self._held.setdefault(schedule.acquired_by, set()).add(schedule.id)
        self._place(slot)

    def _forget_holder(self, slot: _Slot) -> None:
        holder = slot.schedule.acquired_by
        if holder is not None:
            held = self._held.get(holder)
            if held is not None:
                held.discard(slot.schedule.id)
                if not held:
                    del self._held[holder]

    def _place(self, slot: _Slot) -> None:
        slot.version = next(self._versions)
        schedule = slot.schedule
        if schedule.paused:
            if schedule.paused_until is not None:
                heapq.heappush(
                    self._paused, (to_utc(schedule.paused_until), schedule.id, slot.version)
                )
        elif schedule.acquired_by is not None and not slot.lapsed:
            assert schedule.acquired_until is not None
            heapq.heappush(
                self._leased, (to_utc(schedule.acquired_until), schedule.id, slot.version)
            )
        elif schedule.next_fire_time is not None:
            heapq.heappush(self._due, (to_utc(schedule.next_fire_time), schedule.id, slot.version))
        self._compact()

    def _valid(self, entry: _Entry) -> bool:
        slot = self._slots.get(entry[1])
        return slot is not None and slot.version == entry[2]

    def _top(self, heap: list[_Entry]) -> _Entry | None:
        while heap and not self._valid(heap[0]):
            heapq.heappop(heap)
        return heap[0] if heap else None

    def _compact(self) -> None:
        # Each change pushes one entry, so rebuilding once the stale entries outnumber
        # the schedules (plus a constant) costs O(1) amortized per change.
        if len(self._due) + len(self._leased) + len(self._paused) <= 2 * len(self._slots) + 64:
            return
        for heap in (self._due, self._leased, self._paused):
            heap[:] = [entry for entry in heap if self._valid(entry)]
            heapq.heapify(heap)

    # ---- acquisition --------------------------------------------------------------------

    def acquire(
        self, scheduler_id: str, now: datetime, lease_duration: timedelta, limit: int
    ) -> tuple[list[Schedule], list[Schedule]]:
        """Lease up to *limit* due schedules; return ``(acquired, auto_unpaused)``."""
        unpaused = self._unpause_until(now)
        self._lapse_leases(now)
        # The caller's own live leases: it may take its schedules again (after a restart
        # with the same identity, say). They are few: only what it holds right now.
        own = [
            self._slots[schedule_id].schedule
            for schedule_id in self._held.get(scheduler_id, ())
            if self._is_due(self._slots[schedule_id].schedule, now)
        ]
        popped: list[_Entry] = []
        while len(popped) < limit and (top := self._top(self._due)) and top[0] <= now:
            popped.append(heapq.heappop(self._due))
        if own:
            candidates = own + [self._slots[entry[1]].schedule for entry in popped]
            candidates.sort(key=lambda schedule: (schedule.next_fire_time, schedule.id))
            chosen = candidates[: max(limit, 0)]
            chosen_ids = {schedule.id for schedule in chosen}
            for entry in popped:
                if entry[1] not in chosen_ids:
                    heapq.heappush(self._due, entry)  # same version: still valid
        else:
            # the usual case: the heap already gave them in (fire time, id) order
            chosen = [self._slots[entry[1]].schedule for entry in popped]
        acquired_until = now + lease_duration
        acquired = []
        for schedule in chosen:
            leased = replace(schedule, acquired_by=scheduler_id, acquired_until=acquired_until)
            self._update(self._slots[schedule.id], leased)
            acquired.append(leased)
        return acquired, unpaused

    @staticmethod
    def _is_due(schedule: Schedule, now: datetime) -> bool:
        return (
            not schedule.paused
            and schedule.next_fire_time is not None
            and schedule.next_fire_time <= now
        )

    def _unpause_until(self, now: datetime) -> list[Schedule]:
        unpaused = []
        while (top := self._top(self._paused)) and top[0] <= now:
            heapq.heappop(self._paused)
            slot = self._slots[top[1]]
            schedule = replace(slot.schedule, paused=False, pause_reason=None, paused_until=None)
            self._update(slot, schedule, lapsed=slot.lapsed)
            unpaused.append(schedule)
        return unpaused

    def _lapse_leases(self, now: datetime) -> None:
        # A lease is live through acquired_until itself (acquired_until >= now), so only
        # strictly earlier ones lapse. The schedule keeps acquired_by (its holder may
        # still release it if nobody takes it over first) but moves to the due heap,
        # where any node can acquire it.
        while (top := self._top(self._leased)) and top[0] < now:
            heapq.heappop(self._leased)
            slot = self._slots[top[1]]
            self._update(slot, slot.schedule, lapsed=True)

    def next_time(self) -> datetime | None:
        """See ``DataStore.get_next_schedule_time``; O(1) amortized."""
        times = []
        if top := self._top(self._due):
            times.append(top[0])
        if top := self._top(self._paused):
            times.append(top[0])
        if top := self._top(self._leased):
            # The first instant at which the lease counts as lapsed; waking earlier would
            # find the schedule still held and spin.
            times.append(top[0] + LEASE_EPSILON)
        return min(times, default=None)

    # ---- release ------------------------------------------------------------------------

    def release(
        self, scheduler_id: str, updates: Sequence[ScheduleUpdate]
    ) -> list[ReleasedSchedule]:
        """Apply the updates of schedules that *scheduler_id* still holds."""
        released = []
        for update in updates:
            slot = self._slots.get(update.schedule_id)
            # Fencing: a node whose lease was taken over (or whose schedule was replaced
            # or removed) no longer appears as acquired_by, and changes nothing.
            if slot is None or slot.schedule.acquired_by != scheduler_id:
                continue
            before = slot.schedule
            jobs = self._guard_jobs(update.schedule_id, update.jobs)
            if update.next_fire_time is None:
                self.remove(update.schedule_id)
                released.append(ReleasedSchedule(before, None, jobs))
                continue
            after = replace(
                before,
                next_fire_time=update.next_fire_time,
                last_fire_time=(
                    before.last_fire_time
                    if update.last_fire_time is None
                    else update.last_fire_time
                ),
                acquired_by=None,
                acquired_until=None,
            )
            self._update(slot, after)
            released.append(ReleasedSchedule(before, after, jobs))
        return released

    def _guard_jobs(self, schedule_id: str, jobs: Sequence[Job]) -> list[Job]:
        # The watermark is the latest fire time that ever made a job for this schedule.
        # Fire times only move forward, so a fire time at or before it was handled
        # already, by this node or by one whose lease we took over, even if that job
        # has finished and been deleted since. It lives beside the schedule (not the
        # job), survives ConflictPolicy.replace, and goes when the schedule goes.
        watermark = self._watermarks.get(schedule_id)
        if len(jobs) == 1 and (fire_time := jobs[0].scheduled_fire_time) is not None:
            # one fire per release, the usual case: the loop below in short
            fire_time = to_utc(fire_time)
            if watermark is not None and fire_time <= watermark:
                return []
            self._watermarks[schedule_id] = fire_time
            return list(jobs)
        accepted = [job for job in jobs if job.scheduled_fire_time is None]
        # Compared in UTC: two times in one zone compare by wall clock, ignoring fold,
        # so 01:00 EST (the repeated hour) would count as before 01:40 EDT.
        timed = [
            (to_utc(fire_time), index, job)
            for index, job in enumerate(jobs)
            if (fire_time := job.scheduled_fire_time) is not None
        ]
        for fire_time, _, job in sorted(timed, key=lambda item: item[:2]):
            if watermark is not None and fire_time <= watermark:
                continue
            watermark = fire_time
            accepted.append(job)
        if watermark is not None:
            self._watermarks[schedule_id] = watermark
        return accepted
