"""execute_task: run one attempt of one task, anywhere, and checkpoint its output.

The same function runs in a thread of the driver, in a worker process, or on a Ray worker;
executors only ship it, with its :class:`~durableflow.model.calls.TaskCall`, and hand back
its :class:`~durableflow.model.calls.TaskOutcome`. Steps of one attempt (the attempt record's
protocol is in :mod:`durableflow.storage.attempts`):

1. follow the attempt (:func:`~durableflow.storage.attempts.begin_attempt`): once it has run
   for ``RECORD_AFTER`` (0.05 s), its RUNNING record ``attempts/<tid>`` is written, without
   sync, by a recorder thread of this process;
2. resolve the arguments: upstream outputs handed over in ``inputs``, the rest read from
   storage (so large values never pass through the driver);
3. call the function inside the task context;
4. a returned DAG or ``Continuation`` is handed back to the engine, which stores it; the attempt
   record says CONTINUED;
5. otherwise the output (``(value, None)`` under ``catch_exceptions``) is checkpointed with a
   create-only write whose header holds the attempt's number and times, inside the attempt's
   gate (:mod:`durableflow.runtime.gates`): an attempt that was canceled, or is past its
   ``timeout_s``, writes nothing and fails with that error (a timeout is a system error). If
   another checkpoint is there already: one written late by an attempt the engine abandoned
   past its deadline (its number is in ``call.replaces``) is replaced by this attempt's, a
   compare-and-swap on the bytes read (fencing by attempt number: the late write loses);
   any other (another runner's) won the race and its value is used, so both continue with the
   same value. On an ordered storage (:attr:`Storage.ordered`: SQLite) the checkpoint is written
   without a sync: the engine syncs before it starts another task, and the workflow's final
   status is synced, which covers it (a power cut keeps a prefix of the writes, so no later
   write survives without it). The checkpoint ends the attempt, nothing more is recorded. A
   task without a
   checkpoint (``checkpoint=False``) records SUCCESSFUL, if step 1 recorded it RUNNING;
6. a failure records FAILED (the function raised) or ERROR (the worker failed around it) in the
   attempt record and is returned, never raised.

Steps 1-2 and 4-6 are :class:`TaskAttempt`'s, which the wait service
(:mod:`durableflow.runtime.waits`) shares: it runs step 3 its own way, on its event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from contextlib import nullcontext
from typing import Any

from durableflow.errors import SerializationError, StorageError, WorkflowError
from durableflow.model.attempts import AttemptState
from durableflow.model.calls import OutcomeKind, TaskCall, TaskOutcome
from durableflow.model.dag import Continuation, TaskNode, as_node, resolve_refs
from durableflow.model.records import ErrorInfo
from durableflow.runtime.context import task_context
from durableflow.runtime.gates import AttemptGate, gate_context
from durableflow.runtime.isolated import run_isolated
from durableflow.storage import layout
from durableflow.storage.attempts import RunningAttempt, begin_attempt
from durableflow.storage.serializer import Serializer
from durableflow.storage.store import WorkflowStore
from durableflow.storage.urls import open_storage

__all__ = ["TaskAttempt", "execute_task", "store_for"]


_STORES: dict[tuple[str, bytes | None], WorkflowStore] = {}
_STORES_LOCK = threading.Lock()


def store_for(call: TaskCall) -> WorkflowStore:
    """The store an attempt writes to: the engine's, or this process's reopened one."""
    if call.store is not None:
        store: WorkflowStore = call.store
        return store
    if call.store_url is None:
        raise RuntimeError("a task call needs a store or a store URL")
    key = (call.store_url, call.signing_key)
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = WorkflowStore(open_storage(call.store_url), Serializer(call.signing_key))
        return _STORES[key]


_SIGINTS = [0]
"""SIGINTs received by this process while :func:`_on_sigint` was its handler."""
_SIGINT_PID = [0]
"""The process that installed :func:`_on_sigint` (a forked child installs it again)."""


def _on_sigint(signum: int, frame: Any) -> None:
    """Python's default SIGINT handler, counting: it raises KeyboardInterrupt all the same."""
    _SIGINTS[0] += 1
    raise KeyboardInterrupt


