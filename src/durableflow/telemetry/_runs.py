"""The runner's side: a run's span, its attempts' trace context, and the runner's metrics.

The runner calls :func:`start_run` and :func:`end_run` around a run, :func:`attempt_submitted`
as it builds an attempt's call (the W3C trace context the call carries), and
:func:`attempt_done`, :func:`attempt_lost` and :func:`task_event` as attempts end. The traced
runs this process drives are kept in ``RUNS``, by workflow id.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Any

from durableflow.errors import StorageError, WorkflowCancellationError
from durableflow.storage.base import Storage
from durableflow.telemetry._providers import (
    finished,
    instruments_add,
    meter_provider,
    tracer,
    tracer_provider,
)
from durableflow.telemetry._record import append_trace, read_traces

__all__ = [
    "EXECUTOR_KEY",
    "RUNS",
    "Run",
    "attempt_done",
    "attempt_lost",
    "attempt_submitted",
    "end_run",
    "start_run",
    "task_event",
]

log = logging.getLogger("durableflow")

EXECUTOR_KEY = "durableflow-executor"
"""The carrier entry that tells the worker which executor runs it (beside ``traceparent``)."""


class Run:
    """One traced run: its span and the carrier its attempts take along."""

    __slots__ = ("carrier", "executor", "span", "workflow_id")

    def __init__(
        self, workflow_id: str, span: Any, carrier: dict[str, str] | None, executor: str
    ) -> None:
        self.workflow_id = workflow_id
        self.span = span
        self.carrier = carrier
        self.executor = executor


RUNS: dict[str, Run] = {}
"""The traced runs this process drives, by workflow id."""


def start_run(store: Any, record: Any, executor: str = "") -> Run | None:
    """The runner's hook as a run starts: its span; None when neither tracing nor metrics is on.

    With metrics only, the run has no span and its attempts carry no trace context.

    Args:
        store: the workflow store (its storage keeps the trace record).
        record: the run record being run (``workflow_id``, ``epoch``).
        executor: the executor's name (``thread``, ``process``, ``ray``...).
    """
    provider = tracer_provider()
    if provider is None:
        if meter_provider() is None:
            return None
        run = RUNS[record.workflow_id] = Run(record.workflow_id, None, None, executor)
        instruments_add("running", 1)
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
    span = tracer(provider).start_span(
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
    carrier[EXECUTOR_KEY] = executor
    entry = {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "kind": kind,
        "epoch": int(getattr(record, "epoch", 0) or 0),
        "start": time.time(),
    }
    try:
        append_trace(storage, workflow_id, entry)
    except StorageError as err:
        log.warning("workflow %s: its trace id was not stored: %s", workflow_id, err)
    run = RUNS[workflow_id] = Run(workflow_id, span, carrier, executor)
    instruments_add("running", 1)
    return run


def end_run(run: Run | None, record: Any = None) -> None:
    """The runner's hook as a run ends (in its ``finally``): the span gets the final status.

    The exception propagating (read with ``sys.exc_info``), if any, is recorded.
    """
    if run is None:
        return
    status = getattr(getattr(record, "status", None), "value", None) or "UNKNOWN"
    if RUNS.get(run.workflow_id) is run:
        del RUNS[run.workflow_id]
    instruments_add("running", -1)
    instruments_add("workflows", 1, {"status": status})
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
    run = RUNS.get(workflow_id)
    if run is None:
        return None
    if attempt > 1 and run.span is not None:
        run.span.add_event(
            "durableflow.task.retry",
            {"durableflow.task_id": task_id, "durableflow.attempt": attempt},
        )
    instruments_add("started", 1, {"executor": run.executor})
    return run.carrier


def attempt_done(workflow_id: str, outcome: Any) -> None:
    """The runner's hook for an attempt's outcome (a TaskOutcome): metrics by outcome."""
    if workflow_id not in RUNS and meter_provider() is None:
        return
    kind = str(getattr(outcome, "kind", "error"))
    if kind == "error" and getattr(outcome, "system", False):
        kind = "system_error"
    start, end = getattr(outcome, "start", 0.0), getattr(outcome, "end", 0.0)
    finished(kind, end - start if start and end else None)


def attempt_lost(workflow_id: str, task_id: str, attempt: int, error: BaseException) -> None:
    """The runner's hook for an attempt whose worker was lost (its future failed)."""
    task_event(workflow_id, "lost", task_id, attempt, error)


def task_event(
    workflow_id: str, kind: str, task_id: str, attempt: int, error: BaseException | None = None
) -> None:
    """An event of the run's span about one attempt: ``timeout``, ``lost``, ``retry``..."""
    if kind in ("timeout", "lost"):
        finished(kind)
    run = RUNS.get(workflow_id)
    if run is None or run.span is None:
        return
    attributes: dict[str, Any] = {"durableflow.task_id": task_id, "durableflow.attempt": attempt}
    if error is not None:
        attributes["exception.type"] = type(error).__name__
        attributes["exception.message"] = str(error)
    run.span.add_event(f"durableflow.task.{kind}", attributes)
