"""execute_task: run one attempt of one task, anywhere, and checkpoint its output.

The same function runs in a thread of the driver, in a worker process, or on a Ray worker;
executors only ship it. Steps of one attempt:

1. resolve the arguments: upstream outputs handed over in ``inputs``, the rest read from
   storage (so large values never pass through the driver);
2. call the function inside the task context;
3. a returned DAG or ``Continuation`` is handed back to the engine, which stores it;
4. otherwise the output (``(value, None)`` under ``catch_exceptions``) is checkpointed with a
   create-only write; if another runner's checkpoint won the race, its value is used, so both
   continue with the same value.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from durableflow.errors import SerializationError, StorageError
from durableflow.model.dag import Continuation, TaskNode, as_node, resolve_refs
from durableflow.runtime.context import task_context
from durableflow.storage.serializer import Serializer
from durableflow.storage.store import WorkflowStore
from durableflow.storage.urls import open_storage

__all__ = ["TaskCall", "TaskOutcome", "execute_task"]


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
    store: WorkflowStore | None = None
    """The store itself when the worker shares the driver's memory."""
    store_url: str | None = None
    """Else the storage URL, reopened in the worker."""
    signing_key: bytes | None = None
    return_value: bool = True
    """Send the output back in the outcome (else the engine reads the checkpoint if needed)."""
    input_refs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Upstream outputs as executor handles (Ray ObjectRefs); the executor resolves them into
    ``inputs`` before the attempt runs."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["store"] = None  # a store never travels: the worker reopens it from the URL
        return state


@dataclasses.dataclass
class TaskOutcome:
    """What an attempt came to."""

    task_id: str
    attempt: int
    kind: str
    """"ok", "error" or "continuation"."""
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


_STORES: dict[tuple[str, bytes | None], WorkflowStore] = {}
_STORES_LOCK = threading.Lock()


def _store_for(call: TaskCall) -> WorkflowStore:
    if call.store is not None:
        return call.store
    if call.store_url is None:
        raise RuntimeError("a task call needs a store or a store URL")
    key = (call.store_url, call.signing_key)
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = WorkflowStore(open_storage(call.store_url), Serializer(call.signing_key))
        return _STORES[key]


def execute_task(call: TaskCall) -> TaskOutcome:
    """Run one attempt of a task; never raises for the task's own errors."""
    start = time.time()

    def outcome(kind: str, **fields: Any) -> TaskOutcome:
        return TaskOutcome(call.task_id, call.attempt, kind, start=start, end=time.time(), **fields)

    try:
        store = _store_for(call)
        if call.args or call.kwargs:
            inputs = call.inputs

            def lookup(task_id: str) -> Any:
                if task_id in inputs:
                    return inputs[task_id]
                return store.read_output(call.workflow_id, task_id)

            args, kwargs = resolve_refs(call.args, call.kwargs, lookup)
        else:
            args, kwargs = call.args, call.kwargs
    except (StorageError, SerializationError, KeyError) as err:
        return outcome("error", error=err, system=True)

    try:
        with task_context(call.workflow_id, call.task_id):
            result = call.func(*args, **kwargs)
    except Exception as err:
        return outcome("error", error=err)

    if isinstance(result, Continuation):
        return outcome("continuation", continuation=result.node)
    node = as_node(result)
    if isinstance(node, TaskNode):
        return outcome("continuation", continuation=node)

    value = (result, None) if call.catch else result
    if call.checkpoint:
        header = {"start": start, "end": time.time(), "attempt": call.attempt}
        try:
            if not store.write_output(call.workflow_id, call.task_id, value, header):
                value = store.read_output(call.workflow_id, call.task_id)
        except SerializationError as err:
            return outcome("error", error=err)
        except StorageError as err:
            return outcome("error", error=err, system=True)
    if call.return_value:
        return outcome("ok", value=value, has_value=True)
    return outcome("ok")
