"""Quickstart: the APScheduler 3 seed example on horae, in about 12 seconds.

Three schedules, each printing its mode and the time:

* a cron schedule (the seed used ``hour="*/2", minute=1``; here every 5 seconds),
* an interval schedule, every 3 seconds,
* a date schedule that, 8 seconds after the start, removes the cron schedule.

A last date schedule stops the scheduler after 12 seconds; then the events the scheduler
published are summed up. Run it with ``python examples/quickstart.py``.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta

from horae import Scheduler, events

scheduler = Scheduler()


def print_time(mode: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S"), f"mode: {mode}")


def clear_job(schedule_id: str) -> None:
    # Jobs run on worker threads, and the sync Scheduler can be called from there.
    scheduler.remove_schedule(schedule_id)
    print(time.strftime("%Y-%m-%d %H:%M:%S"), f"{schedule_id} was removed")


def stop() -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S"), "stopping")
    scheduler.stop()


def show(event: events.Event) -> None:
    # Event callbacks run on the scheduler's event loop thread: keep them quick.
    if isinstance(event, (events.ScheduleAdded, events.ScheduleRemoved)):
        print(f"  event: {type(event).__name__} {event.schedule_id!r}")


def main() -> None:
    seen: Counter[str] = Counter()
    scheduler.subscribe(lambda event: seen.update([type(event).__name__]))
    scheduler.subscribe(show, [events.ScheduleAdded, events.ScheduleRemoved])

    start = datetime.now().astimezone()  # noqa: TID251 - user code may read the wall clock
    scheduler.add_schedule(print_time, "cron", second="*/5", args=["cron"], id="cron_job")
    scheduler.add_schedule(print_time, "interval", seconds=3, args=["interval"], id="interval_job")
    scheduler.add_schedule(
        clear_job, "date", run_time=start + timedelta(seconds=8), args=["cron_job"],
        id="date_job",
    )  # fmt: skip
    scheduler.add_schedule(stop, "date", run_time=start + timedelta(seconds=12), id="stop")

    scheduler.run_until_stopped()  # blocks, like APScheduler 3's BlockingScheduler.start()

    print("events seen:")
    for name, count in sorted(seen.items()):
        print(f"  {name}: {count}")


if __name__ == "__main__":
    main()
