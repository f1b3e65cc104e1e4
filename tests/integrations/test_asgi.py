"""horae.integrations.asgi: a scheduler in the lifespan of FastAPI and Starlette apps,
served by uvicorn over a real socket; schedules added from request handlers fire."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from _servers import uvicorn_serving
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from horae import AsyncScheduler, DataStoreError, RunState, Scheduler
from horae.datastores.sqlite import SQLiteDataStore
from horae.integrations.asgi import lifespan

pytestmark = pytest.mark.anyio
TIMEOUT = 15

FIRED: list[str] = []


async def record(name: str) -> None:
    """The job: note that it ran."""
    FIRED.append(name)


async def wait_until(client: httpx.AsyncClient, url: str, count: int) -> list[str]:
    while True:
        fired: list[str] = (await client.get(url)).json()
        if len(fired) >= count:
            return fired
        await anyio.sleep(0.05)


def fastapi_app(scheduler: AsyncScheduler) -> FastAPI:
    app = FastAPI(lifespan=lifespan(scheduler))

    @app.post("/schedules/{name}")
    async def add(name: str, request: Request) -> dict[str, str]:
        running: AsyncScheduler = request.state.scheduler
        schedule_id = await running.add_schedule(
            record, "interval", seconds=0.2, id=name, args=[name]
        )
        return {"id": schedule_id}

    @app.get("/fired")
    async def fired() -> list[str]:
        return FIRED

    return app


async def test_fastapi_lifespan_runs_a_persistent_schedule_added_by_a_request(
    tmp_path: Path,
) -> None:
    FIRED.clear()
    scheduler = AsyncScheduler(SQLiteDataStore(tmp_path / "app.sqlite3"))
    with anyio.fail_after(TIMEOUT):
        async with uvicorn_serving(fastapi_app(scheduler)) as url, httpx.AsyncClient() as client:
            assert scheduler.state.value == "started"  # (not "is": mypy would narrow it)
            response = await client.post(f"{url}/schedules/ping")
            assert response.json() == {"id": "ping"}
            fired = await wait_until(client, f"{url}/fired", 2)
            assert set(fired) == {"ping"}
        # the app's shutdown stopped the scheduler
        assert scheduler.state is RunState.stopped
    # the schedule was stored in the file and is still there
    async with AsyncScheduler(SQLiteDataStore(tmp_path / "app.sqlite3")) as reopened:
        assert [s.id for s in await reopened.get_schedules()] == ["ping"]


async def test_starlette_with_lifespan_inside_the_apps_own() -> None:
    FIRED.clear()
    scheduler = AsyncScheduler()
    events: list[str] = []

    @asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("app up")
        async with lifespan(scheduler) as running:
            assert running is scheduler
            yield
        events.append("scheduler down")

    async def add(request: StarletteRequest) -> JSONResponse:
        await scheduler.add_schedule(record, "interval", seconds=0.2, args=["starlette"])
        return JSONResponse({"ok": True})

    async def fired(request: StarletteRequest) -> JSONResponse:
        return JSONResponse(FIRED)

    app = Starlette(
        routes=[Route("/add", add, methods=["POST"]), Route("/fired", fired)],
        lifespan=app_lifespan,
    )
    with anyio.fail_after(TIMEOUT):
        async with uvicorn_serving(app) as url, httpx.AsyncClient() as client:
            await client.post(f"{url}/add")
            assert set(await wait_until(client, f"{url}/fired", 2)) == {"starlette"}
    assert events == ["app up", "scheduler down"]
    assert scheduler.state is RunState.stopped


async def test_start_false_runs_only_the_services() -> None:
    scheduler = AsyncScheduler()
    with anyio.fail_after(TIMEOUT):
        async with lifespan(scheduler, start=False):
            assert scheduler.state is RunState.stopped
            await scheduler.add_schedule(record, "interval", seconds=60, id="x")
            assert [s.id for s in await scheduler.get_schedules()] == ["x"]


async def test_a_store_that_cannot_start_fails_the_startup(tmp_path: Path) -> None:
    scheduler = AsyncScheduler(SQLiteDataStore(tmp_path))  # a directory, not a file
    with anyio.fail_after(TIMEOUT), pytest.raises(DataStoreError, match="cannot open"):
        async with lifespan(scheduler):
            pass
    assert scheduler.state is RunState.stopped


def test_only_an_async_scheduler_is_accepted() -> None:
    with pytest.raises(TypeError, match="give the AsyncScheduler, not the"):
        lifespan(Scheduler())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected an AsyncScheduler, not str"):
        lifespan("scheduler")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="state_key must be a Python identifier"):
        lifespan(AsyncScheduler(), state_key="not an identifier")


logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