def _sigints() -> int | None:
    """SIGINTs seen so far; None if this thread cannot tell (not the main thread).

    A KeyboardInterrupt raised while the count did not move came from the task's code. Only
    the main thread receives signals (pool threads cannot tell, and need not: theirs are all
    the code's); there, Python's default handler is replaced once per process by a counting
    one that behaves the same. A handler of the user's own is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    if _SIGINT_PID[0] != os.getpid():
        _SIGINT_PID[0] = os.getpid()
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _on_sigint)
    return _SIGINTS[0]


class TaskAttempt:
    """The storage half of one attempt: steps 1-2 and 4-6 of the module docstring.

    Shared by :func:`execute_task` and the wait service (:mod:`durableflow.runtime.waits`),
    which run step 3 (the function, the listener) each their own way between :meth:`begin`
    and :meth:`finish`, so the attempt record and the checkpoint are written one way only.
    """

    def __init__(self, call: TaskCall) -> None:
        self.call = call
        self.start = time.time()
        self.store: WorkflowStore | None = None
        self.running: RunningAttempt | None = None
        gate = call.gate
        if not isinstance(gate, AttemptGate):  # another process: a gate of its own
            gate = AttemptGate(call.workflow_id, call.task_id, call.attempt, call.timeout_s)
        self.gate: AttemptGate = gate
        gate.begin()

    def begin(
        self, open_store: Callable[[TaskCall], WorkflowStore]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Steps 1-2: follow the attempt (its RUNNING record), then resolve the arguments.

        Raises:
            StorageError, SerializationError, KeyError: the store, the record or an input
                failed (a system error: the caller records it with :meth:`failed`).
        """
        call = self.call
        self.store = store = open_store(call)
        self.running = begin_attempt(  # 1
            store, call.workflow_id, call.task_id, call.attempt, self.start, call.epoch
        )
        if not (call.args or call.kwargs):  # 2
            return call.args, call.kwargs
        inputs = call.inputs

        def lookup(task_id: str) -> Any:
            if task_id in inputs:
                return inputs[task_id]
            return store.read_output(call.workflow_id, task_id)

        return resolve_refs(call.args, call.kwargs, lookup)

    def outcome(self, kind: OutcomeKind, **fields: Any) -> TaskOutcome:
        """An outcome of this attempt, ending now."""
        call = self.call
        return TaskOutcome(
            call.task_id, call.attempt, kind, start=self.start, end=time.time(), **fields
        )

    def ended(self, state: AttemptState | None, error: ErrorInfo | None = None) -> None:
        """End the attempt record: its outcome, or None when the checkpoint ended it."""
        if self.running is not None:
            self.running.end(state, error)

    def failed(self, err: BaseException, *, system: bool) -> TaskOutcome:
        """Step 6: a failed attempt, recorded ERROR (``system``: around the code) or FAILED."""
        info = ErrorInfo.from_exception(err, self.call.task_id)
        self.ended(AttemptState.ERROR if system else AttemptState.FAILED, info)  # 6
        return self.outcome(OutcomeKind.ERROR, error=err, system=system, error_info=info)

    def stopped_or_failed(self, err: BaseException) -> TaskOutcome:
        """Step 6 for what the function raised: the gate's error if it stopped the attempt."""
        stopped = self.gate.error
        if stopped is not None and (err is stopped or isinstance(err, WorkflowError)):
            return self.failed(stopped, system=True)  # check_cancelled() / a timeout
        return self.failed(err, system=False)

    def finish(self, result: Any) -> TaskOutcome:
        """Steps 4-5 for what step 3 returned: a continuation, or the output checkpointed."""
        call, store = self.call, self.store
        if isinstance(result, Continuation):  # 4
            self.ended(AttemptState.CONTINUED)
            return self.outcome(OutcomeKind.CONTINUATION, continuation=result.node)
        node = as_node(result)
        if isinstance(node, TaskNode):
            self.ended(AttemptState.CONTINUED)
            return self.outcome(OutcomeKind.CONTINUATION, continuation=node)
        value = (result, None) if call.catch else result
        if call.checkpoint and store is not None:  # 5
            header = {"start": self.start, "end": time.time(), "attempt": call.attempt}
            # Unsynced on an ordered storage: the engine syncs before the next task starts,
            # and the final status's sync covers it (a prefix survives a power cut).
            unsynced = store.storage.volatile() if store.storage.ordered else nullcontext()
            with self.gate.writing() as stopped, unsynced:
                if stopped is not None:
                    return self.failed(stopped, system=True)
                try:
                    if not store.write_output(call.workflow_id, call.task_id, value, header):
                        value = self._after_lost_race(store, value, header)
                except SerializationError as err:
                    return self.failed(err, system=False)
                except StorageError as err:
                    return self.failed(err, system=True)
            self.ended(None)
        else:
            stopped = self.gate.error
            if stopped is not None:
                return self.failed(stopped, system=True)
            self.ended(AttemptState.SUCCESSFUL)
        if call.return_value:
            return self.outcome(OutcomeKind.OK, value=value, has_value=True)
        return self.outcome(OutcomeKind.OK)

    def _after_lost_race(self, store: WorkflowStore, value: Any, header: dict[str, Any]) -> Any:
        """Step 5 when a checkpoint is there already: replace a late one, or adopt it."""
        call = self.call
        key = layout.output_key(call.workflow_id, call.task_id)
        if call.replaces:
            for _ in range(5):
                raw = store.storage.get(key)
                if raw is None:  # deleted meanwhile: write ours
                    if store.write_output(call.workflow_id, call.task_id, value, header):
                        return value
                    continue
                stored = store.serializer.unwrap(raw, what="checkpoint", key=key)[0]
                if stored.get("attempt") not in call.replaces:
                    break  # another runner's, or a newer attempt's: it won
                data = store.serializer.dumps(value, header, key=key)
                if store.storage.swap(key, raw, data):
                    return value
        return store.read_output(call.workflow_id, call.task_id)


