"""The three schedulers' own behaviours: BlockingScheduler's start() blocks until a
shutdown from elsewhere; AsyncIOScheduler runs coroutine jobs and job listeners on its
event loop (the running one, or the one configured)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from _compat_helpers import wait_until

from horae.compat import STATE_STOPPED, AsyncIOScheduler, BlockingScheduler
from horae.compat.events import EVENT_JOB_EXECUTED, JobExecutionEvent


class Counter:
    """A job that counts its runs."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.count += 1


def test_blocking_start_returns_when_another_thread_shuts_it_down() -> None:
    sched = BlockingScheduler()
    counter = Counter()
    sched.add_job(counter, "interval", seconds=0.1)
    thread = threading.Thread(target=sched.start)
    thread.start()
    wait_until(lambda: counter.count >= 2)
    sched.shutdown()
    thread.join(10)
    assert not thread.is_alive()
    assert sched.state == STATE_STOPPED


def test_asyncio_scheduler_runs_coroutines_on_the_running_loop() -> None:
    with pytest.raises(RuntimeError):
        AsyncIOScheduler().start()  # no running loop, none configured

    async def main() -> tuple[list[Any], list[Any]]:
        loop = asyncio.get_running_loop()
        ran: list[Any] = []
        events: list[Any] = []

        async def tick(value: int) -> int:
            ran.append(asyncio.get_running_loop() is loop)
            await asyncio.sleep(0.01)
            return value * 2

        sched = AsyncIOScheduler()

        def listener(event: JobExecutionEvent) -> None:
            events.append((event.retval, asyncio.get_running_loop() is loop))

        sched.add_listener(listener, EVENT_JOB_EXECUTED)
        sched.add_job(tick, "interval", seconds=0.1, args=[21])
        sched.start()
        for _ in range(100):
            if len(events) >= 2:
                break
            await asyncio.sleep(0.05)
        sched.shutdown()
        return ran, events

    ran, events = asyncio.run(main())
    assert ran[:2] == [True, True]
    assert events[:2] == [(42, True), (42, True)]


def test_asyncio_scheduler_uses_a_configured_event_loop() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="user-loop")
    thread.start()
    ran: list[bool] = []

    async def tick() -> None:
        ran.append(asyncio.get_running_loop() is loop)

    sched = AsyncIOScheduler(event_loop=loop)
    job = sched.add_job(tick, "interval", seconds=0.1)
    try:
        sched.start()  # from this thread, where no loop runs
        assert job.jobstore == "default"
        wait_until(lambda: len(ran) >= 2)
        sched.shutdown()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    assert ran[:2] == [True, True]
