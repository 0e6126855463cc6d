"""One attempt in the Ray executor's early mode, and its checkpoint write (step 4).

The protocol is in :mod:`durableflow.ray.pipeline`; this module holds what one attempt is
(:class:`Attempt`) and the write of its checkpoint in the process that submitted it
(:func:`write_checkpoint`), which runs the very step 5 of
:func:`~durableflow.runtime.attempt.execute_task` that a worker runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from durableflow.errors import WorkflowError
from durableflow.model.calls import OutcomeKind, TaskCall, TaskOutcome
from durableflow.ray.packing import PackedDAG, unpack
from durableflow.ray.values import portable
from durableflow.runtime.attempt import TaskAttempt, store_for

__all__ = ["Attempt", "failure", "is_early", "write_checkpoint"]


def is_early(call: TaskCall) -> bool:
    """Whether ``call`` can run in early mode (the others run as before: steps on the worker).

    A checkpointed task with no inputs passed by value, no late attempt to replace, and no
    trace context (a speculative attempt would not be counted by telemetry).
    """
    return (
        call.checkpoint
        and call.store_url is not None
        and not call.inputs
        and not call.replaces
        and call.trace_context is None
    )


@dataclasses.dataclass(eq=False)
class Attempt:
    """One attempt in early mode, from its submission to its outcome."""

    call: TaskCall
    future: Future[TaskOutcome]
    refs: dict[str, Any]
    """The upstream value refs it was given (the rest it reads from storage)."""
    deps: list[Attempt]
    """Attempts whose values it used: their checkpoints are written before its own."""
    adopted: bool
    on_worker: bool
    """Its inputs were all written at its launch: its worker writes its checkpoint itself,
    before its value is there for consumers (as with ``early=False``)."""
    consumers_left: int
    """Consumers not launched yet; at 0 its ``value_ref`` is let go (the engine keeps its own
    while it needs it, and a later consumer reads the checkpoint)."""
    counted: bool = False
    """Counted among its run's unadopted speculative attempts."""
    value_ref: Any = None
    outcome_ref: Any = None
    waiting: int = 1
    """Its Ray task and its unresolved ``deps``; the write starts at 0."""
    computed: TaskOutcome | BaseException | None = None
    canceled: bool = False
    ours: bool = False
    """Resolved with its checkpoint written from ``value_ref``'s value."""

    @property
    def dead(self) -> bool:
        """Canceled, or ended without a checkpoint of its value: of no use to consumers."""
        return self.canceled or (self.future.done() and not self.ours)


def write_checkpoint(
    entry: Attempt, fence: Callable[[str], None] | None
) -> TaskOutcome | BaseException:
    """Step 4 for ``entry``, whose Ray task ended and whose ``deps`` are resolved: its outcome.

    Raises:
        BaseException: what the lease check or the object store raised (the attempt fails).
    """
    computed, call = entry.computed, entry.call
    if isinstance(computed, BaseException) or computed is None:
        return computed or WorkflowError("no outcome")
    if isinstance(computed.continuation, PackedDAG):
        computed.continuation = unpack(computed.continuation)
    if computed.kind is not OutcomeKind.OK:
        return computed
    if entry.on_worker:
        entry.ours = True  # its worker wrote it, or took another runner's value instead
        computed.value_ref = entry.value_ref
        return computed
    if entry.canceled:
        return failure(entry, WorkflowError("canceled before its checkpoint was written"))
    for dep in entry.deps:
        if not dep.ours:
            return failure(entry, WorkflowError(_UNWRITTEN.format(dep.call.task_id)))
    if fence is not None:
        fence(call.workflow_id)
    import ray

    value = portable(ray.get(entry.value_ref))
    writing = dataclasses.replace(call, catch=False, return_value=True, input_refs={})
    attempt = TaskAttempt(writing)  # step 5 of execute_task, as a worker runs it
    attempt.start = computed.start
    attempt.store = store_for(writing)
    outcome = attempt.finish(value)
    if outcome.kind is not OutcomeKind.OK:
        return outcome
    entry.ours = outcome.value is value
    computed.value_ref = entry.value_ref if entry.ours else None
    return computed


_UNWRITTEN = "its input {!r} was not checkpointed with the value it ran on (retried from storage)"


def failure(entry: Attempt, error: BaseException) -> TaskOutcome:
    """A system failure of ``entry`` (retried by the engine), with its times if it ran."""
    computed = entry.computed
    start = computed.start if isinstance(computed, TaskOutcome) else 0.0
    end = computed.end if isinstance(computed, TaskOutcome) else 0.0
    return TaskOutcome(
        entry.call.task_id,
        entry.call.attempt,
        OutcomeKind.ERROR,
        error=error,
        system=True,
        start=start,
        end=end,
    )
