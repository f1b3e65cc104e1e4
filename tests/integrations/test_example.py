"""examples/fastapi_app.py: served by uvicorn, it keeps its declared schedule, runs a
schedule added over HTTP, and reports the fires at /metrics."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from _servers import uvicorn_serving

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).parents[2] / "examples"
TIMEOUT = 15


def successes(metrics_text: str, task: str) -> float:
    pattern = rf'horae_jobs_total{{outcome="success",task="{re.escape(task)}"}} (\S+)'
    match = re.search(pattern, metrics_text)
    return float(match.group(1)) if match else 0.0


async def test_the_fastapi_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HORAE_EXAMPLE_DB", str(tmp_path / "example.sqlite3"))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("fastapi_app", None)
    example = importlib.import_module("fastapi_app")
    with anyio.fail_after(TIMEOUT):
        async with (
            uvicorn_serving(example.app) as url,
            httpx.AsyncClient(base_url=url, follow_redirects=True) as client,
        ):
            added = (await client.post("/heartbeats", params={"seconds": 0.2})).json()
            schedules = {s["id"]: s for s in (await client.get("/schedules")).json()}
            assert set(schedules) == {"daily-report", added["schedule_id"]}
            assert schedules["daily-report"]["trigger"] == "0 30 7 * * *"
            # polling the endpoint is the point: it is what a Prometheus server does
            while successes((await client.get("/metrics")).text, "fastapi_app:heartbeat") < 2:  # noqa: ASYNC110
                await anyio.sleep(0.05)
            text = (await client.get("/metrics")).text
            assert 'horae_fire_lag_seconds_count{task="fastapi_app:heartbeat"}' in text
            assert 'horae_store_operation_duration_seconds_count{operation="acquire_jobs"' in text
            removed = await client.delete(f"/schedules/{added['schedule_id']}")
            assert removed.status_code == 200
            assert (await client.delete("/schedules/nope")).status_code == 404
