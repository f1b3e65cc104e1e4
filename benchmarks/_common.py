"""Helpers shared by the benchmark scripts: timing, medians, table printing, the machine's
description, CPU and memory readings, and running one measurement in a child process."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

#: The multiplication sign of the ratio columns ("3.2" followed by it).
TIMES = "\u00d7"


def best_of(repeats: int, run: Callable[[], float]) -> float:
    """Run *run* (which returns seconds per operation) several times; keep the median."""
    return statistics.median(run() for _ in range(repeats))


def per_call(calls: int, step: Callable[[], object]) -> float:
    """Seconds per call of *step*, over *calls* calls."""
    started = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - started) / calls


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table (so results paste straight into the docs)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        line = " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        print(f"| {line} |", flush=True)


# ---- the machine ------------------------------------------------------------------------


def load_average() -> str:
    """The 1/5/15-minute load averages, as ``"1.23 / 2.34 / 3.45"``."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gb() -> str:
    try:
        import psutil

        return f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM"
    except ImportError:  # pragma: no cover - psutil is in the benchmark environment
        return "RAM unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_summary(packages: Sequence[str] = ()) -> str:
    """One Markdown paragraph: CPU, cores, RAM, OS, Python, package versions, load."""
    versions = ", ".join(f"{name} {_version(name)}" for name in packages)
    return (
        f"Machine: {_cpu_model()}, {os.cpu_count()} cores, {_memory_gb()}, "
        f"{platform.system()} {platform.release()}, {platform.python_implementation()} "
        f"{platform.python_version()}. Packages: {versions}. "
        f"Load average at start (1/5/15 min): {load_average()}."
    )


# ---- readings inside a measured process -----------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    """This process's resident set size in MiB."""
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


# ---- child processes ------------------------------------------------------------------------


#: Priority boost of the measured child processes (``BENCH_NICE``, default -10): on a
#: machine shared with test runs it keeps a measured process on a core of its own
#: instead of a third of one. It needs root; without it the children run as they are.
NICE = int(os.environ.get("BENCH_NICE", "-10"))


def child_priority() -> str:
    """How the children are prioritised, for the report."""
    if NICE == 0:
        return "Children ran at normal priority."
    allowed = os.geteuid() == 0 or NICE > 0
    return (
        f"Measured child processes ran at nice {NICE} (`BENCH_NICE`)"
        f"{'' if allowed else ' (not permitted here: normal priority)'}; database "
        f"servers at their own priority."
    )


def run_child(script: str, args: Sequence[str], timeout: float = 900) -> dict[str, Any]:
    """Run ``python script --child args...`` in a fresh process and return the JSON object
    it prints on its last line of output (each system gets its own interpreter and event
    loop, so neither warms up or pollutes the other)."""
    command = [sys.executable, script, "--child", *args]
    if NICE and shutil.which("nice"):
        # nice(1) runs the command at normal priority when it may not change it
        command = ["nice", "-n", str(NICE), *command]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s"}
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        sys.stderr.write(completed.stderr[-4000:])
        return {"error": f"exit {completed.returncode}: {completed.stderr.strip()[-300:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def emit(result: dict[str, Any]) -> None:
    """Print a child's result as the last line of its output (read by :func:`run_child`)."""
    print(json.dumps(result), flush=True)


def ratio(value: float | None, other: float | None, *, higher_is_better: bool = True) -> str:
    """horae's advantage over *other* as ``"3.2x"`` (above 1 means horae is better)."""
    if not value or not other:
        return "n/a"
    factor = value / other if higher_is_better else other / value
    return f"{factor:.1f}{TIMES}"
