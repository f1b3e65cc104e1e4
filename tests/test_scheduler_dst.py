"""The scheduler across DST changes: every fire time the trigger yields makes exactly
one job, including the second pass through a repeated hour (where Python's same-zone
datetime comparison ignores ``fold`` and would call 01:00 EST "before" 01:30 EDT)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import anyio
import pytest

from horae import AsyncScheduler, events
from horae.testing import FakeClock
from horae.triggers import CronTrigger, IntervalTrigger, Trigger

pytestmark = pytest.mark.anyio

NEW_YORK = ZoneInfo("America/New_York")
# 2030-11-03: clocks in New York go back from 02:00 EDT to 01:00 EST (06:00 UTC).
FALL_BACK_EVE = datetime(2030, 11, 3, 3, 59, tzinfo=timezone.utc)
# 2030-03-10: clocks jump from 02:00 EST to 03:00 EDT (07:00 UTC).
SPRING_FORWARD_EVE = datetime(2030, 3, 10, 4, 59, tzinfo=timezone.utc)


async def nothing() -> None:
    """A job that does nothing."""


async def fire_times(trigger: Trigger, start: datetime, expected: int) -> list[datetime]:
    """Run a scheduler from *start* until *expected* jobs have finished; return their
    scheduled fire times in UTC, in the order they ran."""
    clock = FakeClock(start, autojump=True)
    seen: list[datetime] = []
    done = anyio.Event()

    def on_released(event: events.Event) -> None:
        assert isinstance(event, events.JobReleased)
        assert event.scheduled_fire_time is not None
        seen.append(event.scheduled_fire_time.astimezone(timezone.utc))
        if len(seen) >= expected:
            done.set()

    with anyio.fail_after(20):
        async with AsyncScheduler(clock=clock) as scheduler:
            scheduler.subscribe(on_released, {events.JobReleased})
            await scheduler.add_schedule(nothing, trigger, id="dst")
            await scheduler.start_in_background()
            await done.wait()
            # give a wrongly duplicated or extra fire the chance to show up
            clock.advance(timedelta(hours=2))
            await anyio.sleep(0.05)
            await scheduler.stop()
    return seen


def utc(hour: int, minute: int, day: int = 3, month: int = 11) -> datetime:
    return datetime(2030, month, day, hour, minute, tzinfo=timezone.utc)


async def test_star_schedule_fires_twice_through_the_repeated_hour() -> None:
    trigger = CronTrigger.from_crontab(
        "*/30 * * * *",
        timezone=NEW_YORK,
        start_time=FALL_BACK_EVE,
        end_time=datetime(2030, 11, 3, 3, 0, tzinfo=NEW_YORK),
    )
    got = await fire_times(trigger, FALL_BACK_EVE, expected=9)
    # 00:00, 00:30, 01:00 EDT, 01:30 EDT, 01:00 EST, 01:30 EST, 02:00, 02:30, 03:00 EST
    assert got == [utc(4, 0) + timedelta(minutes=30 * k) for k in range(9)]


async def test_fixed_time_schedule_fires_once_in_the_repeated_hour() -> None:
    trigger = CronTrigger.from_crontab(
        "30 1 * * *",
        timezone=NEW_YORK,
        start_time=FALL_BACK_EVE,
        end_time=datetime(2030, 11, 4, 12, 0, tzinfo=NEW_YORK),
    )
    got = await fire_times(trigger, FALL_BACK_EVE, expected=2)
    assert got == [utc(5, 30), utc(6, 30, day=4)]  # 01:30 EDT, then 01:30 EST next day


async def test_fixed_time_in_the_skipped_hour_fires_at_the_end_of_the_gap() -> None:
    trigger = CronTrigger.from_crontab(
        "30 2 * * *",
        timezone=NEW_YORK,
        start_time=SPRING_FORWARD_EVE,
        end_time=datetime(2030, 3, 11, 12, 0, tzinfo=NEW_YORK),
    )
    got = await fire_times(trigger, SPRING_FORWARD_EVE, expected=2)
    # 02:30 does not exist on 2030-03-10: it fires at 03:00 EDT (07:00 UTC)
    assert got == [utc(7, 0, day=10, month=3), utc(6, 30, day=11, month=3)]


async def test_interval_keeps_elapsed_time_through_the_repeated_hour() -> None:
    trigger = IntervalTrigger(minutes=20, start_time=datetime(2030, 11, 3, 0, 40, tzinfo=NEW_YORK))
    got = await fire_times(trigger, FALL_BACK_EVE, expected=9)
    # no end time: later fires follow; the first nine cover the repeated hour
    assert got[:9] == [utc(4, 40) + timedelta(minutes=20 * k) for k in range(9)]
