"""The attempt contract between the engine and its executors: TaskCall out, TaskOutcome back.

The engine builds one call per attempt and hands ``execute_task(call)``
(:mod:`durableflow.runtime.attempt`) to its executor; the executor may ship both to another
process (a process pool, a Ray worker), so both pickle: a call without its store (the worker
reopens the storage from ``store_url``), an outcome with its error by value. They sit below the
executors so that an executor (the Ray one) reads and writes their fields as typed values.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import cloudpickle

from durableflow.errors import WorkflowError
from durableflow.model.dag import TaskNode
from durableflow.model.records import ErrorInfo

__all__ = ["OutcomeKind", "TaskCall", "TaskOutcome"]


class OutcomeKind(str, enum.Enum):
    """What an attempt came to; a ``str`` that compares, hashes and prints as its value."""

    OK = "ok"
    """The function returned a value (checkpointed unless ``checkpoint=False``)."""
    ERROR = "error"
    """The function raised, or the worker failed around it (``system``)."""
    CONTINUATION = "continuation"
    """The function returned a DAG (or ``workflow.continuation``) for the engine to store."""

    def __str__(self) -> str:
        return self.value

    __hash__ = str.__hash__  # so that {OutcomeKind.OK} == {"ok"}, as Enum hashes its name


@dataclasses.dataclass
class TaskCall:
    """One attempt of one task, as shipped to a worker."""

    workflow_id: str
    task_id: str
    attempt: int
    func: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    inputs: dict[str, Any]
    """Upstream outputs the engine hands over; the others are read from storage."""
    checkpoint: bool
    catch: bool
    store: Any = None
    """The driver's :class:`~durableflow.storage.store.WorkflowStore` itself when the worker
    shares its memory (typed ``Any``: executors and storage sit side by side, neither imports
    the other)."""
    store_url: str | None = None
    """Else the storage URL, reopened in the worker."""
    signing_key: bytes | None = None
    return_value: bool = True
    """Send the output back in the outcome (else the engine reads the checkpoint if needed)."""
    input_refs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Upstream outputs as executor handles (Ray ObjectRefs); the executor resolves them into
    ``inputs`` before the attempt runs."""
    epoch: int | None = None
    """The fencing token of the runner that submits the attempt (the run record's ``epoch``),
    kept in the attempt record so that readers tell its attempts from a crashed runner's."""
    timeout_s: float | None = None
    """The task's ``timeout_s``: past it (from the attempt's own start) the attempt writes no
    checkpoint and ends with a ``WorkflowTimeoutError``."""
    replaces: tuple[int, ...] = ()
    """Earlier attempts of this task that the engine abandoned past their deadline: a
    checkpoint one of them wrote late is replaced by this attempt's (fencing by attempt
    number, :mod:`durableflow.runtime.attempt` step 5)."""
    runtime_env: dict[str, Any] | None = None
    """The task's ``runtime_env`` when this executor does not apply it itself (the embedded
    ones): the function then runs in a subprocess (:mod:`durableflow.runtime.isolated`)."""
    trace_context: dict[str, str] | None = None
    """W3C trace context of the workflow run's span (OpenTelemetry on): the attempt's span
    in the worker, whatever its process, joins the run's trace. None: tracing off."""
    gate: Any = None
    """The attempt's :class:`~durableflow.runtime.gates.AttemptGate` when the worker shares the
    engine's memory (threads, the wait service): closed by a cancel or a timeout, after which
    the attempt can write no checkpoint. Never travels to another process."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["store"] = None  # a store never travels: the worker reopens it from the URL
        state["gate"] = None  # nor a gate: another process is stopped by its executor
        return state


@dataclasses.dataclass
class TaskOutcome:
    """What an attempt came to."""

    task_id: str
    attempt: int
    kind: OutcomeKind
    """What the attempt came to (a plain ``"ok"``, ``"error"`` or ``"continuation"`` given
    here is made an :class:`OutcomeKind`)."""
    value: Any = None
    error: BaseException | None = None
    system: bool = False
    """The failure came from the worker (storage, lost inputs), not from the function."""
    continuation: TaskNode | None = None
    start: float = 0.0
    end: float = 0.0
    has_value: bool = False
    value_ref: Any = None
    """An executor handle to the output (a Ray ObjectRef), handed to consumers as ``input_refs``."""
    error_info: ErrorInfo | None = None
    """``error`` described where it was raised, with its traceback (which does not cross
    processes with the exception)."""

    def __post_init__(self) -> None:
        self.kind = OutcomeKind(self.kind)

    def __getstate__(self) -> dict[str, Any]:
        # The error crosses processes by value (cloudpickle): an exception class defined in a
        # script's __main__ survives the trip, and one that cannot be pickled at all becomes a
        # WorkflowError with its description instead of failing the whole outcome.
        state = dict(self.__dict__)
        if self.error is not None:
            try:
                state["error"] = cloudpickle.dumps(self.error)
            except Exception:
                state["error"] = cloudpickle.dumps(self._stand_in())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.kind = OutcomeKind(self.kind)  # a plain str from a worker running older code
        if isinstance(self.error, bytes):
            try:
                self.error = cloudpickle.loads(self.error)
            except Exception:  # its class does not import here
                self.error = self._stand_in()

    def _stand_in(self) -> WorkflowError:
        info = self.error_info
        text = info.summary() if info else "an exception that cannot be pickled"
        return WorkflowError(f"task {self.task_id!r} raised {text}", task_id=self.task_id)
