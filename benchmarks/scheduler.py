"""The scheduler core on the memory store: horae vs APScheduler 4.0.0a6 (issue 3).

Three scenarios, each run for each system in a fresh child process (a fresh interpreter
and event loop, so neither system warms up or slows down the other):

* **burst**: N jobs are added with ``add_job`` while the scheduler is entered but not
  started; then the clock starts, the scheduler starts, and the clock stops at the
  N-th ``JobReleased`` event. Once with a no-op ``async def`` (the async executor), once
  with a no-op plain function (the thread pool). Reported: jobs/s.
* **latency**: N interval schedules firing every second, their start times staggered
  evenly over one second, run for D seconds. Each job records, inside its body, when it
  ran and which fire time it was made for; lateness = run time - scheduled fire time.
  Reported: p50/p99/max lateness, missed and duplicated fires, and the process's CPU
  seconds over the D-second window (``getrusage``: user + system, all threads).
* **add_many**: N interval schedules (hourly, first fire in an hour) added one
  ``add_schedule`` call at a time, before the scheduler starts: µs per add, RSS growth
  per 100,000 schedules; then the scheduler starts and the CPU it uses while idle for
  a few seconds is measured.

Both systems run with their defaults (memory store, local broker, 100 concurrent jobs,
lease 30 s), except one setting: APScheduler 4 limits each task to one running job by
default, horae does not, so the APScheduler 4 tasks are configured once, by id, with
``max_running_jobs=None`` (as horae's default), and its jobs and schedules are then
added by task id (``add_job(callable)`` would reset the task to its defaults on every
call, and its burst would run one job at a time, scanning the whole queue each time).
Its plain-function task is given ``job_executor="threadpool"`` (its default executor is
``async`` for every callable; horae sends plain functions to the thread pool by
default). horae's jobs and schedules are added with the callable, its usual spelling.

Wall-clock numbers depend on the machine's load (printed with every row); the CPU
seconds of the measured process are steadier when other processes compete.

Run ``bash benchmarks/run.sh scheduler`` (full, for the docs) or ``--quick`` (a smoke
test, under a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import _jobs
from _common import (
    child_priority,
    cpu_seconds,
    emit,
    load_average,
    machine_summary,
    print_table,
    ratio,
    rss_mb,
    run_child,
)

SCRIPT = str(Path(__file__).resolve())
SYSTEMS = ("horae", "APScheduler 4")
CHILD_NAMES = {"horae": "horae", "APScheduler 4": "aps4"}
JOB_LABELS = {"async": "no-op async def", "thread": "no-op plain function (thread pool)"}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)  # noqa: TID251 - benchmarks read the wall clock


async def _sleep_until(when: datetime) -> None:
    delay = (when - _utcnow()).total_seconds()
    if delay > 0:
        await asyncio.sleep(delay)


class _Counter:
    """Counts JobReleased events; sets ``done`` at the *target*-th."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.outcomes: Counter[str] = Counter()
        self.done = asyncio.Event()

    def __call__(self, event: Any) -> None:
        self.count += 1
        self.outcomes[str(getattr(event.outcome, "name", event.outcome))] += 1
        if self.count >= self.target:
            self.done.set()


# ---- horae ----------------------------------------------------------------------------------


async def horae_burst(n: int, kind: str) -> dict[str, Any]:
    from horae import AsyncScheduler
    from horae.events import JobReleased

    func: Callable[[], Any] = _jobs.noop_async if kind == "async" else _jobs.noop_sync
    counter = _Counter(n)
    async with AsyncScheduler() as scheduler:
        scheduler.subscribe(counter, JobReleased)
        started = time.perf_counter()
        for _ in range(n):
            await scheduler.add_job(func)
        add_seconds = time.perf_counter() - started
        cpu_before, started = cpu_seconds(), time.perf_counter()
        await scheduler.start_in_background()
        await counter.done.wait()
        elapsed = time.perf_counter() - started
        cpu_used = cpu_seconds() - cpu_before
        await scheduler.stop()
    return {
        "jobs_per_s": n / elapsed,
        "seconds": elapsed,
        "cpu_s": cpu_used,
        "add_us": add_seconds / n * 1e6,
        "outcomes": dict(counter.outcomes),
    }


