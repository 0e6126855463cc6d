"""The worker's side: the span of one task attempt, made where the attempt runs.

:func:`start_attempt` opens it (its parent is the run's span, from the call's trace context or
the run this process drives) and makes it current while the function runs;
:func:`end_attempt` ends it with the attempt's outcome. Called by
:func:`~durableflow.runtime.context.task_context`.
"""

from __future__ import annotations

import contextlib
from typing import Any

from durableflow.errors import WorkflowCancellationError, WorkflowTimeoutError
from durableflow.telemetry._providers import tracer, tracer_provider, worker_provider
from durableflow.telemetry._runs import EXECUTOR_KEY, RUNS

__all__ = ["Attempt", "end_attempt", "start_attempt"]


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


class Attempt:
    """One traced attempt: its span, the context token to detach, the provider to flush."""

    __slots__ = ("flush", "span", "token")

    def __init__(self, span: Any, token: Any, flush: Any) -> None:
        self.span = span
        self.token = token
        self.flush = flush


def start_attempt(call: Any) -> Attempt | None:
    """The span of one attempt, current while its function runs (None: not traced here).

    Its parent is the run's span: from the call's ``trace_context`` (any process), else the run
    this process drives (the thread executor).
    """
    carrier = getattr(call, "trace_context", None)
    run = RUNS.get(call.workflow_id)
    provider = tracer_provider()
    flush = None
    if provider is None:
        if carrier is None:
            return None
        provider = flush = worker_provider()
        if provider is None:
            return None
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if carrier is not None:
        parent = _parent(carrier, TraceContextTextMapPropagator)
        executor = carrier.get(EXECUTOR_KEY, "")
    elif run is not None and run.span is not None:
        parent = trace.set_span_in_context(run.span)
        executor = run.executor
    else:
        parent, executor = None, ""
    attempt = int(call.attempt)
    span = tracer(provider).start_span(
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
    return Attempt(span, token, flush)


def end_attempt(handle: Attempt, call: Any, error: BaseException | None) -> None:
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
