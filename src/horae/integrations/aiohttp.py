"""aiohttp: run a scheduler for as long as a ``web.Application`` runs.

::

    from aiohttp import web
    from horae.integrations.aiohttp import SCHEDULER_KEY, scheduler_ctx

    scheduler = AsyncScheduler(SQLiteDataStore("app.sqlite3"))
    app = web.Application()
    app.cleanup_ctx.append(scheduler_ctx(scheduler))

    async def schedule_report(request: web.Request) -> web.Response:
        scheduler = request.app[SCHEDULER_KEY]
        schedule_id = await scheduler.add_schedule(make_report, "cron", hour=6)
        return web.json_response({"schedule": schedule_id})
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from horae._scheduler import AsyncScheduler

from ._service import check_scheduler, scheduler_service

__all__ = ["SCHEDULER_KEY", "scheduler_ctx"]

#: Where :func:`scheduler_ctx` puts the scheduler: ``request.app[SCHEDULER_KEY]``.
SCHEDULER_KEY = web.AppKey("horae_scheduler", AsyncScheduler)


def scheduler_ctx(
    scheduler: AsyncScheduler,
    *,
    start: bool = True,
    app_key: web.AppKey[AsyncScheduler] = SCHEDULER_KEY,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry that runs *scheduler* while the application runs.

    On startup it enters the scheduler's services (stores, broker, executors), starts
    its processing if ``start`` is true, and stores it as ``app[app_key]``; on cleanup
    it stops it (running jobs get the scheduler's stop grace period). A store that
    cannot be reached fails the application's startup with its error.

    Args:
        scheduler: the AsyncScheduler (a web app needs the async one).
        start: also start processing; with ``False`` only its services run (the app
            manages schedules, other processes run the jobs).
        app_key: the application key to store it under.

    Raises:
        TypeError: for anything but an AsyncScheduler.
    """
    checked = check_scheduler(scheduler)

    async def run_scheduler(app: web.Application) -> AsyncIterator[None]:
        async with scheduler_service(checked, start=start) as running:
            app[app_key] = running
            yield

    return run_scheduler
