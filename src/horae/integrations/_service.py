"""The scheduler as an application service: started with the application, stopped with it.

Frameworks enter and leave their startup/cleanup hooks in ways that do not always keep
to one task (aiohttp's ``cleanup_ctx`` generators, pytest fixtures), while the
scheduler's services live in an anyio task group that must be left by the task that
entered it. So :func:`scheduler_service` runs the scheduler in an asyncio task of its
own and only talks to that task: whichever task starts or stops the service, the
scheduler is entered and left in the same one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from horae._scheduler import AsyncScheduler


def check_scheduler(scheduler: Any) -> AsyncScheduler:
    """*scheduler* if it is an AsyncScheduler; a TypeError that says what to use if not."""
    if isinstance(scheduler, AsyncScheduler):
        return scheduler
    from horae._sync import Scheduler

    if isinstance(scheduler, Scheduler):
        raise TypeError(
            "web applications run on an event loop: give the AsyncScheduler, not the "
            "(sync) Scheduler; create AsyncScheduler(...) with the same arguments"
        )
    raise TypeError(f"expected an AsyncScheduler, not {type(scheduler).__name__}")


@asynccontextmanager
async def scheduler_service(
    scheduler: AsyncScheduler, *, start: bool = True
) -> AsyncIterator[AsyncScheduler]:
    """Enter *scheduler* (and start processing when *start*) for the duration of the
    ``async with`` block, in a task of its own.

    Leaving the block stops the scheduler (running jobs get its stop grace period) and
    closes its services. An error while starting (a store that cannot be reached) is
    raised from ``async with``; an error that ends the scheduler later is raised when
    the block is left.
    """
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    leave = asyncio.Event()

    async def serve() -> None:
        async with scheduler:
            if start:
                await scheduler.start_in_background()
            ready.set_result(None)
            await leave.wait()

    task = loop.create_task(serve(), name=f"horae scheduler {scheduler.identity}")
    try:
        await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():  # serve() ended before it was ready: it failed to start
            ready.cancel()
            task.result()  # raises what stopped it
            raise RuntimeError("the scheduler stopped while starting")
    except BaseException:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    try:
        yield scheduler
    finally:
        leave.set()
        # Not cancellable: an interrupted shutdown would leave leases held until they
        # expire; the scheduler bounds it by its stop grace period.
        await asyncio.shield(task)
