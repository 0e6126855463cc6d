"""OpenTelemetry traces and metrics of workflow runs and task attempts (``durableflow[otel]``).

Nothing here imports OpenTelemetry until tracing is on, and nothing is paid while it is off:
every hook first checks whether OpenTelemetry is imported at all (a dictionary lookup). Tracing
is on when a tracer provider is configured: the global one
(``opentelemetry.trace.set_tracer_provider``) or one given to :func:`configure` (what
``workflow.init(tracer_provider=...)`` calls). Metrics follow the meter provider the same way.

Traces:

- one span ``durableflow.run`` per run of a workflow (the first run, and each resume: a resume's
  span is linked to the previous run's), attributes ``durableflow.workflow_id``,
  ``durableflow.run.kind`` (``run`` or ``resume``), ``durableflow.epoch``,
  ``durableflow.executor``, and at its end ``durableflow.status``; events
  ``durableflow.task.retry``, ``durableflow.task.timeout``, ``durableflow.task.lost`` and
  ``durableflow.workflow.canceled``; the error of a FAILED run recorded (status ERROR);
- a child span ``task <function>`` per task attempt, made where the attempt runs (a thread of
  this process, a pool process, a Ray worker: the run's W3C trace context travels in the
  attempt's call), attributes ``durableflow.workflow_id``, ``durableflow.task_id``,
  ``durableflow.attempt``, ``durableflow.executor``, ``durableflow.outcome`` (``ok``, ``error``,
  ``canceled``, ``timeout``); an exception is recorded; a retry's span has the event
  ``durableflow.retry``. The attempt's span is the current span while the task runs, so spans
  the task makes itself are its children and logging records carry its trace id;
- the trace and span ids of each run are stored with the workflow (key ``trace``), so the
  dashboard links a workflow to its traces (:func:`read_traces`).

A worker process with no tracer provider of its own (a process-pool or Ray worker) makes one on
its first traced attempt from the standard OpenTelemetry environment
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: an OTLP/HTTP
exporter), and flushes it at the end of each attempt (a pool may kill its worker at any time);
without that environment, the attempts of such workers have no spans.

Metrics (recorded by the runner, so they hold for every executor): counters
``durableflow.task.attempts.started`` and ``durableflow.task.attempts.finished`` (attribute
``outcome``: ``ok``, ``error``, ``system_error``, ``continuation``, ``timeout``, ``lost``), the
histogram ``durableflow.task.duration`` (seconds, by outcome), the counter
``durableflow.workflows.finished`` (attribute ``status``) and the up-down counter
``durableflow.workflows.running``.

Logging records made inside a task carry ``durableflow_workflow_id``, ``durableflow_task_id``
and ``durableflow_attempt`` (:mod:`durableflow.runtime.logcapture`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from typing import Any

from durableflow.errors import StorageError, WorkflowCancellationError, WorkflowTimeoutError
from durableflow.storage import layout
from durableflow.storage.base import Storage

__all__ = [
    "attempt_done",
    "attempt_lost",
    "attempt_submitted",
    "configure",
    "enabled",
    "end_attempt",
    "end_run",
    "read_traces",
    "start_attempt",
    "start_run",
    "task_event",
    "trace_key",
]

log = logging.getLogger("durableflow")

_SCOPE = "durableflow"
_EXECUTOR_KEY = "durableflow-executor"
"""The carrier entry that tells the worker which executor runs it (beside ``traceparent``)."""
_MAX_RUNS = 50
"""Runs kept in a workflow's trace record (the newest)."""


class _Config:
    tracer_provider: Any = None
    meter_provider: Any = None
    worker_provider: Any = None
    """A provider this module made in a worker process (flushed after each attempt)."""
    worker_tried = False


_CONFIG = _Config()
_LOCK = threading.Lock()


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
    _CONFIG.tracer_provider = tracer_provider
    _CONFIG.meter_provider = meter_provider
    _INSTRUMENTS.clear()


def _global_tracer_provider() -> Any:
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return provider


def _tracer_provider() -> Any:
    """The provider spans go to, or None when tracing is off."""
    if _CONFIG.tracer_provider is not None:
        return _CONFIG.tracer_provider
    return _global_tracer_provider()


