"""A run's task graph as the Ray executor sees it, for early submission (:mod:`.pipeline`).

Read once per run (workflow and epoch) from the stored specs: one listing and one read per spec
batch, the checkpoints listed (tasks done), the attempt records counted (so a speculative
attempt has the number the engine will give it). Tasks of continuations stored later are not
in it: they are submitted by the engine only, without speculation.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from durableflow.errors import WorkflowError
from durableflow.model.calls import TaskCall
from durableflow.model.dag import TaskSpec
from durableflow.storage.attempts import read_attempt_counts
from durableflow.storage.store import WorkflowStore

__all__ = ["RunGraph", "load_graph"]

log = logging.getLogger("durableflow.ray")


@dataclasses.dataclass(frozen=True)
class RunGraph:
    """The stored specs of one run, with who consumes what."""

    specs: dict[str, TaskSpec] = dataclasses.field(default_factory=dict)
    consumers: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    done: frozenset[str] = frozenset()
    """Tasks checkpointed when the graph was read."""
    attempts: dict[str, int] = dataclasses.field(default_factory=dict)
    """Attempts made before this run, per unfinished task."""

    def upstream(self, task_id: str) -> tuple[str, ...]:
        """The tasks whose outputs ``task_id`` reads (none if it is not in the graph)."""
        spec = self.specs.get(task_id)
        return spec.upstream if spec is not None else ()

    def call(self, spec: TaskSpec, trigger: TaskCall, refs: dict[str, Any]) -> TaskCall:
        """The call the engine would make for ``spec``'s next attempt in ``trigger``'s run.

        Only for a checkpointed task on an executor that does not share memory
        (``_build_call`` of :class:`~durableflow.runtime.engine.WorkflowRun`).
        """
        options = spec.options
        return TaskCall(
            workflow_id=trigger.workflow_id,
            task_id=spec.task_id,
            attempt=self.attempts.get(spec.task_id, 0) + 1,
            func=spec.func,
            args=spec.args,
            kwargs=spec.kwargs,
            inputs={},
            checkpoint=options.checkpoint,
            catch=options.catch_exceptions,
            store_url=trigger.store_url,
            signing_key=trigger.signing_key,
            return_value=not options.checkpoint,
            input_refs=refs,
            epoch=trigger.epoch,
            timeout_s=options.timeout_s,
        )


def load_graph(store: WorkflowStore, workflow_id: str) -> RunGraph:
    """The graph of ``workflow_id`` as stored now (empty if it cannot be read: no speculation)."""
    try:
        batches = store.read_specs(workflow_id)
        done = store.list_done(workflow_id)
        attempts = read_attempt_counts(store, workflow_id, done)
    except (WorkflowError, OSError, KeyError, ValueError) as err:
        log.warning("workflow %s: no early submission (specs unreadable: %s)", workflow_id, err)
        return RunGraph()
    specs = {spec.task_id: spec for flat in batches.values() for spec in flat.specs}
    consumers: dict[str, list[str]] = {}
    for spec in specs.values():
        for up in dict.fromkeys(spec.upstream):
            consumers.setdefault(up, []).append(spec.task_id)
    return RunGraph(
        specs,
        {up: tuple(ids) for up, ids in consumers.items()},
        frozenset(done),
        attempts,
    )
