"""Node-side helpers of the job-control multi-node tests (``test_job_control_nodes``):
the schedules that the ``sync_schedules`` processes declare, their job function, and the
sync process itself (run as a script, several at once).

Usage: ``python _job_control_node.py CONFIG_JSON``, where the JSON object says::

    {"identity": "sync-1", "store": {...as _multinode_node takes it...},
     "directory": "where the barrier and result files live", "versions": [1, 2]}

For each version in ``versions`` the process writes ``<identity>.ready<version>``,
waits until the test creates ``go<version>`` (a barrier: every process then syncs at
nearly the same moment), calls ``sync_schedules(declared(version))`` and writes the
:class:`~horae.SyncResult` to ``<identity>.result<version>`` as JSON (written to a
temporary name first, then renamed, so the test never reads half a file). An
exception is written as ``{"error": "..."}`` instead, and the process exits non-zero.
The scheduler is entered but never started: syncing is what a deployment does before
it starts, and nothing here may fire.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import attrs

from horae import AsyncScheduler, RetryPolicy, ScheduleSpec
from horae.triggers import CalendarIntervalTrigger, CronTrigger, DateTrigger, IntervalTrigger

#: Far enough ahead that nothing the tests declare fires while they run.
FAR = datetime(2099, 1, 1, tzinfo=timezone.utc)
#: Declared schedules that version 2 changes, and how (see :func:`declared`).
KWARGS_CHANGED = "kwargs-changed"  # same cron trigger, new kwargs
DRIFTING_CHANGED = "interval-no-start-changed"  # interval without a start time, new kwargs
POLICY_CHANGED = "policy-changed"  # same trigger, new overlap and retry policies
TRIGGER_CHANGED = "trigger-changed"  # a new date
CHANGED = (KWARGS_CHANGED, DRIFTING_CHANGED, POLICY_CHANGED, TRIGGER_CHANGED)
#: Changed declarations whose trigger is the same: their next fire time must be kept.
SAME_TRIGGER = (KWARGS_CHANGED, DRIFTING_CHANGED, POLICY_CHANGED)
#: The date that version *n* of ``TRIGGER_CHANGED`` fires at.
TRIGGER_DATES = {1: FAR + timedelta(days=10), 2: FAR + timedelta(days=20)}


async def noop(*args: Any, **kwargs: Any) -> None:
    """The job of every declared schedule (none runs: nothing is started)."""


def declared(version: int) -> list[ScheduleSpec]:
    """The schedules a deployment declares, in *version* 1 or 2.

    Made anew on each call, as a process would at its start: the interval triggers
    without a start time start at that moment, so every process declares a slightly
    different one (``sync_schedules`` must count them as the same). The unchanged
    specs use every field that a store has to round-trip for the comparison to hold
    (args, kwargs, metadata, policies, durations, several trigger kinds).
    """
    steady = [
        ScheduleSpec(
            id="steady-cron", func=noop, trigger=CronTrigger(minute="*/7", timezone="UTC")
        ),
        ScheduleSpec(
            id="steady-args", func=noop, trigger=IntervalTrigger(hours=5, start_time=FAR),
            args=(1, "two", [3.5, None], {"k": True}),
        ),
        ScheduleSpec(
            id="steady-policies", func=noop, trigger=CronTrigger(hour=4, timezone="UTC"),
            retry=RetryPolicy(max_attempts=4, backoff=timedelta(seconds=3), jitter=False),
            overlap="buffer_one", job_timeout=90, misfire_grace_time=30, max_jitter=5,
            max_running_jobs=2, job_result_expiration_time=600, coalesce="all",
            max_catchup=3, metadata={"team": "ops", "tags": ["a", "b"], "n": 1},
        ),
        ScheduleSpec(id="steady-no-start", func=noop, trigger=IntervalTrigger(minutes=30)),
        ScheduleSpec(id="steady-calendar", func=noop, trigger=CalendarIntervalTrigger(days=1)),
        ScheduleSpec(id="steady-date", func=noop, trigger=DateTrigger(FAR)),
        ScheduleSpec(
            id="steady-crontab", func=noop, trigger="cron",
            trigger_args={"day_of_week": "mon-fri", "hour": 6, "timezone": "Europe/Paris"},
        ),
    ]  # fmt: skip
    steady += [
        ScheduleSpec(
            id=f"steady-{number:02}", func=noop,
            trigger=CronTrigger(minute=number, timezone="UTC"), kwargs={"n": number},
        )
        for number in range(12)
    ]  # fmt: skip
    changing = [
        ScheduleSpec(
            id=KWARGS_CHANGED, func=noop, trigger=CronTrigger(hour=3, timezone="UTC"),
            kwargs={"version": version},
        ),
        ScheduleSpec(
            id=DRIFTING_CHANGED, func=noop, trigger=IntervalTrigger(hours=1),
            kwargs={"version": version},
        ),
        ScheduleSpec(
            id=POLICY_CHANGED, func=noop, trigger=IntervalTrigger(hours=2, start_time=FAR),
            overlap="allow" if version == 1 else "skip",
            retry=None if version == 1 else RetryPolicy(max_attempts=2, jitter=False),
        ),
        ScheduleSpec(id=TRIGGER_CHANGED, func=noop, trigger=DateTrigger(TRIGGER_DATES[version])),
    ]  # fmt: skip
    return steady + changing


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data))
    temporary.replace(path)


async def _barrier(path: Path) -> None:
    barrier = anyio.Path(path)
    while not await barrier.exists():  # noqa: ASYNC110 - another process creates it
        await anyio.sleep(0.002)


async def main(config: dict[str, Any]) -> int:
    from _multinode_node import make_store

    identity = config["identity"]
    directory = Path(config["directory"])
    async with AsyncScheduler(make_store(config["store"]), identity=identity) as scheduler:
        for version in config["versions"]:
            (directory / f"{identity}.ready{version}").touch()
            await _barrier(directory / f"go{version}")
            result_path = directory / f"{identity}.result{version}"
            try:
                result = await scheduler.sync_schedules(declared(version))
            except Exception:
                _write_atomically(result_path, {"error": traceback.format_exc()})
                return 1
            _write_atomically(
                result_path, {key: list(value) for key, value in attrs.asdict(result).items()}
            )
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
    sys.exit(anyio.run(main, json.loads(Path(sys.argv[1]).read_text())))
