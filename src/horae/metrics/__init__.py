"""Scheduler metrics: fire lag, jobs by outcome, misfires, coalesced and skipped fires,
lease renewals and store latency, kept in process and exported to Prometheus or
OpenTelemetry.

::

    from horae.metrics import Metrics

    metrics = Metrics()
    scheduler = AsyncScheduler(metrics.instrument(SQLiteDataStore("app.sqlite3")))

    # then, for Prometheus (extra "prometheus"):
    from horae.metrics.prometheus import register_metrics
    register_metrics(metrics)                      # the default registry
    # or for OpenTelemetry (extra "opentelemetry"):
    from horae.metrics.opentelemetry import export_metrics
    export_metrics(metrics)                        # the global meter provider

The measurements come from the data stores this node uses (wrapped by
:meth:`Metrics.instrument`), so each node counts its own work exactly once, also when a
shared event broker carries every node's events. Neither exporter is imported by
``import horae`` or by this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from horae._enums import JobOutcome
from horae.datastores._base import DataStore
from horae.events import JobReleased

from ._instruments import Counter as Counter
from ._instruments import Histogram as Histogram
from ._instruments import HistogramValue as HistogramValue
from ._instruments import Instrument as Instrument
from ._instruments import Listener as Listener
from ._store import MAX_COUNTED_COALESCED as MAX_COUNTED_COALESCED
from ._store import InstrumentedDataStore as InstrumentedDataStore

__all__ = [
    "Metrics",
    "InstrumentedDataStore",
    "Counter",
    "Histogram",
    "HistogramValue",
    "Instrument",
    "Listener",
    "MAX_COUNTED_COALESCED",
    "DEFAULT_LAG_BUCKETS",
    "DEFAULT_DURATION_BUCKETS",
    "DEFAULT_STORE_BUCKETS",
]

#: Fire lag buckets (seconds): from 5 ms (on time) to 10 minutes (far behind).
DEFAULT_LAG_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
)  # fmt: skip
#: Job duration buckets (seconds): from 5 ms to an hour.
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
)  # fmt: skip
#: Store call buckets (seconds): from 0.1 ms to 10 s.
DEFAULT_STORE_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
    2.5, 5, 10,
)  # fmt: skip


class Metrics:
    """The scheduler's counters and histograms, kept in this process.

    Feed it by wrapping each data store with :meth:`instrument`; read it directly
    (``metrics.jobs.value(task="app:report", outcome="success")``) or through an
    exporter (:mod:`horae.metrics.prometheus`, :mod:`horae.metrics.opentelemetry`).

    Attributes:
        fire_lag: histogram of start time - scheduled fire time, in seconds, of the jobs
            that schedules made (first attempts; includes deliberate jitter); label
            ``task``.
        job_duration: histogram of finished - started, in seconds, of the jobs that
            ran; labels ``task``, ``outcome``.
        jobs: counter of jobs that ended, by ``task`` and ``outcome`` (the
            :class:`~horae.JobOutcome` values, ``missed_start_deadline`` and
            ``abandoned`` included).
        misfires: counter of jobs that could not start within their misfire grace
            time (``outcome="missed_start_deadline"``); label ``task``.
        fires: counter of jobs that schedule fires made; label ``task``.
        coalesced_fires: counter of fire times that coalescing (``latest`` or
            ``earliest``) folded into another fire's job after downtime, at most
            :data:`MAX_COUNTED_COALESCED` per schedule and catch-up; label ``task``.
        skipped_fires: counter of fire times that made no job on purpose
            (``ScheduleFireSkipped``); label ``reason``.
        lease_renewals: counter of job lease renewals; label ``result`` (``renewed``,
            or ``lost``: the lease had been taken over and the job is cancelled here).
        store_latency: histogram of data store calls, in seconds; labels ``store``
            and ``operation`` (the DataStore method).
        store_errors: counter of data store calls that failed (lookups of unknown ids
            and id conflicts do not count); labels ``store``, ``operation``.

    Args:
        lag_buckets: bucket bounds of ``fire_lag`` (seconds).
        duration_buckets: bucket bounds of ``job_duration`` (seconds).
        store_buckets: bucket bounds of ``store_latency`` (seconds).
    """

    def __init__(
        self,
        *,
        lag_buckets: Sequence[float] = DEFAULT_LAG_BUCKETS,
        duration_buckets: Sequence[float] = DEFAULT_DURATION_BUCKETS,
        store_buckets: Sequence[float] = DEFAULT_STORE_BUCKETS,
    ) -> None:
        self._listeners: list[Listener] = []
        listeners = self._listeners
        self.fire_lag = Histogram(
            "fire_lag_seconds", "horae.fire_lag",
            "Delay between a job's scheduled fire time and its start",
            ("task",), listeners, lag_buckets,
        )  # fmt: skip
        self.job_duration = Histogram(
            "job_duration_seconds", "horae.job.duration", "How long jobs ran",
            ("task", "outcome"), listeners, duration_buckets,
        )  # fmt: skip
        self.jobs = Counter(
            "jobs", "horae.jobs", "Jobs that ended, by outcome", ("task", "outcome"), listeners
        )
        self.misfires = Counter(
            "misfires", "horae.misfires",
            "Jobs that could not start within their misfire grace time", ("task",), listeners,
        )  # fmt: skip
        self.fires = Counter(
            "schedule_fires", "horae.schedule.fires", "Jobs made by schedule fires",
            ("task",), listeners,
        )  # fmt: skip
        self.coalesced_fires = Counter(
            "coalesced_fires", "horae.schedule.coalesced_fires",
            "Fire times folded into another fire's job by coalescing", ("task",), listeners,
        )  # fmt: skip
        self.skipped_fires = Counter(
            "skipped_fires", "horae.schedule.skipped_fires", "Fire times that made no job",
            ("reason",), listeners,
        )  # fmt: skip
        self.lease_renewals = Counter(
            "lease_renewals", "horae.lease_renewals", "Job lease renewals, by result",
            ("result",), listeners,
        )  # fmt: skip
        self.store_latency = Histogram(
            "store_operation_duration_seconds", "horae.store.operation.duration",
            "Data store call durations", ("store", "operation"), listeners, store_buckets,
        )  # fmt: skip
        self.store_errors = Counter(
            "store_errors", "horae.store.errors", "Data store calls that raised",
            ("store", "operation"), listeners,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"<Metrics: {self.jobs.total():g} jobs, {self.fires.total():g} fires>"

    @property
    def instruments(self) -> tuple[Counter | Histogram, ...]:
        """Every counter and histogram, in a stable order."""
        return (
            self.fire_lag, self.job_duration, self.jobs, self.misfires, self.fires,
            self.coalesced_fires, self.skipped_fires, self.lease_renewals,
            self.store_latency, self.store_errors,
        )  # fmt: skip

    def instrument(self, store: DataStore, *, name: str | None = None) -> InstrumentedDataStore:
        """Wrap *store* so that what this node does through it is measured here.

        Give the wrapper to the scheduler instead of the store (for several stores,
        wrap each: ``data_stores={"default": metrics.instrument(a), ...}``).

        Args:
            store: the data store to measure.
            name: the ``store`` label of its calls (default: ``"sqlite"`` for a
                ``SQLiteDataStore`` and so on).

        Raises:
            TypeError: *store* is not a DataStore.
        """
        return InstrumentedDataStore(store, self, name)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(instrument, value, labels)`` after every counter addition and
        histogram observation (exporters that push use this); returns a function that
        removes it. A listener that raises is logged and never breaks the scheduler."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def note_job_released(self, event: JobReleased) -> None:
        """Count a job that ended (called for each ``JobReleased`` the stores publish)."""
        outcome = str(event.outcome)
        self.jobs.add(1, task=event.task_id, outcome=outcome)
        if event.outcome is JobOutcome.missed_start_deadline:
            self.misfires.add(1, task=event.task_id)
        if event.started_at is not None:
            duration = (event.finished_at - event.started_at).total_seconds()
            self.job_duration.record(max(duration, 0.0), task=event.task_id, outcome=outcome)
