"""The Ray executor: every task attempt runs as a Ray task.

What it does with an attempt ``fn(call)`` (``fn`` is the engine's ``execute_task``):

1. The task's executor options are its Ray options (``num_cpus``, ``num_gpus``, ``resources``,
   ``runtime_env``, ``scheduling_strategy``, ...). Ray's own retries are switched off
   (``max_retries=0``, ``retry_exceptions=False``): the engine's retry policy counts attempts,
   so a lost worker is retried exactly as often as the task's ``max_retries`` says.
2. The worker reopens the storage from ``call.store_url`` and writes the checkpoint itself, or,
   in early mode (the default for checkpointed tasks, :mod:`durableflow.ray.pipeline`), leaves
   it to the submitting process when the task started on inputs not written yet: consumers are
   submitted with the upstream ObjectRefs before the upstream ends, and a checkpoint is written
   only after those of its inputs.
3. The output also stays in Ray's object store, as the attempt's second return value. The
   outcome carries that ObjectRef (``value_ref``); the engine hands it to consumers
   (``call.input_refs``), which Ray resolves into ``call.inputs`` before the attempt starts. So
   inside one cluster upstream values travel through the object store, and after a resume
   (new cluster, no refs) consumers read the checkpoints instead.

Calls and outcomes are :class:`~durableflow.model.calls.TaskCall` /
:class:`~durableflow.model.calls.TaskOutcome`.

This module and :mod:`durableflow.ray.dag` are the only ones importing Ray at
module level.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, InvalidStateError
from typing import Any, TypeVar

try:
    import ray
except ImportError as err:  # pragma: no cover - exercised in a subprocess without Ray
    raise ImportError(
        "the Ray executor needs Ray, which is not installed: "
        "install the ray extra (pip install '.[ray]' in a clone of durableflow) or pip install ray"
    ) from err

from durableflow.errors import WorkflowError
from durableflow.executors.base import Executor
from durableflow.model.calls import OutcomeKind, TaskCall, TaskOutcome
from durableflow.model.dag import TaskNode
from durableflow.ray.dag import unwrap  # also lets Ray take workflow.options() again
from durableflow.ray.packing import PackedDAG, pack, unpack
from durableflow.ray.pipeline import Pipeline, is_early
from durableflow.runtime.attempt import execute_task

__all__ = ["RayExecutor", "ray_task_options"]

T = TypeVar("T")
R = TypeVar("R")

_FUNCTIONS_KEPT = 1024
"""Task functions kept in the object store (each put once): past it, all are put again."""

# Options the engine owns (retries) or the executor must set itself (two return values).
_ENGINE_OPTIONS = frozenset({"max_retries", "retry_exceptions", "num_returns", "max_calls"})


def ray_task_options(options: Mapping[str, Any], task_id: str) -> dict[str, Any]:
    """The Ray options of one attempt: the task's own, with Ray's retries off.

    Args:
        options: the task's executor options.
        task_id: named in the Ray dashboard unless the options give a ``name``.
    """
    ray_options = {k: v for k, v in options.items() if k not in _ENGINE_OPTIONS}
    ray_options.setdefault("name", task_id)
    ray_options["max_retries"] = 0
    ray_options["retry_exceptions"] = False
    return ray_options


class NoValue:
    """The second return value of an attempt that produced no value (failed, continued).

    A consumer submitted early (:mod:`durableflow.ray.pipeline`) that gets it as an input does
    not run: its upstream did not give a value.
    """


def _run_attempt(
    fn: Callable[[TaskCall], TaskOutcome],
    call: TaskCall,
    keys: tuple[str, ...],
    func: Any,
    *values: Any,
) -> tuple[TaskOutcome, Any]:
    """The body of every Ray task.

    Ray resolved ``func`` (the task's function, shipped once through the object store) and
    ``values`` (upstream outputs) from refs.
    """
    call.func = func
    missing = [key for key, value in zip(keys, values, strict=True) if isinstance(value, NoValue)]
    if missing:
        error = WorkflowError(
            f"task {call.task_id!r} did not run: its input {missing[0]!r} has no value",
            workflow_id=call.workflow_id,
            task_id=call.task_id,
        )
        now = time.time()
        outcome = TaskOutcome(call.task_id, call.attempt, OutcomeKind.ERROR, start=now, end=now)
        outcome.error, outcome.system = error, True
        return outcome, NoValue()
    if keys:
        call.inputs = {**call.inputs, **dict(zip(keys, values, strict=True))}
    wanted = call.return_value
    call.return_value = True  # we want the value here, to leave it in the object store
    outcome = fn(call)
    if isinstance(outcome.continuation, TaskNode):
        # a deep DAG pickles only packed; the driver's side unpacks it in ``submit``
        outcome.continuation = pack(outcome.continuation)  # type: ignore[assignment]
    if not outcome.has_value:
        return outcome, NoValue()
    value = unwrap(outcome.value)
    if wanted:
        outcome.value = value
    else:
        outcome.value = None
        outcome.has_value = False
    return outcome, value


def _force_cancel(ref: Any) -> None:
    with contextlib.suppress(Exception):
        ready, _ = ray.wait([ref], timeout=0)
        if not ready:
            ray.cancel(ref, force=True)


class RayExecutor(Executor):
    """Runs each task attempt as a Ray task in the cluster this process is connected to.

    Args:
        address: passed to ``ray.init`` when Ray is not initialized yet (None: Ray's own
            default, ``$RAY_ADDRESS`` or a new local cluster).
        **init_options: further ``ray.init`` arguments, used only when this initializes Ray.

    Raises:
        ImportError: Ray is not installed (with the install hint).
    """

    name = "ray"
    shares_memory = False
    reports_start = False
    handles_runtime_env = True
    cancel_grace = 1.0
    """Seconds a canceled running task has to stop before it is killed."""

    def __init__(
        self, address: str | None = None, *, early: bool = True, **init_options: Any
    ) -> None:
        if not ray.is_initialized():
            ray.init(address=address, **init_options)
        self._lock = threading.Lock()
        self._remote: dict[int | None, Any] = {}
        self._running: dict[Future[Any], Any] = {}
        self._functions: dict[int, tuple[Any, Any]] = {}  # id -> (function, its ObjectRef)
        self._functions_session: str | None = None
        self.early = early
        """Checkpointed tasks in early mode (:mod:`durableflow.ray.pipeline`); False: every
        attempt writes its checkpoint on its worker before its consumers are submitted."""
        self._pipeline = Pipeline(self._launch, self._stop)

    @property
    def fence(self) -> Callable[[str], None] | None:
        """Raises unless this process still owns a workflow (``LeaseKeeper.check``).

        Checked before early submissions and checkpoint writes here; None: not checked (the
        engine still checks before its own submissions).
        """
        return self._pipeline.fence

    @fence.setter
    def fence(self, check: Callable[[str], None] | None) -> None:
        self._pipeline.fence = check

    def forget(self, workflow_id: str) -> None:
        """The run of ``workflow_id`` ended: stop its speculative attempts nobody adopted."""
        self._pipeline.forget(workflow_id)

    def _remote_function(self, max_calls: int | None) -> Any:
        with self._lock:
            if max_calls not in self._remote:
                opts: dict[str, Any] = {"num_returns": 2}
                if max_calls is not None:
                    opts["max_calls"] = max_calls
                self._remote[max_calls] = ray.remote(**opts)(_run_attempt)
            return self._remote[max_calls]

    def submit(self, fn: Callable[[T], R], call: T, options: Mapping[str, Any]) -> Future[R]:
        """Start ``fn(call)`` as a Ray task with the task's Ray options.

        Raises:
            ValueError: the storage is ``memory://`` (Ray workers are other processes), or Ray
                refuses the options.
        """
        if not isinstance(call, TaskCall):
            raise TypeError(f"the Ray executor runs TaskCalls, not {type(call).__name__}")
        task = call
        url = task.store_url or ""
        if url.startswith("memory:"):
            raise ValueError(
                "memory:// storage cannot be used with the Ray executor: Ray tasks run in other "
                "processes and reopen the storage from its URL; use a directory or s3:// storage"
            )
        if self.early and is_early(task):
            return self._pipeline.submit(task, options)  # type: ignore[return-value]
        refs = dict(task.input_refs)
        configured, shipped, func = self._shipping(task, options)
        outcome_ref, value_ref = configured.remote(fn, shipped, tuple(refs), func, *refs.values())
        future: Future[R] = Future()
        future.set_running_or_notify_cancel()  # a timeout_s counts from here on Ray
        with self._lock:
            self._running[future] = outcome_ref

        def done(ray_future: Future[Any]) -> None:
            with self._lock:
                self._running.pop(future, None)
            try:
                error = ray_future.exception()
                if error is not None:
                    future.set_exception(error)
                    return
                outcome: TaskOutcome = ray_future.result()
                packed: Any = outcome.continuation
                if isinstance(packed, PackedDAG):
                    outcome.continuation = unpack(packed)
                if outcome.kind is OutcomeKind.OK:
                    outcome.value_ref = value_ref
                future.set_result(outcome)  # type: ignore[arg-type]  # R is TaskOutcome
            except InvalidStateError:
                pass  # the engine canceled the future meanwhile

        outcome_ref.future().add_done_callback(done)
        return future

    def _launch(
        self, call: TaskCall, options: Mapping[str, Any], refs: dict[str, Any], on_worker: bool
    ) -> tuple[Any, Any]:
        """Step 1 of early mode: the attempt's Ray task, its checkpoint written there or not."""
        configured, shipped, func = self._shipping(call, options)
        shipped.checkpoint = on_worker
        shipped.return_value = False
        outcome: tuple[Any, Any] = configured.remote(
            execute_task, shipped, tuple(refs), func, *refs.values()
        )
        return outcome

    def _shipping(self, call: TaskCall, options: Mapping[str, Any]) -> tuple[Any, TaskCall, Any]:
        """What ships an attempt: Ray's function with its options, the call, the function's ref.

        The call is a copy without its inputs and function (they travel as refs); the function
        is put in the object store once.

        Raises:
            ValueError: Ray refuses the options.
        """
        remote = self._remote_function(options.get("max_calls"))
        try:
            configured = remote.options(**ray_task_options(options, call.task_id))
        except (TypeError, ValueError) as err:
            raise ValueError(f"task {call.task_id!r}: Ray refuses its options: {err}") from err
        shipped = copy.copy(call)
        shipped.input_refs = {}
        shipped.func = None
        return configured, shipped, self._function_ref(call.func)

    def _function_ref(self, func: Any) -> Any:
        """``func`` in the object store, put once (tasks of one DAG share their function).

        Kept per cluster: after ``ray.shutdown(); ray.init()`` in this process the old refs
        are gone, and the new cluster's first job has the old one's id (its session differs).
        """
        context = ray.get_runtime_context()
        session = context.get_session_name() if hasattr(context, "get_session_name") else None
        with self._lock:
            if session != self._functions_session:
                self._functions.clear()
                self._functions_session = session
            hit = self._functions.get(id(func))
            if hit is not None and hit[0] is func:
                return hit[1]
        ref = ray.put(func)
        with self._lock:
            if len(self._functions) >= _FUNCTIONS_KEPT:
                self._functions.clear()
            self._functions[id(func)] = (func, ref)
        return ref

    def _stop(self, ref: Any) -> None:
        """Interrupt the Ray task of ``ref``; kill it if it still runs ``cancel_grace`` later."""
        with contextlib.suppress(Exception):  # it may have finished meanwhile
            ray.cancel(ref)
        timer = threading.Timer(self.cancel_grace, _force_cancel, (ref,))
        timer.daemon = True
        timer.start()

    def cancel(self, future: Future[Any]) -> None:
        """Cancel the Ray task of ``future``; the future completes once the task ended.

        A running task first gets KeyboardInterrupt; one still running ``cancel_grace`` seconds
        later (blocked in a sleep or in C code, which that cannot interrupt) is killed. So
        ``wait_stopped`` returns when nothing of it runs any more.
        """
        if self._pipeline.owns(future):
            self._pipeline.cancel(future)
            return
        with self._lock:
            ref = self._running.get(future)
        if ref is None:
            future.cancel()
            return
        self._stop(ref)

    def close(self, wait: bool = True) -> None:
        """Wait for (or cancel) running tasks; Ray itself is left running for its other users."""
        self._pipeline.cancel_unadopted()  # early submissions no engine will take now
        with self._lock:
            running = list(self._running)
        running += self._pipeline.pending()
        if wait:
            concurrent.futures.wait(running)
        else:
            for future in running:
                self.cancel(future)
        self._pipeline.close(wait)
