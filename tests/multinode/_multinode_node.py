"""One scheduler node of the multi-node tests (run as a script, one process per node).

Usage: ``python _multinode_node.py CONFIG_JSON``, where the JSON object says::

    {"identity": "node-1", "role": "both" | "scheduler" | "worker",
     "store": {"kind": "sqlite", "path": ...} | {"kind": "postgres", "dsn", "schema"}
              | {"kind": "redis", "url", "prefix"} | {"kind": "mongodb", "uri", "database"},
     "broker": {"kind": "local"} | {"kind": "postgres", "dsn", "channel", "schema"}
               | {"kind": "redis", "url", "channel"},
     "lease_seconds": 2.0, "max_concurrent_jobs": 100, "clock_offset": 0.0,
     "events": "path of this node's event log"}

The node runs an :class:`~horae.AsyncScheduler` until it gets SIGTERM (then it stops
gracefully) or SIGKILL (the failover tests). Jobs append to the file named by
``HORAE_MULTINODE_LOG`` (see ``_multinode_jobs``). The node appends one JSON line per
``JobReleased`` it *receives* to its event log (``{"kind": "released", ...}``), one per
``ScheduleFireSkipped`` (``"skipped"``) and per ``JobCancellationRequested``
(``"cancel_requested"``), plus ``{"kind": "ready"}`` once it runs,
``{"kind": "broker", "connected": bool}`` whenever its broker's connection state
changes, and ``{"kind": "stopped"}`` at a clean exit.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio

from horae import AsyncScheduler, SchedulerRole
from horae._clock import Clock, SystemClock
from horae.datastores._base import DataStore
from horae.eventbrokers._base import EventBroker
from horae.events import JobCancellationRequested, JobReleased, ScheduleFireSkipped

#: How often the node samples its broker's ``connected`` flag (seconds).
BROKER_SAMPLE_INTERVAL = 0.1


class OffsetClock(Clock):
    """The system clock moved by a fixed offset: a node whose clock is off."""

    __slots__ = ("_base", "_offset")

    def __init__(self, offset: timedelta) -> None:
        self._base = SystemClock()
        self._offset = offset

    def now(self) -> datetime:
        return self._base.now() + self._offset

    async def sleep_until(self, deadline: datetime) -> None:
        await self._base.sleep_until(deadline - self._offset)


def make_store(spec: dict[str, Any]) -> DataStore:
    """The data store that *spec* describes (see the module docstring)."""
    kind = spec["kind"]
    if kind == "sqlite":
        from horae.datastores.sqlite import SQLiteDataStore

        return SQLiteDataStore(spec["path"])
    if kind == "postgres":
        from horae.datastores.postgres import PostgresDataStore

        return PostgresDataStore(spec["dsn"], spec["schema"])
    if kind == "redis":
        from horae.datastores.redis import RedisDataStore

        return RedisDataStore(spec["url"], spec["prefix"])
    if kind == "mongodb":
        from horae.datastores.mongodb import MongoDBDataStore

        return MongoDBDataStore(spec["uri"], spec["database"])
    raise ValueError(f"unknown store kind {kind!r}")


def make_broker(spec: dict[str, Any]) -> EventBroker:
    """The event broker that *spec* describes (see the module docstring)."""
    kind = spec["kind"]
    if kind == "local":
        from horae.eventbrokers.local import LocalEventBroker

        return LocalEventBroker()
    if kind == "postgres":
        from horae.eventbrokers.postgres import PostgresEventBroker

        return PostgresEventBroker(
            spec["dsn"], spec["channel"], schema=spec["schema"], reconnect_delay=0.2
        )
    if kind == "redis":
        from horae.eventbrokers.redis import RedisEventBroker

        return RedisEventBroker(spec["url"], spec["channel"], reconnect_delay=0.2)
    raise ValueError(f"unknown broker kind {kind!r}")


class EventLog:
    """Appends JSON lines to a file, one ``os.write`` each (they survive ``kill -9``)."""

    def __init__(self, path: str) -> None:
        self._descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, **fields: Any) -> None:
        fields["t"] = time.monotonic()
        os.write(self._descriptor, (json.dumps(fields) + "\n").encode())

    def on_released(self, event: JobReleased) -> None:
        fire = event.scheduled_fire_time
        self.write(
            kind="released",
            job=str(event.job_id),
            schedule=event.schedule_id,
            fire=None if fire is None else fire.astimezone(timezone.utc).isoformat(),
            outcome=event.outcome.value,
            holder=event.scheduler_id,
            attempt=event.attempt,
            retry_at=None if event.retry_at is None else event.retry_at.isoformat(),
        )

    def on_skipped(self, event: ScheduleFireSkipped) -> None:
        self.write(
            kind="skipped",
            schedule=event.schedule_id,
            fire=event.fire_time.astimezone(timezone.utc).isoformat(),
            reason=event.reason,
        )

    def on_cancel_requested(self, event: JobCancellationRequested) -> None:
        self.write(
            kind="cancel_requested",
            job=str(event.job_id),
            schedule=event.schedule_id,
            holder=event.scheduler_id,
        )


async def watch_broker(broker: EventBroker, log: EventLog) -> None:
    """Log every change of the broker's connection state (sampled)."""
    connected = broker.connected
    while True:
        await anyio.sleep(BROKER_SAMPLE_INTERVAL)
        if broker.connected != connected:
            connected = broker.connected
            log.write(kind="broker", connected=connected)


async def main(config: dict[str, Any]) -> None:
    log = EventLog(config["events"])
    broker = make_broker(config["broker"])
    offset = timedelta(seconds=config.get("clock_offset", 0.0))
    scheduler = AsyncScheduler(
        make_store(config["store"]),
        broker,
        identity=config["identity"],
        role=SchedulerRole(config.get("role", "both")),
        max_concurrent_jobs=config.get("max_concurrent_jobs", 100),
        lease_duration=timedelta(seconds=config["lease_seconds"]),
        clock=OffsetClock(offset) if offset else SystemClock(),
        stop_grace_period=timedelta(seconds=config.get("stop_grace_seconds", 2.0)),
    )
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        async with scheduler, anyio.create_task_group() as group:
            scheduler.subscribe(log.on_released, JobReleased)
            scheduler.subscribe(log.on_skipped, ScheduleFireSkipped)
            scheduler.subscribe(log.on_cancel_requested, JobCancellationRequested)
            await scheduler.start_in_background()
            group.start_soon(watch_broker, broker, log)
            log.write(kind="ready", connected=broker.connected)
            async for _ in signals:
                break
            await scheduler.stop()
            await scheduler.wait_until_stopped()
            group.cancel_scope.cancel()
    log.write(kind="stopped")


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
    anyio.run(main, json.loads(Path(sys.argv[1]).read_text()))
