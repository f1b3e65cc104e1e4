"""The job functions of the multi-node tests; every node imports them as
``_multinode_jobs:<name>``, so the tests' schedules refer to them by reference.

Each job *records* what happened, it never prevents anything: it appends one JSON line
per event to the file named by the ``HORAE_MULTINODE_LOG`` environment variable of its
process (one file per process, so lines never interleave). ``os.write`` on an
``O_APPEND`` descriptor puts the line into the kernel before the job goes on, so a line
survives ``kill -9`` of its process. A duplicate run of a fire is therefore two lines,
and the tests count them afterwards.

A line: ``{"kind": "start" | "end", "node": identity, "job": job id, "schedule": id,
"fire": scheduled fire time (UTC ISO), "t": time.monotonic(), "wall": seconds since
the epoch}``. ``time.monotonic`` is
``CLOCK_MONOTONIC``, one clock for every process on a Linux host, so the running
intervals of jobs on different nodes can be compared.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timezone

import anyio

from horae import current_job, current_scheduler, task

#: The environment variable naming the file that this process's jobs append to.
LOG_VARIABLE = "HORAE_MULTINODE_LOG"
#: At most this many ``limited`` jobs may run at once, on all nodes together.
LIMIT = 2
#: How long one ``limited`` job runs (seconds).
LIMITED_RUN = 0.4

_descriptors: dict[str, int] = {}


def _write(kind: str) -> None:
    path = os.environ[LOG_VARIABLE]
    descriptor = _descriptors.get(path)
    if descriptor is None:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _descriptors[path] = descriptor
    job = current_job.get()
    fire = job.scheduled_fire_time
    line = {
        "kind": kind,
        "node": current_scheduler.get().identity,
        "job": str(job.id),
        "schedule": job.schedule_id,
        "fire": None if fire is None else fire.astimezone(timezone.utc).isoformat(),
        "t": time.monotonic(),
        "wall": time.clock_gettime(time.CLOCK_REALTIME),
    }
    os.write(descriptor, (json.dumps(line) + "\n").encode())


async def record() -> None:
    """Record one execution and return."""
    _write("start")


async def hold(seconds: float) -> None:
    """Record the start, run for *seconds*, record the end (the long job that a killed
    node is running, and the jobs whose leases must be renewed)."""
    _write("start")
    await anyio.sleep(seconds)
    _write("end")


@task(max_running_jobs=LIMIT)
async def limited() -> None:
    """A job of a task that may run at most :data:`LIMIT` times at once, cluster-wide."""
    _write("start")
    await anyio.sleep(LIMITED_RUN)
    _write("end")
