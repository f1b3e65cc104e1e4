"""FastAPI, Starlette and other ASGI frameworks: run a scheduler in the app's lifespan.

::

    from fastapi import FastAPI, Request
    from horae import AsyncScheduler
    from horae.integrations.asgi import lifespan

    scheduler = AsyncScheduler(SQLiteDataStore("app.sqlite3"))
    app = FastAPI(lifespan=lifespan(scheduler))

    @app.post("/reports")
    async def schedule_report(request: Request) -> dict[str, str]:
        scheduler = request.state.scheduler     # or the module-level name
        schedule_id = await scheduler.add_schedule(make_report, "cron", hour=6)
        return {"schedule": schedule_id}

``lifespan(scheduler)`` is also an async context manager, to combine with other
resources in a lifespan of your own::

    @asynccontextmanager
    async def app_lifespan(app):
        async with database.connect(), lifespan(scheduler):
            yield

Nothing here imports a web framework: the lifespan protocol is plain ASGI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any

from horae._scheduler import AsyncScheduler

from ._service import check_scheduler, scheduler_service

__all__ = ["SchedulerLifespan", "lifespan"]


class SchedulerLifespan:
    """Runs a scheduler while an ASGI application runs (see :func:`lifespan`).

    Use it in one of two ways:

    * as the application's lifespan: ``FastAPI(lifespan=...)``,
      ``Starlette(lifespan=...)``. Called with the app, it gives a context that yields
      the lifespan state ``{state_key: scheduler}``, which Starlette and FastAPI copy
      into every ``request.state``;
    * as an async context manager (``async with``) inside a lifespan of your own; it
      yields the scheduler.

    Entering starts the scheduler's services (stores, broker, executors) and, if
    ``start`` is true, its processing; leaving stops it (running jobs get the
    scheduler's stop grace period) before the application finishes shutting down. A
    store that cannot be reached fails the application's startup with its error.
    """

    def __init__(
        self, scheduler: AsyncScheduler, *, start: bool = True, state_key: str = "scheduler"
    ) -> None:
        self._scheduler = check_scheduler(scheduler)
        self._start = bool(start)
        if not str(state_key).isidentifier():
            raise ValueError(f"state_key must be a Python identifier, not {state_key!r}")
        self._state_key = state_key
        self._entered: AbstractAsyncContextManager[AsyncScheduler] | None = None

    @property
    def scheduler(self) -> AsyncScheduler:
        """The scheduler this lifespan runs."""
        return self._scheduler

    def __call__(self, app: object) -> AbstractAsyncContextManager[Mapping[str, Any]]:
        """The lifespan context for *app* (the ``lifespan=`` form)."""
        return self._with_state()

    @asynccontextmanager
    async def _with_state(self) -> AsyncIterator[Mapping[str, Any]]:
        async with scheduler_service(self._scheduler, start=self._start) as scheduler:
            yield {self._state_key: scheduler}

    async def __aenter__(self) -> AsyncScheduler:
        if self._entered is not None:
            raise RuntimeError("this SchedulerLifespan is already entered")
        entered = scheduler_service(self._scheduler, start=self._start)
        scheduler = await entered.__aenter__()
        self._entered = entered
        return scheduler

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        entered, self._entered = self._entered, None
        if entered is not None:
            await entered.__aexit__(exc_type, exc_value, traceback)


def lifespan(
    scheduler: AsyncScheduler, *, start: bool = True, state_key: str = "scheduler"
) -> SchedulerLifespan:
    """Run *scheduler* for as long as an ASGI application runs.

    Args:
        scheduler: the AsyncScheduler (a web app needs the async one).
        start: also start processing (turning schedules into jobs and running them).
            With ``False`` only its services run: the app can add, change and read
            schedules while other processes (``horae run``) run the jobs.
        state_key: the name under which the scheduler appears in ``request.state``.

    Returns:
        A :class:`SchedulerLifespan`: pass it as ``lifespan=`` to FastAPI or Starlette,
        or ``async with`` it inside your own lifespan.

    Raises:
        TypeError: for anything but an AsyncScheduler.
    """
    return SchedulerLifespan(scheduler, start=start, state_key=state_key)
