"""horae.integrations.aiohttp: a scheduler in an aiohttp application's cleanup_ctx,
served over a real socket; a schedule added from a handler fires."""

from __future__ import annotations

import anyio
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from horae import AsyncScheduler, RunState
from horae.integrations.aiohttp import SCHEDULER_KEY, scheduler_ctx

pytestmark = pytest.mark.anyio
TIMEOUT = 15
FIRED: list[str] = []


async def record(name: str) -> None:
    """The job: note that it ran."""
    FIRED.append(name)


async def add(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER_KEY]
    schedule_id = await scheduler.add_schedule(
        record, "interval", seconds=0.2, args=[request.match_info["name"]]
    )
    return web.json_response({"id": schedule_id})


async def fired(request: web.Request) -> web.Response:
    return web.json_response(FIRED)


async def test_cleanup_ctx_runs_a_schedule_added_by_a_request() -> None:
    FIRED.clear()
    scheduler = AsyncScheduler()
    app = web.Application()
    app.cleanup_ctx.append(scheduler_ctx(scheduler))
    app.router.add_post("/schedules/{name}", add)
    app.router.add_get("/fired", fired)
    with anyio.fail_after(TIMEOUT):
        async with TestServer(app, host="127.0.0.1") as server, ClientSession() as session:
            assert scheduler.state.value == "started"  # (not "is": mypy would narrow it)
            async with session.post(server.make_url("/schedules/aio")) as response:
                assert response.status == 200
            while True:
                async with session.get(server.make_url("/fired")) as response:
                    names = await response.json()
                if len(names) >= 2:
                    break
                await anyio.sleep(0.05)
            assert set(names) == {"aio"}
    assert scheduler.state is RunState.stopped


def test_only_an_async_scheduler_is_accepted() -> None:
    with pytest.raises(TypeError, match="expected an AsyncScheduler, not int"):
        scheduler_ctx(3)  # type: ignore[arg-type]