def enabled() -> bool:
    """Whether tracing is on (a tracer provider is configured)."""
    return _tracer_provider() is not None


def _meter_provider() -> Any:
    if _CONFIG.meter_provider is not None:
        return _CONFIG.meter_provider
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


def _tracer(provider: Any) -> Any:
    cached = _TRACERS.get(id(provider))
    if cached is None or cached[0] is not provider:
        cached = _TRACERS[id(provider)] = (provider, provider.get_tracer(_SCOPE))
    return cached[1]


def _instruments() -> dict[str, Any] | None:
    """The metric instruments of the current meter provider (made once), or None."""
    provider = _meter_provider()
    if provider is None:
        return None
    made = _INSTRUMENTS.get(id(provider))
    if made is None:
        with _LOCK:
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


# --- the trace record stored with the workflow ---------------------------------------------


def trace_key(workflow_id: str) -> str:
    """The workflow's trace record: the trace and span ids of its runs (JSON)."""
    return f"{layout.workflow_prefix(workflow_id)}trace"


def read_traces(storage: Storage, workflow_id: str) -> list[dict[str, Any]]:
    """The runs of a workflow that were traced, oldest first.

    Each: ``trace_id`` (32 hex digits), ``span_id`` (16), ``kind`` (``run`` or ``resume``),
    ``epoch`` and ``start`` (Unix time). Empty when no run was traced (or the record is
    garbled: it is for display only).

    Raises:
        StorageError: the storage failed.
    """
    raw = storage.get(trace_key(workflow_id))
    if raw is None:
        return []
    try:
        runs = json.loads(raw)["runs"]
        return [dict(run) for run in runs if isinstance(run, dict) and "trace_id" in run]
    except (ValueError, KeyError, TypeError):
        return []


def _append_trace(
    storage: Storage, workflow_id: str, entry: dict[str, Any]
) -> list[dict[str, Any]]:
    """Read the runs, add ``entry``; return the runs before it. The runner holds the lease."""
    before = read_traces(storage, workflow_id)
    data = json.dumps({"runs": [*before, entry][-_MAX_RUNS:]}).encode()
    with storage.volatile():
        storage.put(trace_key(workflow_id), data)
    return before


# --- the run's span (the runner's side) ----------------------------------------------------


class _Run:
    """One traced run: its span and the carrier its attempts take along."""

    __slots__ = ("carrier", "executor", "span", "workflow_id")

    def __init__(
        self, workflow_id: str, span: Any, carrier: dict[str, str] | None, executor: str
    ) -> None:
        self.workflow_id = workflow_id
        self.span = span
        self.carrier = carrier
        self.executor = executor


_RUNS: dict[str, _Run] = {}
"""The traced runs this process drives, by workflow id."""


def start_run(store: Any, record: Any, executor: str = "") -> _Run | None:
    """The runner's hook as a run starts: its span; None when neither tracing nor metrics is on.

    With metrics only, the run has no span and its attempts carry no trace context.

    Args:
        store: the workflow store (its storage keeps the trace record).
        record: the run record being run (``workflow_id``, ``epoch``).
        executor: the executor's name (``thread``, ``process``, ``ray``...).
    """
    provider = _tracer_provider()
    if provider is None:
        if _meter_provider() is None:
            return None
        run = _RUNS[record.workflow_id] = _Run(record.workflow_id, None, None, executor)
        _instruments_add("running", 1)
        return run
    from opentelemetry import trace
    from opentelemetry.trace import Link
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    workflow_id = record.workflow_id
    storage: Storage = store.storage
    try:
        before = read_traces(storage, workflow_id)
    except StorageError as err:
        log.warning("workflow %s: its earlier traces were not read: %s", workflow_id, err)
        before = []
    links = []
    if before:
        last = before[-1]
        with contextlib.suppress(KeyError, TypeError, ValueError):  # garbled: no link
            links.append(
                Link(
                    trace.SpanContext(
                        int(last["trace_id"], 16),
                        int(last["span_id"], 16),
                        is_remote=True,
                        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
                    ),
                    {"durableflow.link": "previous run"},
                )
            )
    kind = "resume" if before else "run"
    span = _tracer(provider).start_span(
        "durableflow.run",
        attributes={
            "durableflow.workflow_id": workflow_id,
            "durableflow.run.kind": kind,
            "durableflow.epoch": int(getattr(record, "epoch", 0) or 0),
            "durableflow.executor": executor,
        },
        links=links,
    )
    context = span.get_span_context()
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
    carrier[_EXECUTOR_KEY] = executor
    entry = {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "kind": kind,
        "epoch": int(getattr(record, "epoch", 0) or 0),
        "start": time.time(),
    }
    try:
        _append_trace(storage, workflow_id, entry)
    except StorageError as err:
        log.warning("workflow %s: its trace id was not stored: %s", workflow_id, err)
    run = _RUNS[workflow_id] = _Run(workflow_id, span, carrier, executor)
    _instruments_add("running", 1)
    return run


