"""Helpers shared by the benchmark scripts: timing, medians and table printing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


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
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