async def horae_latency(n: int, duration: int) -> dict[str, Any]:
    from horae import AsyncScheduler
    from horae.triggers import IntervalTrigger

    async with AsyncScheduler() as scheduler:
        base = _utcnow().replace(microsecond=0) + timedelta(seconds=2)
        starts = {}
        for i in range(n):
            start = base + timedelta(seconds=i / n)
            schedule_id = f"s{i}"
            starts[schedule_id] = start.timestamp()
            await scheduler.add_schedule(
                _jobs.record_horae, IntervalTrigger(seconds=1, start_time=start), id=schedule_id
            )
        await scheduler.start_in_background()
        measured = await _measure_window(base, duration)
        await scheduler.stop()
    return {**measured, **_lateness(starts, duration)}


async def horae_add_many(n: int, idle: float) -> dict[str, Any]:
    from horae import AsyncScheduler
    from horae.triggers import IntervalTrigger

    async with AsyncScheduler() as scheduler:
        first = _utcnow() + timedelta(hours=1)
        gc.collect()
        rss_before = rss_mb()
        started = time.perf_counter()
        for _ in range(n):
            await scheduler.add_schedule(
                _jobs.noop_async, IntervalTrigger(hours=1, start_time=first)
            )
        elapsed = time.perf_counter() - started
        gc.collect()
        rss_after = rss_mb()
        await scheduler.start_in_background()
        idle_cpu = await _idle_cpu(idle)
        await scheduler.stop()
    return _add_many_result(n, elapsed, rss_before, rss_after, idle_cpu)


# ---- APScheduler 4 --------------------------------------------------------------------------


async def aps4_burst(n: int, kind: str) -> dict[str, Any]:
    from apscheduler import AsyncScheduler, JobReleased

    func: Callable[[], Any] = _jobs.noop_async if kind == "async" else _jobs.noop_sync
    executor = "async" if kind == "async" else "threadpool"
    counter = _Counter(n)
    async with AsyncScheduler() as scheduler:
        await scheduler.configure_task(
            kind, func=func, job_executor=executor, max_running_jobs=None
        )
        scheduler.subscribe(counter, {JobReleased})
        started = time.perf_counter()
        for _ in range(n):
            await scheduler.add_job(kind)
        add_seconds = time.perf_counter() - started
        cpu_before, started = cpu_seconds(), time.perf_counter()
        await scheduler.start_in_background()
        await counter.done.wait()
        elapsed = time.perf_counter() - started
        cpu_used = cpu_seconds() - cpu_before
        await scheduler.stop()
    return {
        "jobs_per_s": n / elapsed,
        "seconds": elapsed,
        "cpu_s": cpu_used,
        "add_us": add_seconds / n * 1e6,
        "outcomes": dict(counter.outcomes),
    }


async def aps4_latency(n: int, duration: int) -> dict[str, Any]:
    from apscheduler import AsyncScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    async with AsyncScheduler() as scheduler:
        await scheduler.configure_task(
            "record", func=_jobs.record_apscheduler4, max_running_jobs=None
        )
        base = _utcnow().replace(microsecond=0) + timedelta(seconds=2)
        starts = {}
        for i in range(n):
            start = base + timedelta(seconds=i / n)
            schedule_id = f"s{i}"
            starts[schedule_id] = start.timestamp()
            await scheduler.add_schedule(
                "record", IntervalTrigger(seconds=1, start_time=start), id=schedule_id
            )
        await scheduler.start_in_background()
        measured = await _measure_window(base, duration)
        await scheduler.stop()
    return {**measured, **_lateness(starts, duration)}


async def aps4_add_many(n: int, idle: float) -> dict[str, Any]:
    from apscheduler import AsyncScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    async with AsyncScheduler() as scheduler:
        await scheduler.configure_task("noop", func=_jobs.noop_async, max_running_jobs=None)
        first = _utcnow() + timedelta(hours=1)
        gc.collect()
        rss_before = rss_mb()
        started = time.perf_counter()
        for _ in range(n):
            await scheduler.add_schedule(
                _jobs.noop_async, IntervalTrigger(hours=1, start_time=first)
            )
        elapsed = time.perf_counter() - started
        gc.collect()
        rss_after = rss_mb()
        await scheduler.start_in_background()
        idle_cpu = await _idle_cpu(idle)
        await scheduler.stop()
    return _add_many_result(n, elapsed, rss_before, rss_after, idle_cpu)


# ---- shared measuring code ------------------------------------------------------------------


