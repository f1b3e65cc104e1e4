"""A FastAPI service with a persistent schedule and a Prometheus ``/metrics`` endpoint.

Install and run (from the repository root)::

    pip install "horae[prometheus]" fastapi uvicorn
    uvicorn examples.fastapi_app:app

Then add a schedule from a request, watch it fire, and read the metrics::

    curl -X POST 'http://127.0.0.1:8000/heartbeats?seconds=5'
    curl http://127.0.0.1:8000/schedules
    curl -L http://127.0.0.1:8000/metrics     # mounted app: /metrics redirects to /metrics/

Schedules live in ``horae-example.sqlite3`` (or the file named by ``HORAE_EXAMPLE_DB``),
so they survive restarts; several copies of the app can share the file and each fire
still runs once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from prometheus_client import make_asgi_app

from horae import AsyncScheduler, ScheduleLookupError
from horae.datastores.sqlite import SQLiteDataStore
from horae.integrations.asgi import lifespan as horae_lifespan
from horae.metrics import Metrics
from horae.metrics.prometheus import register_metrics

logger = logging.getLogger("example")
DATABASE = os.environ.get("HORAE_EXAMPLE_DB", "horae-example.sqlite3")


async def send_report(kind: str) -> None:
    """The job of the schedule declared below."""
    logger.info("Sending the %s report", kind)


async def heartbeat() -> None:
    """The job of the schedules that ``POST /heartbeats`` adds."""
    logger.info("Still alive")


# Wrapping the store feeds the metrics; the registry serves them at /metrics.
metrics = Metrics()
register_metrics(metrics)
scheduler = AsyncScheduler(metrics.instrument(SQLiteDataStore(DATABASE)))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the scheduler for as long as the app runs, with the declared schedules."""
    async with horae_lifespan(scheduler):
        # A fixed id and "replace": every start (and every copy of the app) keeps exactly
        # one such schedule, updated to what this code says.
        await scheduler.add_schedule(
            send_report, "cron", hour=7, minute=30, id="daily-report", args=["daily"],
            conflict_policy="replace",
        )  # fmt: skip
        yield


app = FastAPI(title="horae example", lifespan=lifespan)
app.mount("/metrics", make_asgi_app())


@app.post("/heartbeats")
async def add_heartbeat(seconds: float = 60) -> dict[str, str]:
    """Schedule a heartbeat every *seconds*."""
    schedule_id = await scheduler.add_schedule(heartbeat, "interval", seconds=seconds)
    return {"schedule_id": schedule_id}


@app.get("/schedules")
async def list_schedules() -> list[dict[str, Any]]:
    """Every schedule with its next fire time."""
    return [
        {
            "id": schedule.id,
            "task": schedule.task_id,
            "trigger": str(schedule.trigger),
            "next_fire_time": schedule.next_fire_time,
            "paused": schedule.paused,
        }
        for schedule in await scheduler.get_schedules()
    ]


@app.delete("/schedules/{schedule_id}")
async def remove_schedule(schedule_id: str) -> dict[str, str]:
    """Remove a schedule."""
    try:
        await scheduler.remove_schedule(schedule_id)
    except ScheduleLookupError:
        raise HTTPException(status_code=404, detail=f"no schedule {schedule_id!r}") from None
    return {"removed": schedule_id}


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(app)