def _instruments_add(name: str, value: int, attributes: dict[str, str] | None = None) -> None:
    instruments = _instruments()
    if instruments is not None:
        instruments[name].add(value, attributes)


def end_run(run: _Run | None, record: Any = None) -> None:
    """The runner's hook as a run ends (in its ``finally``): the span gets the final status.

    The exception propagating (read with ``sys.exc_info``), if any, is recorded.
    """
    if run is None:
        return
    status = getattr(getattr(record, "status", None), "value", None) or "UNKNOWN"
    if _RUNS.get(run.workflow_id) is run:
        del _RUNS[run.workflow_id]
    _instruments_add("running", -1)
    _instruments_add("workflows", 1, {"status": status})
    if run.span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    # A run that ended SUCCESSFUL raised nothing: an exception seen here then is one the
    # caller was handling around the run (a resume inside an ``except`` block).
    error = None if status == "SUCCESSFUL" else sys.exc_info()[1]
    span = run.span
    span.set_attribute("durableflow.status", status)
    if status == "CANCELED" or isinstance(error, WorkflowCancellationError):
        span.add_event("durableflow.workflow.canceled")
    elif error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    elif status == "FAILED":
        stored = getattr(record, "error", None)
        span.set_status(Status(StatusCode.ERROR, str(getattr(stored, "message", "") or "FAILED")))
    elif status == "SUCCESSFUL":
        span.set_status(Status(StatusCode.OK))
    span.end()


def attempt_submitted(workflow_id: str, task_id: str, attempt: int) -> dict[str, str] | None:
    """The runner's hook as it builds an attempt's call: the trace context it carries.

    Counts the attempt; a retry (attempt > 1) is an event of the run's span.
    """
    run = _RUNS.get(workflow_id)
    if run is None:
        return None
    if attempt > 1 and run.span is not None:
        run.span.add_event(
            "durableflow.task.retry",
            {"durableflow.task_id": task_id, "durableflow.attempt": attempt},
        )
    _instruments_add("started", 1, {"executor": run.executor})
    return run.carrier


def _finished(outcome: str, seconds: float | None = None) -> None:
    instruments = _instruments()
    if instruments is None:
        return
    instruments["finished"].add(1, {"outcome": outcome})
    if seconds is not None:
        instruments["duration"].record(max(seconds, 0.0), {"outcome": outcome})


def attempt_done(workflow_id: str, outcome: Any) -> None:
    """The runner's hook for an attempt's outcome (a TaskOutcome): metrics by outcome."""
    if workflow_id not in _RUNS and _meter_provider() is None:
        return
    kind = str(getattr(outcome, "kind", "error"))
    if kind == "error" and getattr(outcome, "system", False):
        kind = "system_error"
    start, end = getattr(outcome, "start", 0.0), getattr(outcome, "end", 0.0)
    _finished(kind, end - start if start and end else None)


def attempt_lost(workflow_id: str, task_id: str, attempt: int, error: BaseException) -> None:
    """The runner's hook for an attempt whose worker was lost (its future failed)."""
    task_event(workflow_id, "lost", task_id, attempt, error)


