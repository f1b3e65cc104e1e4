"""OpenTelemetry exporter for :class:`~horae.metrics.Metrics` (extra
``horae[opentelemetry]``).

::

    from horae.metrics.opentelemetry import export_metrics

    export_metrics(metrics)        # on the global MeterProvider's "horae" meter

Every counter addition and histogram observation is forwarded as it happens
(``Counter.add``, ``Histogram.record``) to instruments of an OpenTelemetry meter; the
SDK you configure (exporters, readers, views) does the rest. Instrument names:
``horae.fire_lag``, ``horae.job.duration``, ``horae.jobs``, ``horae.misfires``,
``horae.schedule.fires``, ``horae.schedule.coalesced_fires``,
``horae.schedule.skipped_fires``, ``horae.lease_renewals``,
``horae.store.operation.duration`` and ``horae.store.errors``; histograms in seconds
(unit ``s``), counters in ``1``. Only the ``opentelemetry-api`` package is needed here.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics as otel_metrics

from . import Metrics
from ._instruments import Histogram, Instrument

__all__ = ["OpenTelemetryExport", "export_metrics"]


class OpenTelemetryExport:
    """Forwards a :class:`~horae.metrics.Metrics` to OpenTelemetry instruments until
    :meth:`close` (see :func:`export_metrics`)."""

    def __init__(self, metrics: Metrics, meter: otel_metrics.Meter) -> None:
        if not isinstance(metrics, Metrics):
            raise TypeError(f"expected horae.metrics.Metrics, not {type(metrics).__name__}")
        self._instruments: dict[str, Any] = {}
        for instrument in metrics.instruments:
            self._instruments[instrument.name] = _create(meter, instrument)
        self._remove = metrics.add_listener(self._forward)

    def _forward(self, instrument: Instrument, value: float, labels: Mapping[str, str]) -> None:
        target = self._instruments.get(instrument.name)
        if target is None:
            return
        if isinstance(instrument, Histogram):
            target.record(value, attributes=dict(labels))
        else:
            target.add(value, attributes=dict(labels))

    def close(self) -> None:
        """Stop forwarding (the OpenTelemetry instruments keep what they have)."""
        self._remove()


def _create(meter: otel_metrics.Meter, instrument: Instrument) -> Any:
    if isinstance(instrument, Histogram):
        options: dict[str, Any] = {}
        # Newer APIs let an instrument advise its bucket bounds; older ones ignore them.
        if (
            "explicit_bucket_boundaries_advisory"
            in inspect.signature(meter.create_histogram).parameters
        ):
            options["explicit_bucket_boundaries_advisory"] = list(instrument.bounds)
        return meter.create_histogram(
            instrument.otel_name, unit=instrument.unit, description=instrument.description,
            **options,
        )  # fmt: skip
    return meter.create_counter(
        instrument.otel_name, unit=instrument.unit, description=instrument.description
    )


def export_metrics(
    metrics: Metrics, meter: otel_metrics.Meter | None = None
) -> OpenTelemetryExport:
    """Forward *metrics* to OpenTelemetry.

    Args:
        metrics: the metrics to export.
        meter: the meter to create the instruments on (default: the ``"horae"`` meter
            of the global ``MeterProvider``; set that up first, or nothing is exported).

    Returns:
        The export; :meth:`OpenTelemetryExport.close` stops it.
    """
    if meter is None:
        from horae import __version__

        meter = otel_metrics.get_meter("horae", __version__)
    return OpenTelemetryExport(metrics, meter)
