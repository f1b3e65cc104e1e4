"""Prometheus exporter for :class:`~horae.metrics.Metrics` (extra ``horae[prometheus]``).

::

    from prometheus_client import make_asgi_app
    from horae.metrics.prometheus import register_metrics

    register_metrics(metrics)               # into prometheus_client's default registry
    app.mount("/metrics", make_asgi_app())   # FastAPI/Starlette; or start_http_server()

Values are read from the :class:`~horae.metrics.Metrics` object at each scrape (a
custom collector), so recording costs nothing extra. Names: ``horae_fire_lag_seconds``,
``horae_job_duration_seconds``, ``horae_jobs_total``, ``horae_misfires_total``,
``horae_schedule_fires_total``, ``horae_coalesced_fires_total``,
``horae_skipped_fires_total``, ``horae_lease_renewals_total``,
``horae_store_operation_duration_seconds`` and ``horae_store_errors_total``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from . import Metrics
from ._instruments import Counter, Histogram

__all__ = ["HoraeCollector", "register_metrics"]


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class HoraeCollector(Collector):
    """A ``prometheus_client`` collector that reads a :class:`~horae.metrics.Metrics`.

    Args:
        metrics: the metrics to export.
        namespace: the prefix of every metric name (``horae`` → ``horae_jobs_total``).
    """

    def __init__(self, metrics: Metrics, *, namespace: str = "horae") -> None:
        if not isinstance(metrics, Metrics):
            raise TypeError(f"expected horae.metrics.Metrics, not {type(metrics).__name__}")
        self._metrics = metrics
        self._namespace = namespace

    def collect(self) -> Iterator[Metric]:
        """Yield one metric family per instrument, with the current values."""
        return self._families(with_values=True)

    def describe(self) -> Iterator[Metric]:
        """Yield the metric families without values (the registry checks the names)."""
        return self._families(with_values=False)

    def _families(self, *, with_values: bool) -> Iterator[Metric]:
        for instrument in self._metrics.instruments:
            name = f"{self._namespace}_{instrument.name}"
            labels = list(instrument.label_names)
            if isinstance(instrument, Counter):
                counter = CounterMetricFamily(name, instrument.description, labels=labels)
                if with_values:
                    for key, value in sorted(instrument.values().items()):
                        counter.add_metric(list(key), value)
                yield counter
            elif isinstance(instrument, Histogram):
                histogram = HistogramMetricFamily(name, instrument.description, labels=labels)
                if with_values:
                    for key, snapshot in sorted(instrument.values().items()):
                        buckets = [(_le(bound), float(n)) for bound, n in snapshot.buckets]
                        histogram.add_metric(list(key), buckets, snapshot.sum)
                yield histogram


def register_metrics(
    metrics: Metrics, registry: CollectorRegistry | None = None, *, namespace: str = "horae"
) -> HoraeCollector:
    """Export *metrics* through *registry* (``prometheus_client.REGISTRY`` by default).

    Returns:
        The collector; ``registry.unregister(collector)`` stops the export.

    Raises:
        ValueError: the registry already has metrics with these names (one
            :class:`~horae.metrics.Metrics` per registry and namespace).
    """
    collector = HoraeCollector(metrics, namespace=namespace)
    (REGISTRY if registry is None else registry).register(collector)
    return collector
