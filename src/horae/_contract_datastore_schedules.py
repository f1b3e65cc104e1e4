"""``DataStoreContract`` tests of tasks and schedules: CRUD, pausing, acquire and release."""

from __future__ import annotations

import re
from datetime import timedelta

import anyio
import pytest

from horae._contract_datastore_harness import (
    LEASE,
    LEASE_SLACK,
    StoreFixtures,
    StoreHarness,
    advance,
    at,
    contract_test,
    fire_job,
    ids,
    make_task,
)
from horae._enums import ConflictPolicy, JobOutcome
from horae._exceptions import ConflictingIdError, ScheduleLookupError, TaskLookupError
from horae._structures import JobResult, RetryPolicy, Schedule
from horae.datastores._base import ScheduleUpdate
from horae.events import (
    JobAdded,
    ScheduleAdded,
    SchedulePaused,
    ScheduleRemoved,
    ScheduleUnpaused,
    ScheduleUpdated,
    TaskAdded,
    TaskRemoved,
    TaskUpdated,
)


class TaskContractTests(StoreFixtures):
    """Tasks, life cycle and event stamping."""

    @contract_test
    async def test_tasks_round_trip_and_publish_events(self, harness: StoreHarness) -> None:
        store = harness.store
        task = make_task(
            "b",
            job_executor="async",
            max_running_jobs=3,
            misfire_grace_time=timedelta(seconds=5),
            job_timeout=timedelta(minutes=1),
            retry=RetryPolicy(max_attempts=4),
            metadata={"team": "ops"},
        )
        await store.add_task(task)
        await store.add_task(make_task("a"))
        assert await store.get_task("b") == task
        await store.add_task(make_task("b", max_running_jobs=5))
        assert (await store.get_task("b")).max_running_jobs == 5
        assert ids(await store.get_tasks()) == ["a", "b"]
        await store.remove_task("a")
        assert ids(await store.get_tasks()) == ["b"]
        assert [event.task_id for event in harness.events_of(TaskAdded)] == ["b", "a"]
        assert [event.task_id for event in harness.events_of(TaskUpdated)] == ["b"]
        assert [event.task_id for event in harness.events_of(TaskRemoved)] == ["a"]

    @pytest.mark.parametrize("operation", ["get_task", "remove_task"])
    @contract_test
    async def test_unknown_task_raises_lookup_error(
        self, harness: StoreHarness, operation: str
    ) -> None:
        with pytest.raises(TaskLookupError, match="no task with the id 'nope' was found"):
            await getattr(harness.store, operation)("nope")
        assert harness.events_of(TaskRemoved) == []

    @contract_test
    async def test_events_are_stamped_by_the_given_clock(self, harness: StoreHarness) -> None:
        harness.clock.jump_to(at(123))
        await harness.store.add_task(make_task())
        [event] = harness.events_of(TaskAdded)
        assert event.timestamp == at(123)

    @contract_test
    async def test_store_can_be_started_again_after_stop(self, harness: StoreHarness) -> None:
        await harness.store.stop()
        await harness.store.start(harness.broker, harness.logger, clock=harness.clock)
        await harness.store.add_task(make_task("again"))
        assert (await harness.store.get_task("again")).id == "again"


