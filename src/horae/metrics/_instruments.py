"""The backend-neutral instruments: labelled counters and histograms kept in process.

Values are read in tests and by exporters that pull (Prometheus); exporters that push
(OpenTelemetry) register a listener that sees every addition and observation. Updates
and reads take a lock per instrument, so a scrape from another thread (prometheus'
own HTTP server) never sees a half-made change.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

import attrs

metrics_logger = logging.getLogger("horae.metrics")

#: ``listener(instrument, value, labels)``: called after every counter addition and
#: histogram observation.
Listener = Callable[["Instrument", float, Mapping[str, str]], None]


@attrs.frozen
class HistogramValue:
    """A snapshot of one labelled histogram.

    Attributes:
        count: how many observations.
        sum: their sum.
        buckets: ``(upper bound, observations <= bound)`` pairs, cumulative, ending
            with ``(inf, count)``.
    """

    count: int
    sum: float
    buckets: tuple[tuple[float, int], ...]


class Instrument:
    """What counters and histograms share: names, help text, unit and label names.

    Attributes:
        name: the base name, used by Prometheus as ``horae_<name>`` (counters get
            ``_total`` appended there).
        otel_name: the OpenTelemetry instrument name (``horae.<...>``).
        description: one sentence for help texts.
        unit: ``"s"`` for durations, ``"1"`` for counts.
        label_names: the names of the labels every value carries, in order.
        kind: ``"counter"`` or ``"histogram"``.
    """

    kind: Literal["counter", "histogram"]

    def __init__(
        self,
        name: str,
        otel_name: str,
        description: str,
        unit: str,
        label_names: Sequence[str],
        listeners: list[Listener],
    ) -> None:
        self.name = name
        self.otel_name = otel_name
        self.description = description
        self.unit = unit
        self.label_names = tuple(label_names)
        self._listeners = listeners
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {list(self.label_names)}>"

    def _key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        if len(labels) != len(self.label_names):
            missing = set(self.label_names) - set(labels)
            extra = set(labels) - set(self.label_names)
            raise ValueError(
                f"{self.name} takes the labels {list(self.label_names)}; missing "
                f"{sorted(missing)}, unknown {sorted(extra)}"
            )
        try:
            return tuple(str(labels[name]) for name in self.label_names)
        except KeyError as exc:
            raise ValueError(
                f"{self.name} takes the labels {list(self.label_names)}, not {sorted(labels)}"
            ) from exc

    def _notify(self, value: float, labels: Mapping[str, str]) -> None:
        for listener in list(self._listeners):
            self._call(listener, value, labels)

    def _call(self, listener: Listener, value: float, labels: Mapping[str, str]) -> None:
        try:
            listener(self, value, labels)
        except Exception:
            # an exporter's trouble must never reach the scheduler
            metrics_logger.exception("A metrics listener failed on %s", self.name)


class Counter(Instrument):
    """A monotonic count per label set."""

    kind: Literal["counter", "histogram"] = "counter"

    def __init__(
        self,
        name: str,
        otel_name: str,
        description: str,
        label_names: Sequence[str],
        listeners: list[Listener],
    ) -> None:
        super().__init__(name, otel_name, description, "1", label_names, listeners)
        self._values: dict[tuple[str, ...], float] = {}

    def add(self, amount: float = 1, **labels: str) -> None:
        """Add *amount* (not negative) to the count of these labels."""
        self.add_labeled(amount, labels)

    def add_labeled(self, amount: float, labels: Mapping[str, str]) -> None:
        """:meth:`add` with the labels as a mapping."""
        if amount < 0:
            raise ValueError(f"a counter only goes up; cannot add {amount!r} to {self.name}")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount
        self._notify(amount, labels)

    def value(self, **labels: str) -> float:
        """The count of these labels (0 if never counted)."""
        key = self._key(labels)
        with self._lock:
            return self._values.get(key, 0.0)

    def total(self) -> float:
        """The sum over every label set."""
        with self._lock:
            return math.fsum(self._values.values())

    def values(self) -> dict[tuple[str, ...], float]:
        """Every count, by label values (in :attr:`label_names` order)."""
        with self._lock:
            return dict(self._values)


class Histogram(Instrument):
    """Observations per label set, counted in fixed buckets (as Prometheus does)."""

    kind: Literal["counter", "histogram"] = "histogram"

    def __init__(
        self,
        name: str,
        otel_name: str,
        description: str,
        label_names: Sequence[str],
        listeners: list[Listener],
        buckets: Iterable[float],
    ) -> None:
        super().__init__(name, otel_name, description, "s", label_names, listeners)
        bounds = sorted(float(bound) for bound in buckets if not math.isinf(bound))
        if not bounds or any(a == b for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"{name} needs distinct, finite bucket bounds, not {bounds!r}")
        self.bounds: tuple[float, ...] = tuple(bounds)
        # per label set: [count per bucket (the last one is +inf)..., sum]
        self._values: dict[tuple[str, ...], list[float]] = {}

    def record(self, value: float, **labels: str) -> None:
        """Observe *value* (seconds) for these labels."""
        self.record_labeled(value, labels)

    def record_labeled(self, value: float, labels: Mapping[str, str]) -> None:
        """:meth:`record` with the labels as a mapping."""
        key = self._key(labels)
        index = bisect.bisect_left(self.bounds, value)  # bucket bounds are inclusive
        with self._lock:
            slots = self._values.get(key)
            if slots is None:
                slots = self._values[key] = [0.0] * (len(self.bounds) + 2)
            slots[index] += 1
            slots[-1] += value
        self._notify(value, labels)

    def get(self, **labels: str) -> HistogramValue:
        """The snapshot of these labels (empty if never observed)."""
        key = self._key(labels)
        with self._lock:
            slots = list(self._values.get(key, [0.0] * (len(self.bounds) + 2)))
        return self._snapshot(slots)

    def values(self) -> dict[tuple[str, ...], HistogramValue]:
        """Every snapshot, by label values (in :attr:`label_names` order)."""
        with self._lock:
            copies = {key: list(slots) for key, slots in self._values.items()}
        return {key: self._snapshot(slots) for key, slots in copies.items()}

    def _snapshot(self, slots: list[float]) -> HistogramValue:
        cumulative = 0
        buckets: list[tuple[float, int]] = []
        for bound, count in zip((*self.bounds, math.inf), slots[:-1], strict=True):
            cumulative += int(count)
            buckets.append((bound, cumulative))
        return HistogramValue(count=cumulative, sum=slots[-1], buckets=tuple(buckets))
