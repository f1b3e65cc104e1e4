"""The Prometheus and OpenTelemetry exporters of horae.metrics."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from prometheus_client import CollectorRegistry, generate_latest

from horae.metrics import Metrics
from horae.metrics.opentelemetry import export_metrics
from horae.metrics.prometheus import register_metrics


def recorded() -> Metrics:
    metrics = Metrics(lag_buckets=(0.1, 1, 10))
    metrics.jobs.add(3, task="app:report", outcome="success")
    metrics.jobs.add(1, task="app:report", outcome="error")
    metrics.fire_lag.record(0.05, task="app:report")
    metrics.fire_lag.record(2.0, task="app:report")
    metrics.lease_renewals.add(2, result="renewed")
    return metrics


def test_prometheus_exposition() -> None:
    registry = CollectorRegistry()
    register_metrics(recorded(), registry)
    text = generate_latest(registry).decode()
    assert "# TYPE horae_jobs_total counter" in text
    assert 'horae_jobs_total{outcome="success",task="app:report"} 3.0' in text
    assert 'horae_jobs_total{outcome="error",task="app:report"} 1.0' in text
    assert "# TYPE horae_fire_lag_seconds histogram" in text
    assert 'horae_fire_lag_seconds_bucket{le="0.1",task="app:report"} 1.0' in text
    assert 'horae_fire_lag_seconds_bucket{le="1.0",task="app:report"} 1.0' in text
    assert 'horae_fire_lag_seconds_bucket{le="10.0",task="app:report"} 2.0' in text
    assert 'horae_fire_lag_seconds_bucket{le="+Inf",task="app:report"} 2.0' in text
    assert 'horae_fire_lag_seconds_count{task="app:report"} 2.0' in text
    assert 'horae_fire_lag_seconds_sum{task="app:report"} 2.05' in text
    assert 'horae_lease_renewals_total{result="renewed"} 2.0' in text
    assert "horae_misfires_total" in text  # declared even before the first misfire


def test_prometheus_refuses_a_second_registration() -> None:
    registry = CollectorRegistry()
    metrics = Metrics()
    collector = register_metrics(metrics, registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        register_metrics(metrics, registry)
    registry.unregister(collector)
    register_metrics(metrics, registry, namespace="worker")
    assert "worker_jobs_total" in generate_latest(registry).decode()


def test_opentelemetry_receives_every_change() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = Metrics(lag_buckets=(0.1, 1, 10))
    export = export_metrics(metrics, provider.get_meter("horae"))
    metrics.jobs.add(3, task="app:report", outcome="success")
    metrics.fire_lag.record(0.05, task="app:report")
    metrics.fire_lag.record(2.0, task="app:report")
    export.close()
    metrics.jobs.add(5, task="app:report", outcome="success")  # no longer forwarded
    data = reader.get_metrics_data()
    assert data is not None
    found = {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    jobs = found["horae.jobs"]
    (point,) = jobs.data.data_points
    assert isinstance(point, NumberDataPoint)
    assert point.value == 3
    assert dict(point.attributes or {}) == {"task": "app:report", "outcome": "success"}
    lag = found["horae.fire_lag"]
    assert lag.unit == "s"
    (histogram,) = lag.data.data_points
    assert isinstance(histogram, HistogramDataPoint)
    assert (histogram.count, histogram.sum) == (2, 2.05)
    assert list(histogram.explicit_bounds) == [0.1, 1.0, 10.0]
    provider.shutdown()