async def _measure_window(base: datetime, duration: int) -> dict[str, Any]:
    """CPU over [base, base + duration]; then let the last jobs finish."""
    await _sleep_until(base)
    cpu_before = cpu_seconds()
    await _sleep_until(base + timedelta(seconds=duration))
    cpu_used = cpu_seconds() - cpu_before
    await _sleep_until(base + timedelta(seconds=duration + 1))
    return {"cpu_s": cpu_used, "duration_s": duration}


def _lateness(starts: dict[str, float], duration: int) -> dict[str, Any]:
    """Lateness statistics of the fires in [start, start + duration) of each schedule."""
    seen: Counter[tuple[str, int]] = Counter()
    lateness = []
    for schedule_id, fire_ts, ran_ts in _jobs.RECORDS:
        k = round(fire_ts - starts[schedule_id])
        if 0 <= k < duration:
            seen[(schedule_id, k)] += 1
            lateness.append(ran_ts - fire_ts)
    expected = len(starts) * duration
    lateness.sort()
    if not lateness:
        return {"expected": expected, "ran": 0, "missed": expected, "duplicates": 0}
    return {
        "expected": expected,
        "ran": len(seen),
        "missed": expected - len(seen),
        "duplicates": sum(count - 1 for count in seen.values()),
        "p50_ms": statistics.median(lateness) * 1e3,
        "p99_ms": lateness[min(len(lateness) - 1, int(len(lateness) * 0.99))] * 1e3,
        "max_ms": lateness[-1] * 1e3,
        "mean_ms": statistics.fmean(lateness) * 1e3,
    }


async def _idle_cpu(idle: float) -> float:
    await asyncio.sleep(1)  # let the scheduler settle into its sleep
    cpu_before = cpu_seconds()
    await asyncio.sleep(idle)
    return cpu_seconds() - cpu_before


def _add_many_result(
    n: int, elapsed: float, rss_before: float, rss_after: float, idle_cpu: float
) -> dict[str, Any]:
    return {
        "add_us": elapsed / n * 1e6,
        "rss_mb_per_100k": (rss_after - rss_before) * 100_000 / n,
        "idle_cpu_s": idle_cpu,
    }


CHILDREN: dict[str, Callable[..., Any]] = {
    "horae:burst": horae_burst,
    "horae:latency": horae_latency,
    "horae:add_many": horae_add_many,
    "aps4:burst": aps4_burst,
    "aps4:latency": aps4_latency,
    "aps4:add_many": aps4_add_many,
}


def child_main(argv: list[str]) -> None:
    system, scenario, *params = argv
    func = CHILDREN[f"{system}:{scenario}"]
    converted = [int(p) if p.isdigit() else float(p) if p[:1].isdigit() else p for p in params]
    emit(asyncio.run(func(*converted)))


# ---- the parent: run the children, print the tables -----------------------------------------


def _run(system: str, scenario: str, *params: object) -> dict[str, Any]:
    result = run_child(SCRIPT, [CHILD_NAMES[system], scenario, *map(str, params)])
    result["load"] = load_average().split(" / ")[0]
    return result


