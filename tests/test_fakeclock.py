"""FakeClock: manual advancing, deadline order, thread safety and autojump."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import anyio
import pytest

from horae.testing import FakeClock

pytestmark = pytest.mark.anyio

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_now_is_the_start_in_utc() -> None:
    berlin = datetime(2030, 6, 1, 12, tzinfo=ZoneInfo("Europe/Berlin"))
    clock = FakeClock(berlin)
    assert clock.now() == berlin
    assert clock.now().tzinfo is timezone.utc


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="start must be a timezone-aware datetime"):
        FakeClock(datetime(2030, 1, 1))


def test_bad_autojump_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match=r"autojump_threshold must be a number of seconds >= 0"):
        FakeClock(T0, autojump_threshold=-1)


def test_the_clock_never_goes_backwards() -> None:
    clock = FakeClock(T0)
    with pytest.raises(ValueError, match="the clock never goes backwards: cannot jump to"):
        clock.jump_to(T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="negative delta"):
        clock.advance(-1)
    clock.advance(timedelta(minutes=1))
    clock.advance(1.5)
    assert clock.now() == T0 + timedelta(seconds=61.5)


async def test_sleep_until_a_past_deadline_returns_at_once() -> None:
    clock = FakeClock(T0)
    with anyio.fail_after(5):
        await clock.sleep_until(T0)
        await clock.sleep_until(T0 - timedelta(hours=1))


async def test_advance_wakes_sleepers_in_deadline_order() -> None:
    clock = FakeClock(T0)
    woken: list[int] = []

    async def sleeper(seconds: int) -> None:
        await clock.sleep_until(T0 + timedelta(seconds=seconds))
        woken.append(seconds)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for seconds in (30, 10, 20, 40):
                group.start_soon(sleeper, seconds)
            await anyio.wait_all_tasks_blocked()
            clock.advance(35)
            await anyio.wait_all_tasks_blocked()
            assert woken == [10, 20, 30]
            clock.advance(5)
    assert woken == [10, 20, 30, 40]


async def test_a_cancelled_sleeper_is_forgotten() -> None:
    clock = FakeClock(T0)
    with anyio.fail_after(5):
        with anyio.move_on_after(0.01):
            await clock.sleep(60)
        clock.advance(120)  # must not try to wake the cancelled sleeper
        assert clock.now() == T0 + timedelta(minutes=2)


async def test_advance_from_another_thread_wakes_the_loop() -> None:
    clock = FakeClock(T0)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(clock.sleep, 10)
            await anyio.wait_all_tasks_blocked()
            thread = threading.Thread(target=clock.advance, args=(10,))
            thread.start()
        thread.join()
    assert clock.now() == T0 + timedelta(seconds=10)


async def test_autojump_skips_idle_time() -> None:
    clock = FakeClock(T0, autojump=True)
    with anyio.fail_after(5):
        await clock.sleep(3600)
        assert clock.now() == T0 + timedelta(hours=1)
        await clock.sleep_until(T0 + timedelta(days=365))
    assert clock.now() == T0 + timedelta(days=365)


async def test_autojump_wakes_each_sleeper_at_its_own_deadline() -> None:
    clock = FakeClock(T0, autojump=True)
    seen: list[datetime] = []

    async def sleeper(seconds: int) -> None:
        await clock.sleep(seconds)
        seen.append(clock.now())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for seconds in (300, 100, 200):
                group.start_soon(sleeper, seconds)
    assert seen == [T0 + timedelta(seconds=s) for s in (100, 200, 300)]


async def test_autojump_waits_while_another_task_is_runnable() -> None:
    clock = FakeClock(T0, autojump=True)
    times_seen_by_busy_task: list[datetime] = []

    async def busy() -> None:
        for _ in range(200):
            times_seen_by_busy_task.append(clock.now())
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(clock.sleep, 60)
            group.start_soon(busy)
    assert set(times_seen_by_busy_task) == {T0}
    assert clock.now() == T0 + timedelta(minutes=1)


async def test_autojump_threshold_waits_real_time() -> None:
    clock = FakeClock(T0, autojump=True, autojump_threshold=0.05)
    with anyio.fail_after(5):
        started = anyio.current_time()
        await clock.sleep(60)
        assert anyio.current_time() - started >= 0.05
    assert clock.now() == T0 + timedelta(minutes=1)


async def test_autojump_can_be_switched_on_later() -> None:
    clock = FakeClock(T0)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(clock.sleep, 60)
            await anyio.wait_all_tasks_blocked()
            assert clock.now() == T0
            clock.autojump = True
    assert clock.autojump
    assert clock.now() == T0 + timedelta(minutes=1)