def _run_coroutine(coroutine: Coroutine[Any, Any, Any], gate: AttemptGate) -> Any:
    """Step 3 of an async task where no loop serves it (a worker process, Ray).

    A new loop of this thread runs it, with its ``timeout_s``.
    """

    async def main() -> Any:
        return await asyncio.wait_for(coroutine, gate.timeout_s)

    try:
        return asyncio.run(main())
    except TimeoutError as err:
        stopped = gate.error
        if stopped is not None:
            raise stopped from err
        raise


def execute_task(call: TaskCall) -> TaskOutcome:
    """Run one attempt of a task (steps in the module docstring); never raises for its errors.

    What the task's function raises is an application failure, whatever its type:
    ``Exception`` subclasses and also ``SystemExit`` (``sys.exit()`` in a task),
    ``KeyboardInterrupt`` raised by the code, ``GeneratorExit`` and any other
    ``BaseException``. Such an error is retried only as ``retry_exceptions`` says, caught by
    ``catch_exceptions``, and fails the task after its retries; it is stored with its own type.
    It is returned in the outcome, so a process pool or Ray worker survives it (``sys.exit()``
    no longer ends the worker process). Two exceptions stay system errors, retried up to
    ``max_retries`` whatever ``retry_exceptions`` says: a worker that is really lost (its
    process died, a Ray worker crashed: the executor fails the attempt's future), and a
    ``KeyboardInterrupt`` delivered by SIGINT while the task ran (Ctrl-C, or the executor
    interrupting a canceled task), which propagates as it would without durableflow.
    """
    attempt = TaskAttempt(call)
    try:
        args, kwargs = attempt.begin(store_for)  # 1, 2
    except (StorageError, SerializationError, KeyError) as err:
        return attempt.failed(err, system=True)  # 6

    sigints = _sigints()
    try:
        with task_context(call.workflow_id, call.task_id, call=call), gate_context(attempt.gate):
            if call.runtime_env is not None:  # in a subprocess of its environment
                result = run_isolated(
                    call.func, args, kwargs, call.runtime_env, attempt.gate, call.task_id
                )
            else:
                result = call.func(*args, **kwargs)  # 3
            if inspect.iscoroutine(result):  # an async task where no loop serves it
                result = _run_coroutine(result, attempt.gate)
    except KeyboardInterrupt as err:
        if sigints is not None and _SIGINTS[0] != sigints:
            raise  # Ctrl-C or an executor's interrupt, not the task's code
        return attempt.stopped_or_failed(err)  # 6
    except BaseException as err:  # the task's own errors, whatever their type (see above)
        return attempt.stopped_or_failed(err)  # 6
    return attempt.finish(result)  # 4, 5