class ScheduleCrudContractTests(StoreFixtures):
    """Adding, reading, removing and pausing schedules."""

    @contract_test
    async def test_add_schedule_stores_it_and_publishes_schedule_added(
        self, harness: StoreHarness
    ) -> None:
        schedule = harness.schedule(
            "s1", fire=5, args=(1, "two"), kwargs={"three": 3}, metadata={"k": "v"}
        )
        assert await harness.store.add_schedule(schedule, ConflictPolicy.exception) is True
        assert await harness.store.get_schedules() == [schedule]
        [event] = harness.events_of(ScheduleAdded)
        assert (event.schedule_id, event.task_id, event.next_fire_time) == ("s1", "task", at(5))

    @pytest.mark.parametrize(
        ("policy", "stored", "next_fire"),
        [(ConflictPolicy.replace, True, 20), (ConflictPolicy.do_nothing, False, 0)],
        ids=["replace", "do_nothing"],
    )
    @contract_test
    async def test_add_schedule_conflict_policy(
        self, harness: StoreHarness, policy: ConflictPolicy, stored: bool, next_fire: float
    ) -> None:
        store = harness.store
        await store.add_schedule(harness.schedule("s1", fire=0), ConflictPolicy.exception)
        assert await store.add_schedule(harness.schedule("s1", fire=20), policy) is stored
        [schedule] = await store.get_schedules()
        assert schedule.next_fire_time == at(next_fire)
        assert len(harness.events_of(ScheduleAdded)) == 1
        updated = harness.events_of(ScheduleUpdated)
        assert [event.next_fire_time for event in updated] == ([at(20)] if stored else [])

    @contract_test
    async def test_add_schedule_conflict_exception(self, harness: StoreHarness) -> None:
        store = harness.store
        await store.add_schedule(harness.schedule("s1", fire=0), ConflictPolicy.exception)
        message = re.escape(
            "a schedule with the id 's1' already exists; pass "
            "conflict_policy=ConflictPolicy.replace to overwrite it"
        )
        with pytest.raises(ConflictingIdError, match=message):
            await store.add_schedule(harness.schedule("s1", fire=20), ConflictPolicy.exception)
        [schedule] = await store.get_schedules()
        assert schedule.next_fire_time == at(0)

    @contract_test
    async def test_get_schedules_sorted_by_id_and_filtered(self, harness: StoreHarness) -> None:
        for schedule_id in ("c", "a", "b"):
            await harness.store.add_schedule(
                harness.schedule(schedule_id), ConflictPolicy.exception
            )
        assert ids(await harness.store.get_schedules()) == ["a", "b", "c"]
        assert ids(await harness.store.get_schedules(["c", "nope", "a"])) == ["a", "c"]
        assert await harness.store.get_schedules([]) == []

    @pytest.mark.parametrize("finished", [False, True])
    @contract_test
    async def test_remove_schedules_ignores_unknown_ids(
        self, harness: StoreHarness, finished: bool
    ) -> None:
        store = harness.store
        for schedule_id in ("s1", "s2", "s3"):
            await store.add_schedule(harness.schedule(schedule_id), ConflictPolicy.exception)
        await store.remove_schedules(["s1", "nope", "s3"], finished=finished)
        assert ids(await store.get_schedules()) == ["s2"]
        removed = {
            (event.schedule_id, event.task_id, event.finished)
            for event in harness.events_of(ScheduleRemoved)
        }
        assert removed == {("s1", "task", finished), ("s3", "task", finished)}

    @contract_test
    async def test_pause_and_unpause(self, harness: StoreHarness) -> None:
        store = harness.store
        await store.add_schedule(harness.schedule("s1", fire=0), ConflictPolicy.exception)
        paused = await store.pause_schedule("s1", reason="maintenance", until=at(100))
        assert (paused.paused, paused.pause_reason, paused.paused_until) == (
            True,
            "maintenance",
            at(100),
        )
        assert await store.get_schedules() == [paused]
        assert await store.acquire_schedules("n1", at(50), LEASE, 10) == []
        [event] = harness.events_of(SchedulePaused)
        assert (event.schedule_id, event.reason, event.paused_until) == (
            "s1",
            "maintenance",
            at(100),
        )
        unpaused = await store.unpause_schedule("s1", next_fire_time=None)
        assert (unpaused.paused, unpaused.pause_reason, unpaused.paused_until) == (
            False,
            None,
            None,
        )
        assert unpaused.next_fire_time == at(0)
        [unpause_event] = harness.events_of(ScheduleUnpaused)
        assert (unpause_event.schedule_id, unpause_event.next_fire_time) == ("s1", at(0))
        assert ids(await store.acquire_schedules("n1", at(50), LEASE, 10)) == ["s1"]

    @contract_test
    async def test_unpause_with_next_fire_time_moves_it(self, harness: StoreHarness) -> None:
        store = harness.store
        await store.add_schedule(harness.schedule("s1", fire=0), ConflictPolicy.exception)
        await store.pause_schedule("s1")
        unpaused = await store.unpause_schedule("s1", next_fire_time=at(30))
        assert unpaused.next_fire_time == at(30)
        assert await store.acquire_schedules("n1", at(29), LEASE, 10) == []
        assert ids(await store.acquire_schedules("n1", at(30), LEASE, 10)) == ["s1"]

    @contract_test
    async def test_paused_until_unpauses_when_due(self, harness: StoreHarness) -> None:
        store = harness.store
        await store.add_schedule(harness.schedule("s1", fire=0), ConflictPolicy.exception)
        await store.pause_schedule("s1", reason="deploy", until=at(100))
        assert await store.get_next_schedule_time() == at(100)
        assert await store.acquire_schedules("n1", at(99), LEASE, 10) == []
        [acquired] = await store.acquire_schedules("n1", at(100), LEASE, 10)
        assert (acquired.paused, acquired.pause_reason, acquired.paused_until) == (
            False,
            None,
            None,
        )
        assert [event.schedule_id for event in harness.events_of(ScheduleUnpaused)] == ["s1"]

    @contract_test
    async def test_paused_without_until_stays_paused(self, harness: StoreHarness) -> None:
        store = harness.store
        await store.add_schedule(harness.schedule("s1", fire=0), ConflictPolicy.exception)
        await store.pause_schedule("s1")
        assert await store.get_next_schedule_time() is None
        assert await store.acquire_schedules("n1", at(10**6), LEASE, 10) == []

    @pytest.mark.parametrize("operation", ["pause", "unpause"])
    @contract_test
    async def test_pause_unknown_schedule_raises(
        self, harness: StoreHarness, operation: str
    ) -> None:
        store = harness.store
        call = (
            store.pause_schedule("nope")
            if operation == "pause"
            else store.unpause_schedule("nope", next_fire_time=None)
        )
        with pytest.raises(ScheduleLookupError, match="no schedule with the id 'nope' was found"):
            await call


