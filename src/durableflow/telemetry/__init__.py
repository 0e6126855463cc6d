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

This package re-exports its public names from private modules: ``_providers`` (configuration,
the providers, the worker's own provider, metric instruments), ``_record`` (the stored trace
record), ``_runs`` (the runner's side: the run's span and hooks) and ``_attempts`` (the
worker's side: the attempt's span).
"""

from __future__ import annotations

from durableflow.telemetry._attempts import end_attempt, start_attempt
from durableflow.telemetry._providers import configure, enabled
from durableflow.telemetry._record import read_traces, trace_key
from durableflow.telemetry._runs import (
    attempt_done,
    attempt_lost,
    attempt_submitted,
    end_run,
    start_run,
    task_event,
)

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
