"""Early submission on Ray: consumers start on ObjectRefs, checkpoints are written in order.

The Ray executor's default mode for a checkpointed task T (:class:`Pipeline`). Steps, mirrored
by ``# 1`` ... ``# 5`` in the code:

1. **Compute.** T's Ray task runs the attempt with its checkpoint off: the function only, the
   output left in Ray's object store (T's ``value_ref``). Only if every input of T was written
   when T was launched (the engine's own submissions, and fan-outs) does T's worker write T's
   checkpoint itself, before it returns (as with ``early=False``): no order to keep there.
2. **Submit early.** As T is submitted, every consumer C of T whose upstreams are all submitted
   here or checkpointed is submitted too, speculatively, its upstream ``value_ref`` s as its
   inputs: Ray starts C the moment they exist, without a round trip through the engine. The
   lease is checked first (``fence``); at most :data:`LOOKAHEAD` unadopted attempts per run.
3. **Adopt.** When the engine submits C itself (after T's outcome, step 5), the speculative
   attempt is C's if it is the same attempt: same number, same epoch, the same input refs.
   Otherwise it is canceled (with its speculative consumers) and C is submitted afresh.
4. **Write, in order.** Else T's checkpoint is written by this process (a writer thread),
   create-only as on a worker (:meth:`~durableflow.runtime.attempt.TaskAttempt.finish`), once
   T's Ray task returned a value **and** every upstream whose ``value_ref`` T used has its
   checkpoint written with that same value. The lease is checked just before. Nothing is
   written for a canceled T; if an upstream's checkpoint was not written, or another runner's
   checkpoint won (a different value), T writes nothing and fails (a system error: a retry
   reads the stored inputs).
5. **Report.** T's outcome reaches the engine only after step 4. So the engine sees T done, and
   later writes SUCCESSFUL, only once T's checkpoint is written.

Durability: a stored checkpoint's upstream checkpoints are stored (4), so a crash never leaves
a task done whose input is lost. A crash (driver, coordinator, cluster) loses the outputs not
checkpointed yet; a resume reruns exactly the tasks without a checkpoint, consumers that had
already run early included, and never a task with one.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from durableflow.errors import WorkflowError
from durableflow.model.calls import TaskCall, TaskOutcome
from durableflow.model.dag import TaskSpec
from durableflow.ray.early import Attempt, failure, is_early, write_checkpoint
from durableflow.ray.graph import RunGraph, load_graph
from durableflow.runtime.attempt import store_for

__all__ = ["LOOKAHEAD", "Pipeline", "is_early"]  # is_early: for the executor

log = logging.getLogger("durableflow.ray")

LOOKAHEAD = 512
"""Speculative attempts of one run out at once that the engine has not adopted yet."""
_WRITERS = 8
"""Writer threads: concurrent checkpoint writes (a file system merges their syncs)."""
_RUNS_KEPT = 64
"""Runs whose graphs are kept (older ones lose speculation, not correctness)."""

Launch = Callable[[TaskCall, Mapping[str, Any], dict[str, Any], bool], tuple[Any, Any]]
"""Starts a call's Ray task with the given input refs, its checkpoint written on its worker
or not (the bool): ``(outcome_ref, value_ref)``."""


@dataclasses.dataclass(eq=False)
class _Run:
    graph: RunGraph
    entries: dict[str, Attempt] = dataclasses.field(default_factory=dict)
    unadopted: int = 0
    frontier: set[str] = dataclasses.field(default_factory=set)
    """Tasks whose consumers wait for room under :data:`LOOKAHEAD`."""
    seen: dict[str, int] = dataclasses.field(default_factory=dict)
    """Per task not launched yet: its upstreams before this index were there last time."""


class Pipeline:
    """Runs checkpointed tasks in early mode (module docstring) for a :class:`RayExecutor`.

    Args:
        launch: starts a call's Ray task (checkpoint off) with input refs.
        stop: asks Ray to stop an attempt's task (by its outcome ref).
    """

    def __init__(self, launch: Launch, stop: Callable[[Any], None]) -> None:
        self._launch_ray = launch
        self._stop = stop
        self._lock = threading.RLock()
        self._runs: collections.OrderedDict[tuple[str, int | None], _Run] = (
            collections.OrderedDict()
        )
        self._by_future: dict[Future[TaskOutcome], Attempt] = {}
        self._writers = ThreadPoolExecutor(_WRITERS, thread_name_prefix="durableflow-checkpoint")
        self.fence: Callable[[str], None] | None = None
        """Raises unless this process still owns the workflow (``LeaseKeeper.check``)."""

    # --- submission ---------------------------------------------------------------------------
    def submit(self, call: TaskCall, options: Mapping[str, Any]) -> Future[TaskOutcome]:
        """The engine's submission of ``call`` (fenced by the engine): adopt or launch."""
        run = self._run_of(call)
        with self._lock:
            entry = run.entries.get(call.task_id)
            if entry is not None and self._adoptable(entry, call):  # 3
                entry.adopted = True
                self._uncount(run, entry)
                return entry.future
            if entry is not None and not entry.adopted:
                self._cancel(run, entry)
            entry = self._launch(run, call, options, dict(call.input_refs), adopted=True)
            self._speculate(run, entry)  # 2
            return entry.future

    def _run_of(self, call: TaskCall) -> _Run:
        key = (call.workflow_id, call.epoch)
        with self._lock:
            run = self._runs.get(key)
            if run is not None:
                self._runs.move_to_end(key)
                return run
        graph = load_graph(store_for(call), call.workflow_id)
        with self._lock:
            run = self._runs.setdefault(key, _Run(graph))
            while len(self._runs) > _RUNS_KEPT:
                _, old = self._runs.popitem(last=False)
                self._cancel_unadopted(old)
            return run

    def _uncount(self, run: _Run | None, entry: Attempt, *, refill: bool = True) -> None:
        """``entry`` is no longer an unadopted speculative attempt: room for another."""
        if entry.counted:
            entry.counted = False
            if run is not None:
                run.unadopted -= 1
                if refill and run.frontier:
                    self._refill(run)

    @staticmethod
    def _adoptable(entry: Attempt, call: TaskCall) -> bool:
        # A finished attempt is adopted with its outcome, a failure included: it ran once.
        if entry.adopted or entry.canceled:
            return False
        mine = entry.call
        if (mine.attempt, mine.epoch) != (call.attempt, call.epoch):
            return False
        ups = set(entry.refs) | set(call.input_refs)
        return all(
            u in entry.refs and u in call.input_refs and entry.refs[u] == call.input_refs[u]
            for u in ups
        )

    def _launch(
        self,
        run: _Run,
        call: TaskCall,
        options: Mapping[str, Any],
        refs: dict[str, Any],
        *,
        adopted: bool,
    ) -> Attempt:
        """Start ``call``'s Ray task (step 1) and follow it to its write."""
        # A speculative attempt's inputs are the entries its refs came from (in this same hold
        # of the lock); the engine's come from outcomes it took, written already.
        deps = [run.entries[up] for up in refs] if not adopted else []
        for up in run.graph.upstream(call.task_id):
            dep = run.entries.get(up)
            if dep is not None:
                dep.consumers_left -= 1
                if dep.consumers_left <= 0 and dep.future.done():
                    dep.value_ref = None
        unwritten = [dep for dep in deps if not dep.future.done()]
        on_worker = not unwritten and all(dep.ours for dep in deps)
        future: Future[TaskOutcome] = Future()
        future.set_running_or_notify_cancel()  # a timeout_s counts from here on Ray
        entry = Attempt(
            call,
            future,
            refs,
            deps,
            adopted,
            consumers_left=len(run.graph.consumers.get(call.task_id, ())),
            waiting=1 + len(unwritten),
            on_worker=on_worker,
        )
        launched = self._launch_ray(call, options, refs, on_worker)  # 1
        entry.outcome_ref, entry.value_ref = launched
        run.entries[call.task_id] = entry
        self._by_future[future] = entry
        for dep in unwritten:
            dep.future.add_done_callback(functools.partial(self._dep_done, entry))
        entry.outcome_ref.future().add_done_callback(functools.partial(self._computed, entry))
        return entry

    def _speculate(self, run: _Run, start: Attempt) -> None:
        """Step 2 from ``start``: launch every consumer whose inputs are all there or coming."""
        stack = [start]
        while stack:
            entry = stack.pop()
            for task_id in run.graph.consumers.get(entry.call.task_id, ()):
                existing = run.entries.get(task_id)
                if task_id in run.graph.done or (existing is not None and not existing.dead):
                    continue
                if run.unadopted >= LOOKAHEAD:
                    run.frontier.add(entry.call.task_id)
                    continue
                spec = run.graph.specs[task_id]
                refs = self._inputs(run, spec)
                if refs is None:
                    continue
                call = run.graph.call(spec, entry.call, refs)
                try:
                    if self.fence is not None:
                        self.fence(call.workflow_id)
                    new = self._launch(
                        run, call, spec.options.executor_options, refs, adopted=False
                    )
                except Exception as err:  # not ours any more, or Ray refuses its options
                    log.debug("no early submission of %s: %s", task_id, err)
                    return
                new.counted = True
                run.unadopted += 1
                stack.append(new)

    @staticmethod
    def _inputs(run: _Run, spec: TaskSpec) -> dict[str, Any] | None:
        """The input refs of a speculative attempt of ``spec``; None if an input is missing.

        ``run.seen`` remembers how many upstreams were there at the last look, so that a
        fan-in of n tasks costs O(n) looks in all, not O(n^2); the full pass below runs once.
        """
        if not spec.options.checkpoint:
            return None
        upstream = spec.upstream
        start = run.seen.get(spec.task_id, 0)
        for index in range(start, len(upstream)):
            if not _present(run, upstream[index]):
                run.seen[spec.task_id] = index
                return None
        refs = {}
        for index, up in enumerate(upstream):
            dep = run.entries.get(up)
            if dep is not None and not dep.dead:
                if dep.value_ref is not None:
                    refs[up] = dep.value_ref
                elif not dep.ours:
                    run.seen[spec.task_id] = index
                    return None
            elif up not in run.graph.done:
                run.seen[spec.task_id] = index  # it went away meanwhile
                return None
        run.seen.pop(spec.task_id, None)
        return refs

    def _refill(self, run: _Run) -> None:
        """Speculate from the tasks that waited for room under the lookahead."""
        waiting, run.frontier = run.frontier, set()
        for task_id in sorted(waiting):
            entry = run.entries.get(task_id)
            if entry is not None and not entry.dead:
                self._speculate(run, entry)

    # --- the write ----------------------------------------------------------------------------
    def _computed(self, entry: Attempt, ray_future: Future[Any]) -> None:
        """Ray's callback (on its own I/O thread): hand over at once, never wait for the lock."""
        try:
            self._writers.submit(self._after_compute, entry, ray_future)
        except RuntimeError:  # shut down
            self._after_compute(entry, ray_future)

    def _after_compute(self, entry: Attempt, ray_future: Future[Any]) -> None:
        try:
            entry.computed = ray_future.result()
        except BaseException as err:  # the worker or an input object is lost
            entry.computed = err
        self._one_less(entry)

    def _dep_done(self, entry: Attempt, _: Future[TaskOutcome]) -> None:
        self._one_less(entry)

    def _one_less(self, entry: Attempt) -> None:
        with self._lock:
            entry.waiting -= 1
            ready = entry.waiting == 0
        if ready and entry.on_worker:
            self._write(entry)  # nothing to write here: no need for a writer thread
        elif ready:
            try:
                self._writers.submit(self._write, entry)
            except RuntimeError:  # shut down: the run is over
                self._resolve(entry, failure(entry, WorkflowError("the executor was closed")))

    def _write(self, entry: Attempt) -> None:
        """Step 4, then step 5 (the outcome resolves the engine's future)."""
        try:
            self._resolve(entry, write_checkpoint(entry, self.fence))  # 4, then 5
        except BaseException as err:
            self._resolve(entry, err)

    def _resolve(self, entry: Attempt, result: TaskOutcome | BaseException) -> None:
        with self._lock:
            self._by_future.pop(entry.future, None)
            if not entry.ours or entry.consumers_left <= 0:
                entry.value_ref = None
            self._uncount(self._runs.get((entry.call.workflow_id, entry.call.epoch)), entry)
        if isinstance(result, BaseException):
            entry.future.set_exception(result)
        else:
            entry.future.set_result(result)

    # --- stopping -----------------------------------------------------------------------------
    def owns(self, future: Future[Any]) -> bool:
        """Whether ``future`` is one of this pipeline's."""
        with self._lock:
            return future in self._by_future

    def cancel(self, future: Future[Any]) -> None:
        """Stop the attempt of ``future`` and the speculative ones that use its value."""
        with self._lock:
            entry = self._by_future.get(future)
            if entry is None:
                return
            run = self._runs.get((entry.call.workflow_id, entry.call.epoch))
            self._cancel(run, entry)

    def _cancel(self, run: _Run | None, entry: Attempt) -> None:
        stack = [entry]
        while stack:
            current = stack.pop()
            if current.canceled or current.future.done():
                continue
            current.canceled = True
            self._uncount(run, current, refill=False)
            self._stop(current.outcome_ref)
            if run is not None:
                for task_id in run.graph.consumers.get(current.call.task_id, ()):
                    consumer = run.entries.get(task_id)
                    if consumer is not None and not consumer.adopted and current in consumer.deps:
                        stack.append(consumer)

    def _cancel_unadopted(self, run: _Run) -> None:
        for entry in list(run.entries.values()):
            if not entry.adopted:
                self._cancel(run, entry)

    def forget(self, workflow_id: str) -> None:
        """The run of ``workflow_id`` ended: stop its unadopted attempts, drop its graph."""
        with self._lock:
            for key in [k for k in self._runs if k[0] == workflow_id]:
                self._cancel_unadopted(self._runs.pop(key))

    def pending(self) -> list[Future[TaskOutcome]]:
        """Futures not resolved yet (speculative ones included)."""
        with self._lock:
            return list(self._by_future)

    def cancel_unadopted(self) -> None:
        """Stop every speculative attempt the engine has not adopted (closing)."""
        with self._lock:
            for run in list(self._runs.values()):
                self._cancel_unadopted(run)

    def close(self, wait: bool = True) -> None:
        """Stop unadopted attempts; let the writer threads finish (``wait``) and end."""
        self.cancel_unadopted()
        with self._lock:
            self._runs.clear()
        self._writers.shutdown(wait=wait)


def _present(run: _Run, task_id: str) -> bool:
    """Whether ``task_id``'s output is checkpointed or on its way (an attempt not dead)."""
    if task_id in run.graph.done:
        return True
    entry = run.entries.get(task_id)
    return entry is not None and not entry.dead