def task_event(
    workflow_id: str, kind: str, task_id: str, attempt: int, error: BaseException | None = None
) -> None:
    """An event of the run's span about one attempt: ``timeout``, ``lost``, ``retry``..."""
    if kind in ("timeout", "lost"):
        _finished(kind)
    run = _RUNS.get(workflow_id)
    if run is None or run.span is None:
        return
    attributes: dict[str, Any] = {"durableflow.task_id": task_id, "durableflow.attempt": attempt}
    if error is not None:
        attributes["exception.type"] = type(error).__name__
        attributes["exception.message"] = str(error)
    run.span.add_event(f"durableflow.task.{kind}", attributes)


# --- the attempt's span (the worker's side) ------------------------------------------------


def _worker_provider() -> Any:
    """A provider for a worker process that has none: from the OTLP environment, else None."""
    if _CONFIG.worker_provider is not None or _CONFIG.worker_tried:
        return _CONFIG.worker_provider
    with _LOCK:
        if _CONFIG.worker_tried:
            return _CONFIG.worker_provider
        _CONFIG.worker_tried = True
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
        _CONFIG.worker_provider = provider
        return provider


def _function_name(func: Any) -> str:
    inner = getattr(func, "__wrapped__", func)
    return str(getattr(inner, "__qualname__", None) or getattr(inner, "__name__", None) or "task")


_PARENTS: dict[str, Any] = {}
"""traceparent -> the context it parses to: every attempt of a run carries the same one."""


def _parent(carrier: dict[str, str], propagator: Any) -> Any:
    key = carrier.get("traceparent", "")
    parent = _PARENTS.get(key)
    if parent is None:
        if len(_PARENTS) > 256:
            _PARENTS.clear()
        parent = _PARENTS[key] = propagator().extract(carrier)
    return parent


class _Attempt:
    __slots__ = ("flush", "span", "token")

    def __init__(self, span: Any, token: Any, flush: Any) -> None:
        self.span = span
        self.token = token
        self.flush = flush


def start_attempt(call: Any) -> _Attempt | None:
    """The span of one attempt, current while its function runs (None: not traced here).

    Its parent is the run's span: from the call's ``trace_context`` (any process), else the run
    this process drives (the thread executor).
    """
    carrier = getattr(call, "trace_context", None)
    run = _RUNS.get(call.workflow_id)
    provider = _tracer_provider()
    flush = None
    if provider is None:
        if carrier is None:
            return None
        provider = flush = _worker_provider()
        if provider is None:
            return None
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if carrier is not None:
        parent = _parent(carrier, TraceContextTextMapPropagator)
        executor = carrier.get(_EXECUTOR_KEY, "")
    elif run is not None and run.span is not None:
        parent = trace.set_span_in_context(run.span)
        executor = run.executor
    else:
        parent, executor = None, ""
    attempt = int(call.attempt)
    span = _tracer(provider).start_span(
        f"task {_function_name(call.func)}",
        context=parent,
        attributes={
            "durableflow.workflow_id": call.workflow_id,
            "durableflow.task_id": call.task_id,
            "durableflow.attempt": attempt,
            "durableflow.executor": executor,
        },
    )
    if attempt > 1:
        span.add_event("durableflow.retry", {"durableflow.attempt": attempt})
    token = otel_context.attach(trace.set_span_in_context(span))
    return _Attempt(span, token, flush)


def end_attempt(handle: _Attempt, call: Any, error: BaseException | None) -> None:
    """End an attempt's span with its outcome; ``error``: what the function raised."""
    from opentelemetry import context as otel_context
    from opentelemetry.trace import Status, StatusCode

    span = handle.span
    with contextlib.suppress(Exception):  # detached elsewhere (another context finished it)
        otel_context.detach(handle.token)
    if error is None:
        outcome = "ok"
    elif isinstance(error, WorkflowTimeoutError):
        outcome = "timeout"
        span.add_event("durableflow.timeout", {"exception.message": str(error)})
    elif isinstance(error, WorkflowCancellationError):
        outcome = "canceled"
        span.add_event("durableflow.canceled")
    else:
        outcome = "error"
    if error is not None:
        span.record_exception(error)
        if outcome != "canceled":
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.set_attribute("durableflow.outcome", outcome)
    span.end()
    if handle.flush is not None:
        handle.flush.force_flush(5_000)  # a pool may kill this process before a batch leaves
