"""The built-in job executors: the event loop, a thread pool and a process pool."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest

from horae import AsyncScheduler, Job, current_job
from horae.executors import (
    AsyncJobExecutor,
    JobExecutor,
    ProcessPoolJobExecutor,
    ThreadPoolJobExecutor,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def make_job(*args: Any, **kwargs: Any) -> Job:
    return Job(task_id="test", args=args, kwargs=kwargs, start_time=T0, created_at=T0)


async def run(executor: JobExecutor, func: Callable[..., Any], job: Job) -> Any:
    async with AsyncExitStack() as stack:
        await executor.start(stack)
        token = current_job.set(job)
        try:
            return await executor.run_job(func, job)
        finally:
            current_job.reset(token)


# ---- functions for the process pool: importable, module level --------------------------


def add(a: int, b: int, *, scale: int = 1) -> int:
    return (a + b) * scale


def process_info() -> tuple[int, str]:
    return os.getpid(), str(current_job.get().id)


def write_pid_and_hang(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(60)


def fail() -> None:
    raise ValueError("no good")


# ---- async ----------------------------------------------------------------------------


async def test_async_executor_awaits_coroutine_functions() -> None:
    async def double(value: int, *, plus: int) -> tuple[int, str]:
        await anyio.lowlevel.checkpoint()
        return value * 2 + plus, str(current_job.get().id)

    job = make_job(20, plus=2)
    with anyio.fail_after(5):
        assert await run(AsyncJobExecutor(), double, job) == (42, str(job.id))


async def test_async_executor_calls_plain_functions_on_the_loop() -> None:
    with anyio.fail_after(5):
        assert await run(AsyncJobExecutor(), add, make_job(1, 2, scale=3)) == 9


# ---- threads --------------------------------------------------------------------------


async def test_thread_executor_runs_in_a_worker_thread_with_the_context() -> None:
    def where() -> tuple[int, str]:
        return threading.get_ident(), str(current_job.get().id)

    job = make_job()
    with anyio.fail_after(5):
        thread_id, job_id = await run(ThreadPoolJobExecutor(), where, job)
    assert thread_id != threading.get_ident()
    assert job_id == str(job.id)


async def test_thread_executor_passes_arguments_and_exceptions() -> None:
    executor = ThreadPoolJobExecutor()
    with anyio.fail_after(5):
        assert await run(executor, add, make_job(2, 3, scale=2)) == 10
        with pytest.raises(ValueError, match="no good"):
            await run(executor, fail, make_job())


async def test_thread_executor_honours_max_workers() -> None:
    lock = threading.Lock()
    running = 0
    peak = 0

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    executor = ThreadPoolJobExecutor(max_workers=2)
    with anyio.fail_after(10):
        async with AsyncExitStack() as stack:
            await executor.start(stack)
            async with anyio.create_task_group() as group:
                for _ in range(6):
                    group.start_soon(executor.run_job, work, make_job())
    assert peak == 2


async def test_a_cancelled_thread_job_is_abandoned() -> None:
    release = threading.Event()
    finished = threading.Event()

    def wait_for_release() -> str:
        release.wait(10)
        finished.set()
        return "ignored"

    executor = ThreadPoolJobExecutor(max_workers=1)
    with anyio.fail_after(5):
        async with AsyncExitStack() as stack:
            await executor.start(stack)
            with anyio.move_on_after(0.05) as scope:
                await executor.run_job(wait_for_release, make_job())
            assert scope.cancelled_caught
            # the abandoned thread no longer holds the only slot
            assert await executor.run_job(add, make_job(1, 1)) == 2
    release.set()
    assert finished.wait(5)


async def test_the_pool_keeps_its_size_while_an_abandoned_job_runs_on() -> None:
    release = threading.Event()

    def wait_for_release() -> None:
        release.wait(10)

    executor = ThreadPoolJobExecutor(max_workers=1)
    try:
        with anyio.fail_after(5):
            async with AsyncExitStack() as stack:
                await executor.start(stack)
                with anyio.move_on_after(0.05):
                    await executor.run_job(wait_for_release, make_job())
                # the thread that replaced the abandoned one keeps serving, job after job
                for number in range(3):
                    assert await executor.run_job(add, make_job(number, 1)) == number + 1
                # a second abandoned job is replaced as well
                async with anyio.create_task_group() as group:
                    group.start_soon(executor.run_job, wait_for_release, make_job())
                    await anyio.sleep(0.05)
                    group.cancel_scope.cancel()
                assert await executor.run_job(add, make_job(2, 2)) == 4
    finally:
        release.set()


async def test_a_job_cancelled_while_queued_never_starts() -> None:
    release = threading.Event()
    ran: list[str] = []

    def block() -> None:
        release.wait(10)

    def record() -> None:
        ran.append("ran")

    executor = ThreadPoolJobExecutor(max_workers=1)
    with anyio.fail_after(5):
        async with AsyncExitStack() as stack:
            await executor.start(stack)
            async with anyio.create_task_group() as group:
                group.start_soon(executor.run_job, block, make_job())
                await anyio.sleep(0.05)  # the only thread is busy
                with anyio.move_on_after(0.05):
                    await executor.run_job(record, make_job())  # waits in the queue
                release.set()
            assert await executor.run_job(add, make_job(1, 1)) == 2
    assert ran == []


def test_worker_counts_are_checked() -> None:
    with pytest.raises(ValueError, match="max_workers must be a positive integer, got 0"):
        ThreadPoolJobExecutor(max_workers=0)
    with pytest.raises(ValueError, match="max_workers must be a positive integer, got True"):
        ProcessPoolJobExecutor(max_workers=True)
    assert ThreadPoolJobExecutor(max_workers=3).max_workers == 3
    assert "max_workers=2" in repr(ProcessPoolJobExecutor(max_workers=2))


# ---- processes ------------------------------------------------------------------------


async def test_process_executor_runs_in_another_process_with_current_job() -> None:
    executor = ProcessPoolJobExecutor(max_workers=1)
    job = make_job()
    with anyio.fail_after(30):
        pid, job_id = await run(executor, process_info, job)
        assert await run(executor, add, make_job(4, 5, scale=2)) == 18
        with pytest.raises(ValueError, match="no good"):
            await run(executor, fail, make_job())
    assert pid != os.getpid()
    assert job_id == str(job.id)


async def poll_until(condition: Callable[[], bool]) -> None:
    """Poll *condition*, for what another process does (no event can tell us)."""
    while not condition():  # noqa: ASYNC110 - the condition is outside this process
        await anyio.sleep(0.01)


async def test_the_scheduler_runs_jobs_in_the_process_pool() -> None:
    with anyio.fail_after(30):
        async with AsyncScheduler() as scheduler:
            await scheduler.start_in_background()
            value = await scheduler.run_job(add, args=[1, 2], job_executor="processpool")
            await scheduler.configure_task(process_info, job_executor="processpool")
            pid, _ = await scheduler.run_job(process_info)
    assert value == 3
    assert pid != os.getpid()


def _process_state(pid: int) -> str | None:
    """The state letter of *pid* in /proc (``Z`` for a zombie), ``None`` if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    for line in status.splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return None


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
async def test_a_cancelled_process_job_kills_its_worker(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    executor = ProcessPoolJobExecutor(max_workers=1)
    with anyio.fail_after(30):
        async with AsyncExitStack() as stack:
            await executor.start(stack)
            async with anyio.create_task_group() as group:
                group.start_soon(executor.run_job, write_pid_and_hang, make_job(str(pid_file)))
                await poll_until(lambda: pid_file.exists() and bool(pid_file.read_text()))
                group.cancel_scope.cancel()
            pid = int(pid_file.read_text())
            await poll_until(lambda: _process_state(pid) in (None, "Z"))
