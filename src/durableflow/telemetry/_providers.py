"""Where spans and metrics go: the configured or global providers, and a worker's own provider.

Holds :func:`configure` and :func:`enabled`, the lookups that say whether tracing or metrics is
on (a dictionary lookup while OpenTelemetry is not imported), the cached tracer and metric
instruments of a provider, and the provider a worker process makes from the OTLP environment
when it has none of its own.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

__all__ = [
    "CONFIG",
    "LOCK",
    "configure",
    "enabled",
    "finished",
    "instruments",
    "instruments_add",
    "meter_provider",
    "tracer",
    "tracer_provider",
    "worker_provider",
]

log = logging.getLogger("durableflow")

_SCOPE = "durableflow"


class _Config:
    tracer_provider: Any = None
    meter_provider: Any = None
    worker_provider: Any = None
    """A provider this module made in a worker process (flushed after each attempt)."""
    worker_tried = False


CONFIG = _Config()
LOCK = threading.Lock()


def configure(*, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Trace (and measure) durableflow with these providers instead of the global ones.

    Args:
        tracer_provider: an ``opentelemetry.trace.TracerProvider``; None: the global one.
        meter_provider: an ``opentelemetry.metrics.MeterProvider``; None: the global one.

    Raises:
        TypeError: a provider without ``get_tracer`` / ``get_meter``.
    """
    if tracer_provider is not None and not hasattr(tracer_provider, "get_tracer"):
        raise TypeError(f"tracer_provider must be a TracerProvider, got {tracer_provider!r}")
    if meter_provider is not None and not hasattr(meter_provider, "get_meter"):
        raise TypeError(f"meter_provider must be a MeterProvider, got {meter_provider!r}")
    CONFIG.tracer_provider = tracer_provider
    CONFIG.meter_provider = meter_provider
    _INSTRUMENTS.clear()


def _global_tracer_provider() -> Any:
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return provider


def tracer_provider() -> Any:
    """The provider spans go to, or None when tracing is off."""
    if CONFIG.tracer_provider is not None:
        return CONFIG.tracer_provider
    return _global_tracer_provider()


def enabled() -> bool:
    """Whether tracing is on (a tracer provider is configured)."""
    return tracer_provider() is not None


def meter_provider() -> Any:
    """The provider metrics go to, or None when metrics are off."""
    if CONFIG.meter_provider is not None:
        return CONFIG.meter_provider
    metrics = sys.modules.get("opentelemetry.metrics")
    if metrics is None:
        return None
    provider = metrics.get_meter_provider()
    if type(provider).__name__ in (
        "ProxyMeterProvider",
        "NoOpMeterProvider",
        "_ProxyMeterProvider",
    ):
        return None
    return provider


_INSTRUMENTS: dict[int, dict[str, Any]] = {}
_TRACERS: dict[int, tuple[Any, Any]] = {}
"""provider id -> (provider, its tracer): ``get_tracer`` costs a third of a span in the SDK."""


def tracer(provider: Any) -> Any:
    """The durableflow tracer of ``provider`` (made once per provider)."""
    cached = _TRACERS.get(id(provider))
    if cached is None or cached[0] is not provider:
        cached = _TRACERS[id(provider)] = (provider, provider.get_tracer(_SCOPE))
    return cached[1]


def instruments() -> dict[str, Any] | None:
    """The metric instruments of the current meter provider (made once), or None."""
    provider = meter_provider()
    if provider is None:
        return None
    made = _INSTRUMENTS.get(id(provider))
    if made is None:
        with LOCK:
            made = _INSTRUMENTS.get(id(provider))
            if made is None:
                meter = provider.get_meter(_SCOPE)
                made = _INSTRUMENTS[id(provider)] = {
                    "started": meter.create_counter(
                        "durableflow.task.attempts.started", description="Task attempts started"
                    ),
                    "finished": meter.create_counter(
                        "durableflow.task.attempts.finished",
                        description="Task attempts finished, by outcome",
                    ),
                    "duration": meter.create_histogram(
                        "durableflow.task.duration",
                        unit="s",
                        description="Duration of task attempts, by outcome",
                    ),
                    "workflows": meter.create_counter(
                        "durableflow.workflows.finished",
                        description="Workflow runs ended, by final status",
                    ),
                    "running": meter.create_up_down_counter(
                        "durableflow.workflows.running", description="Workflow runs in progress"
                    ),
                }
    return made


def instruments_add(name: str, value: int, attributes: dict[str, str] | None = None) -> None:
    """Add ``value`` to the counter ``name`` (nothing when metrics are off)."""
    made = instruments()
    if made is not None:
        made[name].add(value, attributes)


def finished(outcome: str, seconds: float | None = None) -> None:
    """Count one finished attempt by outcome, and its duration if known."""
    made = instruments()
    if made is None:
        return
    made["finished"].add(1, {"outcome": outcome})
    if seconds is not None:
        made["duration"].record(max(seconds, 0.0), {"outcome": outcome})


def worker_provider() -> Any:
    """A provider for a worker process that has none: from the OTLP environment, else None."""
    if CONFIG.worker_provider is not None or CONFIG.worker_tried:
        return CONFIG.worker_provider
    with LOCK:
        if CONFIG.worker_tried:
            return CONFIG.worker_provider
        CONFIG.worker_tried = True
        if not (
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        ):
            return None
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as err:
            log.warning(
                "durableflow: no spans from this worker (%s): pip install 'durableflow[otel]'", err
            )
            return None
        name = os.environ.get("OTEL_SERVICE_NAME") or "durableflow-worker"
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        CONFIG.worker_provider = provider
        return provider
