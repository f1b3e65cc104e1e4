"""Job functions of the scheduler and store benchmarks.

They live in a module of their own so that both systems store them by reference
(``"_jobs:noop_async"``), as the persistent stores require. The ``record_*`` jobs note,
inside the job itself, when the job body ran and which fire time it was made for; the
latency benchmark computes lateness from that (actual start - scheduled fire time), the
same way for horae and for APScheduler 4.
"""

from __future__ import annotations

import time
from datetime import datetime

#: (schedule id, scheduled fire time as a POSIX timestamp, time.time() in the job)
RECORDS: list[tuple[str, float, float]] = []


async def noop_async() -> None:
    """A coroutine job that does nothing."""


def noop_sync() -> None:
    """A plain-function job that does nothing (runs on the thread pool)."""


def _record(schedule_id: str | None, fire_time: datetime | None) -> None:
    started = time.time()  # noqa: TID251 - the benchmark reads the wall clock
    if schedule_id is not None and fire_time is not None:
        RECORDS.append((schedule_id, fire_time.timestamp(), started))


async def record_horae() -> None:
    """A coroutine job that records its start time and fire time (horae)."""
    from horae import current_job

    job = current_job.get()
    _record(job.schedule_id, job.scheduled_fire_time)


async def record_apscheduler4() -> None:
    """A coroutine job that records its start time and fire time (APScheduler 4)."""
    from apscheduler import current_job

    job = current_job.get()
    _record(job.schedule_id, job.scheduled_fire_time)