class ScheduleLeaseContractTests(StoreFixtures):
    """acquire_schedules, release_schedules and get_next_schedule_time."""

    async def _add(self, harness: StoreHarness, *fires: tuple[str, float]) -> None:
        for schedule_id, fire in fires:
            schedule = harness.schedule(schedule_id, fire=fire)
            await harness.store.add_schedule(schedule, ConflictPolicy.exception)

    @pytest.mark.parametrize("limit", [1, 2, 5])
    @contract_test
    async def test_acquire_earliest_first_up_to_limit(
        self, harness: StoreHarness, limit: int
    ) -> None:
        await self._add(harness, ("c", 3), ("a", 1), ("b", 2), ("future", 100), ("now", 10))
        await harness.store.add_schedule(
            harness.schedule("paused", fire=0, paused=True), ConflictPolicy.exception
        )
        acquired = await harness.store.acquire_schedules("n1", at(10), LEASE, limit)
        assert ids(acquired) == ["a", "b", "c", "now"][:limit]
        for schedule in acquired:
            assert (schedule.acquired_by, schedule.acquired_until) == ("n1", at(10) + LEASE)
        stored = {s.id: s for s in await harness.store.get_schedules()}
        assert all(stored[s.id].acquired_by == "n1" for s in acquired)

    @contract_test
    async def test_lease_excludes_other_nodes_until_it_lapses(self, harness: StoreHarness) -> None:
        store = harness.store
        await self._add(harness, ("s1", 0))
        assert ids(await store.acquire_schedules("n1", at(0), LEASE, 10)) == ["s1"]
        assert await store.acquire_schedules("n2", at(1), LEASE, 10) == []
        # live through acquired_until itself
        assert await store.acquire_schedules("n2", at(0) + LEASE, LEASE, 10) == []
        # the holder may take it again, which renews its lease
        [again] = await store.acquire_schedules("n1", at(5), LEASE, 10)
        assert again.acquired_until == at(5) + LEASE
        assert await store.acquire_schedules("n2", at(5) + LEASE, LEASE, 10) == []
        [taken] = await store.acquire_schedules("n2", at(6) + LEASE, LEASE, 10)
        assert (taken.id, taken.acquired_by) == ("s1", "n2")

    @contract_test
    async def test_concurrent_acquires_hand_each_schedule_out_once(
        self, harness: StoreHarness
    ) -> None:
        await self._add(harness, *[(f"s{number:02}", number % 7) for number in range(30)])
        first, second = await harness.nodes()
        results: list[list[Schedule]] = []

        async def acquire(number: int) -> None:
            store = first if number % 2 else second
            results.append(await store.acquire_schedules(f"node{number}", at(10), LEASE, 5))

        async with anyio.create_task_group() as group:
            for number in range(20):
                group.start_soon(acquire, number)
        handed_out = [schedule.id for result in results for schedule in result]
        assert sorted(handed_out) == [f"s{number:02}" for number in range(30)]

    @contract_test
    async def test_release_creates_jobs_and_advances_schedule(self, harness: StoreHarness) -> None:
        store = harness.store
        await self._add(harness, ("s1", 0), ("s2", 0))
        s1, _ = await store.acquire_schedules("n1", at(0), LEASE, 10)
        created = await store.release_schedules(
            "n1",
            [
                advance(s1, at(0), next_fire_time=at(10)),
                ScheduleUpdate(schedule_id="s2", next_fire_time=at(7)),
            ],
        )
        [job] = created
        assert (job.schedule_id, job.scheduled_fire_time, job.task_id) == ("s1", at(0), "task")
        assert await store.get_jobs() == created
        after = {s.id: s for s in await store.get_schedules()}
        assert (after["s1"].next_fire_time, after["s1"].last_fire_time) == (at(10), at(0))
        assert (after["s2"].next_fire_time, after["s2"].last_fire_time) == (at(7), None)
        for schedule in after.values():
            assert (schedule.acquired_by, schedule.acquired_until) == (None, None)
        [added] = harness.events_of(JobAdded)
        assert (added.job_id, added.task_id, added.schedule_id) == (job.id, "task", "s1")
        updated = {(e.schedule_id, e.next_fire_time) for e in harness.events_of(ScheduleUpdated)}
        assert updated == {("s1", at(10)), ("s2", at(7))}
        # the lease is gone: another node may take the schedule at its next fire time
        assert ids(await store.acquire_schedules("n2", at(10), LEASE, 10)) == ["s2", "s1"]

    @contract_test
    async def test_readers_never_see_half_a_release(self, harness: StoreHarness) -> None:
        # An advanced schedule without its job loses a fire; a job without the advance
        # lets the fire time be made again. Reads in this order expose either half.
        first, second = await harness.nodes()
        await self._add(harness, *[(f"s{number:02}", 0) for number in range(20)])
        acquired = await first.acquire_schedules("n1", at(0), LEASE, 20)
        updates = [advance(schedule, at(0), next_fire_time=at(10)) for schedule in acquired]
        torn: list[str] = []
        released = anyio.Event()

        async def read() -> None:
            while not released.is_set():
                advanced = {s.id for s in await second.get_schedules() if s.last_fire_time}
                with_jobs = {job.schedule_id for job in await second.get_jobs()}
                torn.extend(sorted(advanced - with_jobs))
                with_jobs = {job.schedule_id for job in await second.get_jobs()}
                advanced = {s.id for s in await second.get_schedules() if s.last_fire_time}
                torn.extend(sorted(str(schedule_id) for schedule_id in with_jobs - advanced))
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as group:
            group.start_soon(read)
            await anyio.lowlevel.checkpoint()
            assert len(await first.release_schedules("n1", updates)) == 20
            released.set()
        assert torn == []

    @contract_test
    async def test_release_by_a_node_that_lost_its_lease_changes_nothing(
        self, harness: StoreHarness
    ) -> None:
        await self._add(harness, ("s1", 0), ("never", 50))
        first, second = await harness.nodes()
        [s1] = await first.acquire_schedules("n1", at(0), LEASE, 1)
        [taken] = await second.acquire_schedules("n2", at(31), LEASE, 10)
        assert taken.id == "s1"
        harness.events.clear()
        stale = [
            advance(s1, at(0), next_fire_time=at(10)),
            advance(harness.schedule("never"), at(0), next_fire_time=at(10)),
        ]
        assert await first.release_schedules("n1", stale) == []
        assert await first.get_jobs() == []
        stored = {s.id: s for s in await first.get_schedules()}
        assert (stored["s1"].acquired_by, stored["s1"].next_fire_time) == ("n2", at(0))
        assert (stored["never"].acquired_by, stored["never"].next_fire_time) == (None, at(50))
        assert harness.events_of(JobAdded) == []
        assert harness.events_of(ScheduleUpdated) == []

    @pytest.mark.parametrize("comeback", ["not advanced", "replaced"])
    @contract_test
    async def test_fire_time_makes_one_job_even_after_that_job_is_gone(
        self, harness: StoreHarness, comeback: str
    ) -> None:
        store = harness.store
        await self._add(harness, ("s1", 0))
        [s1] = await store.acquire_schedules("n1", at(0), LEASE, 1)
        next_fire = at(0) if comeback == "not advanced" else at(10)
        [job] = await store.release_schedules("n1", [advance(s1, at(0), next_fire_time=next_fire)])
        # the job runs and is deleted (no result kept)
        assert [j.id for j in await store.acquire_jobs("w1", at(1), LEASE, 1)] == [job.id]
        result = JobResult(
            job_id=job.id,
            task_id="task",
            outcome=JobOutcome.success,
            finished_at=at(2),
            expires_at=at(2),
        )
        assert await store.release_job("w1", result) is True
        if comeback == "replaced":
            # e.g. every process re-declares its schedules at start-up
            await store.add_schedule(harness.schedule("s1", fire=0), ConflictPolicy.replace)
        [again] = await store.acquire_schedules("n1", at(10), LEASE, 1)
        update = advance(again, at(0), at(10), next_fire_time=at(20))
        [later] = await store.release_schedules("n1", [update])
        assert later.scheduled_fire_time == at(10)
        assert [e.job_id for e in harness.events_of(JobAdded)] == [job.id, later.id]
        [schedule] = await store.get_schedules()
        assert schedule.next_fire_time == at(20)

    @contract_test
    async def test_exhausted_schedule_is_removed_as_finished(self, harness: StoreHarness) -> None:
        store = harness.store
        await self._add(harness, ("s1", 0))
        [s1] = await store.acquire_schedules("n1", at(0), LEASE, 1)
        [job] = await store.release_schedules("n1", [advance(s1, at(0), next_fire_time=None)])
        assert job.scheduled_fire_time == at(0)
        assert await store.get_schedules() == []
        [removed] = harness.events_of(ScheduleRemoved)
        assert (removed.schedule_id, removed.task_id, removed.finished) == ("s1", "task", True)

    @contract_test
    async def test_next_schedule_time(self, harness: StoreHarness) -> None:
        store = harness.store
        assert await store.get_next_schedule_time() is None
        await self._add(harness, ("s1", 20), ("s2", 10))
        await store.add_schedule(
            harness.schedule("paused", fire=5, paused=True), ConflictPolicy.exception
        )
        assert await store.get_next_schedule_time() == at(10)
        await store.add_schedule(
            harness.schedule("until", fire=5, paused=True, paused_until=at(7)),
            ConflictPolicy.exception,
        )
        assert await store.get_next_schedule_time() == at(7)
        await store.remove_schedules(["until"])
        assert await store.get_next_schedule_time() == at(10)

    @contract_test
    async def test_next_schedule_time_of_a_held_schedule_is_after_its_lease(
        self, harness: StoreHarness
    ) -> None:
        store = harness.store
        await self._add(harness, ("s1", 0))
        [held] = await store.acquire_schedules("n1", at(0), LEASE, 1)
        assert held.acquired_until is not None
        next_time = await store.get_next_schedule_time()
        assert next_time is not None
        assert held.acquired_until < next_time <= held.acquired_until + LEASE_SLACK
        # waking at that time finds the schedule acquirable: no busy loop
        assert ids(await store.acquire_schedules("n2", next_time, LEASE, 1)) == ["s1"]

    @contract_test
    async def test_shared_instances_see_each_others_schedules(self, harness: StoreHarness) -> None:
        if not harness.store.capabilities.shared:
            pytest.skip("the store does not declare capabilities.shared")
        other = await harness.new_instance()
        await self._add(harness, ("s1", 0))
        assert ids(await other.get_schedules()) == ["s1"]
        assert ids(await other.acquire_schedules("n2", at(0), LEASE, 1)) == ["s1"]
        assert await harness.store.acquire_schedules("n1", at(1), LEASE, 1) == []

    @contract_test
    async def test_release_stores_jobs_field_for_field(self, harness: StoreHarness) -> None:
        # A job passed in a ScheduleUpdate is stored field for field.
        await self._add(harness, ("s1", 0))
        [s1] = await harness.store.acquire_schedules("n1", at(0), LEASE, 1)
        job = fire_job(s1, at(0), args=(1,), kwargs={"x": "y"}, metadata={"m": 1})
        update = ScheduleUpdate(schedule_id="s1", next_fire_time=at(10), jobs=[job])
        assert await harness.store.release_schedules("n1", [update]) == [job]
        assert await harness.store.get_jobs() == [job]
