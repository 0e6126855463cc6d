"""Which workflow and task the running code belongs to; the attempt's log capture and span."""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator
from typing import Any

from durableflow.runtime import logcapture

__all__ = ["current_attempt", "current_task_id", "current_workflow_id", "in_task", "task_context"]

_WORKFLOW: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "durableflow_workflow", default=None
)
_TASK: contextvars.ContextVar[str | None] = contextvars.ContextVar("durableflow_task", default=None)
_ATTEMPT: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "durableflow_attempt", default=None
)


def current_workflow_id() -> str | None:
    """The id of the workflow whose task runs this code, or None outside tasks."""
    return _WORKFLOW.get()


def current_task_id() -> str | None:
    """The id of the task running this code, or None outside tasks."""
    return _TASK.get()


def current_attempt() -> int | None:
    """The attempt number of the task running this code (1 for the first), or None.

    None also inside a task whose runner did not say (a context opened without ``call``).
    """
    return _ATTEMPT.get()


def in_task() -> bool:
    """Whether this code runs inside a workflow task."""
    return _TASK.get() is not None


def _start_span(call: Any) -> tuple[Any, Any]:
    """The attempt's span, with :mod:`durableflow.telemetry`; ``(None, None)`` when not traced.

    Costs a dictionary lookup when OpenTelemetry was never imported and the call carries no
    trace context.
    """
    if getattr(call, "trace_context", None) is None and "opentelemetry.trace" not in sys.modules:
        return None, None
    from durableflow import telemetry

    return telemetry, telemetry.start_attempt(call)


@contextlib.contextmanager
def task_context(workflow_id: str, task_id: str, *, call: Any = None) -> Iterator[None]:
    """Mark the code run inside the block as task ``task_id`` of ``workflow_id``.

    Args:
        workflow_id: the workflow.
        task_id: the task.
        call: the attempt's :class:`~durableflow.model.calls.TaskCall`, when the block runs
            one attempt's function: its output and logging records are then captured into
            the attempt's log (:mod:`durableflow.runtime.logcapture`), and with OpenTelemetry
            tracing on, the block is the attempt's span (:mod:`durableflow.telemetry`).
    """
    wf_token = _WORKFLOW.set(workflow_id)
    task_token = _TASK.set(task_id)
    attempt_token = _ATTEMPT.set(None if call is None else int(call.attempt))
    captured = None if call is None else logcapture.begin_capture(call)
    telemetry: Any = None  # durableflow.telemetry, imported only when tracing
    span: Any = None
    if call is not None:
        telemetry, span = _start_span(call)
    try:
        yield
    except BaseException as err:
        if span is not None:
            telemetry.end_attempt(span, call, err)
            span = None
        raise
    finally:
        if span is not None:
            telemetry.end_attempt(span, call, None)
        if captured is not None:
            logcapture.end_capture(captured)
        _ATTEMPT.reset(attempt_token)
        _TASK.reset(task_token)
        _WORKFLOW.reset(wf_token)