def _median_run(
    repeats: int, system: str, scenario: str, key: str, *params: object
) -> dict[str, Any]:
    """Run a scenario *repeats* times; keep the run with the median *key*."""
    runs = [_run(system, scenario, *params) for _ in range(repeats)]
    good = [run for run in runs if key in run]
    if not good:
        return runs[0]
    good.sort(key=lambda run: run[key])
    chosen = good[len(good) // 2]
    chosen["all"] = [round(run[key]) for run in good]
    return chosen


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, under a minute")
    parser.add_argument("--only", default="burst,latency,add_many", help="scenarios to run")
    parser.add_argument("--repeats", type=int, default=None, help="burst runs per system")
    args = parser.parse_args()
    scenarios = args.only.split(",")
    if args.quick:
        burst_n, repeats, lat_n, lat_d, add_n, idle = 2_000, 1, 200, 4, 10_000, 3.0
    else:
        burst_n, repeats, lat_n, lat_d, add_n, idle = 10_000, 3, 1_000, 15, 100_000, 10.0
    if args.repeats is not None:
        repeats = args.repeats

    mode = "quick" if args.quick else "full"
    print(f"# Scheduler core on the memory store: horae vs APScheduler 4 ({mode} mode)\n")
    print(machine_summary(["horae", "apscheduler", "anyio"]))
    print(child_priority() + "\n")
    print(f"Command: `bash benchmarks/run.sh scheduler{' --quick' if args.quick else ''}`\n")

    if "burst" in scenarios:
        print(f"## Burst: {burst_n:,} jobs due at once (median of {repeats} runs)\n")
        rows = []
        for kind in ("async", "thread"):
            results = {
                s: _median_run(repeats, s, "burst", "jobs_per_s", burst_n, kind) for s in SYSTEMS
            }
            for system, result in results.items():
                rows.append(
                    [
                        JOB_LABELS[kind],
                        system,
                        _fmt(result.get("jobs_per_s")),
                        _fmt(result.get("seconds"), 2),
                        _fmt(result.get("cpu_s"), 2),
                        _fmt(result.get("cpu_s", 0) / burst_n * 1e6)
                        if "cpu_s" in result
                        else "n/a",
                        _fmt(result.get("add_us"), 1),
                        ", ".join(map(str, result.get("all", []))) or result.get("error", ""),
                        result["load"],
                    ]
                )
            horae, aps = results["horae"], results["APScheduler 4"]
            rows.append(
                [
                    "",
                    "**horae / APScheduler 4**",
                    ratio(horae.get("jobs_per_s"), aps.get("jobs_per_s")),
                    "",
                    "",
                    ratio(horae.get("cpu_s"), aps.get("cpu_s"), higher_is_better=False),
                    "",
                    "",
                    "",
                ]
            )
        print_table(
            ["job", "system", "jobs/s", "s to last JobReleased", "CPU s", "CPU µs per job",
             "µs per add_job", "jobs/s of each run", "load"],
            rows,
        )  # fmt: skip
        print()

    if "latency" in scenarios:
        print(
            f"## Latency: {lat_n:,} schedules firing every second for {lat_d} s "
            f"(starts staggered over one second)\n"
        )
        results = {s: _run(s, "latency", lat_n, lat_d) for s in SYSTEMS}
        rows = []
        for system, result in results.items():
            rows.append(
                [
                    system,
                    _fmt(result.get("p50_ms"), 2),
                    _fmt(result.get("p99_ms"), 2),
                    _fmt(result.get("max_ms"), 2),
                    f"{_fmt(result.get('ran'))} / {_fmt(result.get('expected'))}",
                    _fmt(result.get("missed")),
                    _fmt(result.get("duplicates")),
                    _fmt(result.get("cpu_s"), 2),
                    result.get("load", ""),
                ]
            )
        horae, aps = results["horae"], results["APScheduler 4"]
        rows.append([
            "**horae / APScheduler 4**", "", ratio(horae.get("p99_ms"), aps.get("p99_ms"),
            higher_is_better=False), "", "", "", "",
            ratio(horae.get("cpu_s"), aps.get("cpu_s"), higher_is_better=False), "",
        ])  # fmt: skip
        print_table(
            ["system", "p50 ms", "p99 ms", "max ms", "fires run / expected", "missed",
             "duplicates", f"CPU s in {lat_d} s", "load"],
            rows,
        )  # fmt: skip
        print("\n(ratios: how many times lower horae's value is)\n")

    if "add_many" in scenarios:
        print(f"## add_many: {add_n:,} interval schedules, then {idle:.0f} s idle\n")
        results = {s: _run(s, "add_many", add_n, idle) for s in SYSTEMS}
        rows = []
        for system, result in results.items():
            rows.append(
                [
                    system,
                    _fmt(result.get("add_us"), 1),
                    _fmt(result.get("rss_mb_per_100k"), 1),
                    _fmt(result.get("idle_cpu_s"), 3),
                    result.get("load", ""),
                ]
            )
        horae, aps = results["horae"], results["APScheduler 4"]
        rows.append([
            "**horae / APScheduler 4**",
            ratio(horae.get("add_us"), aps.get("add_us"), higher_is_better=False),
            ratio(horae.get("rss_mb_per_100k"), aps.get("rss_mb_per_100k"),
                  higher_is_better=False),
            "", "",
        ])  # fmt: skip
        print_table(
            ["system", "µs per add_schedule", "RSS MB per 100k schedules",
             f"CPU s while idle {idle:.0f} s", "load"],
            rows,
        )  # fmt: skip
        print("\n(ratios: how many times lower horae's value is)\n")
    print(f"Load average at the end (1/5/15 min): {load_average()}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        main()
