"""Microseconds per ``next()`` of cron triggers: horae vs APScheduler 4, croniter, cronsim.

All four run in the same process on the same expressions, zones and start time. Each
library is asked for successive fire times the way it is used in a scheduler: horae's
pure ``next(previous)``, APScheduler 4's stateful ``next()``, croniter's ``get_next``,
cronsim's iterator. Run with ``bash benchmarks/run.sh triggers`` (it makes the
environment with APScheduler 4.0.0a6 and anyio 4.13.0).
"""

from __future__ import annotations

import argparse
import platform
import statistics
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from _common import TIMES, best_of, load_average, machine_summary, per_call, print_table
from horae.triggers import CronTrigger

EXPRESSIONS = [
    "* * * * *",
    "*/5 * * * *",
    "*/10 * * * *",
    "10,40 * * * *",
    "0 * * * *",
    "0 0 * * *",
    "30 2 * * *",
    "0 9 * * 1-5",
    "*/15 9-17 * * 1-5",
    "0 8-18/2 * * *",
    "23 0-20/2 * * *",
    "0 22 * * 1-5",
    "45 23 * * 6",
    "5 4 * * 0",
    "0 3 * * 1",
    "0 0 1 * *",
    "15 14 1 * *",
    "0 4 8-14 * *",
    "0 0,12 1 */2 *",
    "0 0 1 1 *",
]
ZONES = ["UTC", "Europe/Berlin"]
START = datetime(2026, 1, 1, 0, 0, 30)


def horae_runner(expr: str, zone: str, calls: int) -> Callable[[], float]:
    trigger = CronTrigger.from_crontab(expr, timezone=zone)
    start = START.replace(tzinfo=ZoneInfo(zone))

    def run() -> float:
        state = [start]

        def step() -> None:
            state[0] = trigger.next(state[0])  # type: ignore[assignment]

        return per_call(calls, step)

    return run


def apscheduler4_runner(expr: str, zone: str, calls: int) -> Callable[[], float]:
    from apscheduler.triggers.cron import CronTrigger as APSCronTrigger

    start = START.replace(tzinfo=ZoneInfo(zone))

    def run() -> float:
        trigger = APSCronTrigger.from_crontab(expr, timezone=zone)
        trigger.start_time = start
        return per_call(calls, trigger.next)

    return run


def croniter_runner(expr: str, zone: str, calls: int) -> Callable[[], float]:
    from croniter import croniter

    start = START.replace(tzinfo=ZoneInfo(zone))

    def run() -> float:
        iterator = croniter(expr, start)
        return per_call(calls, lambda: iterator.get_next(datetime))

    return run


def cronsim_runner(expr: str, zone: str, calls: int) -> Callable[[], float]:
    from cronsim import CronSim

    start = START.replace(tzinfo=ZoneInfo(zone))

    def run() -> float:
        iterator = CronSim(expr, start)
        return per_call(calls, lambda: next(iterator))

    return run


SYSTEMS = {
    "horae": horae_runner,
    "APScheduler 4": apscheduler4_runner,
    "croniter": croniter_runner,
    "cronsim": cronsim_runner,
}


def calls_for(expr: str) -> int:
    # yearly expressions would run for centuries; keep every run within a few decades
    return 40 if expr.endswith("1 1 *") else 400 if " 1 " in f" {expr} " else 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer calls, for smoke runs")
    args = parser.parse_args()

    machine = machine_summary(["horae", "apscheduler", "croniter", "cronsim"])
    results: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    rows = []
    for zone in ZONES:
        for expr in EXPRESSIONS:
            calls = max(10, calls_for(expr) // (20 if args.quick else 1))
            row: list[object] = [f"`{expr}`", zone]
            for name, make in SYSTEMS.items():
                seconds = best_of(args.repeats, make(expr, zone, calls))
                results[name].append(seconds * 1e6)
                row.append(f"{seconds * 1e6:.2f}")
            rows.append(row)

    print(
        f"# cron next(): µs per call ({platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()})\n"
    )
    print(machine + "\n")
    print_table(["expression", "zone", *SYSTEMS], rows)
    print("\n## Medians over all expressions and zones\n")
    horae_median = statistics.median(results["horae"])
    summary = []
    for name, values in results.items():
        median = statistics.median(values)
        summary.append([name, f"{median:.2f}", f"{median / horae_median:.1f}{TIMES}"])
    print_table(["system", "median µs / next()", "horae is faster by"], summary)
    print(f"\nLoad average at the end (1/5/15 min): {load_average()}")


if __name__ == "__main__":
    main()
