"""WorkflowStore: everything stored for workflows, typed.

Run records, the status index and the delete protocol are
:class:`~durableflow.storage.status_index.StatusIndex` (the crash-safe protocols, numbered there);
this adds the task specs, the checkpoints, task error records, leases and cancel requests.
"""

from __future__ import annotations

import time
from typing import Any

from durableflow.errors import CheckpointCorruptError, SerializationError, StorageError
from durableflow.model.dag import FlatDAG
from durableflow.model.records import LeaseRecord, TaskErrorRecord
from durableflow.storage import layout
from durableflow.storage.status_index import UNFENCED, RecordChangedError, StatusIndex

__all__ = ["UNFENCED", "RecordChangedError", "WorkflowStore"]

_FORWARD = "forward"


class WorkflowStore(StatusIndex):
    """Typed access to everything stored for workflows.

    Args:
        storage: where the bytes go.
        serializer: how values become bytes (checksums, optional signatures).
    """

    # --- specs ----------------------------------------------------------------------------
    def write_specs(self, workflow_id: str, batch: str, dag: FlatDAG) -> None:
        """Store the specs of one DAG (``root``, or the id of the task that continued into it).

        Raises:
            SerializationError: naming the task and argument that cannot be pickled;
                nothing is written then.
        """
        self.put_specs(workflow_id, batch, self.encode_specs(workflow_id, dag, batch))

    def create_specs(self, workflow_id: str, batch: str, dag: FlatDAG) -> FlatDAG:
        """Store a continuation's specs create-only; return the stored DAG (first writer wins).

        A runner paused past its lease and a runner that took over may both store the
        continuation of one task: both go on with the first one stored, as with checkpoints.
        """
        key = layout.spec_key(workflow_id, batch)
        if self._create(key, self.encode_specs(workflow_id, dag, batch), workflow_id, batch):
            return dag
        raw = self._get(key, workflow_id, batch)
        if raw is None:  # deleted meanwhile: the workflow is being deleted
            raise StorageError(
                f"workflow {workflow_id!r}: specs of {batch!r} vanished", workflow_id=workflow_id
            )
        stored: FlatDAG = self._load(raw, workflow_id, batch, key)
        return stored

    def encode_specs(self, workflow_id: str, dag: FlatDAG, batch: str = layout.ROOT_BATCH) -> bytes:
        """The stored form of a DAG's specs; raises SerializationError naming the culprit."""
        key = layout.spec_key(workflow_id, batch)
        try:
            return self.serializer.dumps(dag, {"tasks": len(dag.specs)}, key=key)
        except SerializationError:
            raise self._find_unpicklable(workflow_id, dag) from None

    def _find_unpicklable(self, workflow_id: str, dag: FlatDAG) -> SerializationError:
        for spec in dag.specs:
            parts: list[tuple[str, Any]] = [("function", spec.func), ("options", spec.options)]
            parts += [(f"argument {i}", a) for i, a in enumerate(spec.args)]
            parts += [(f"argument {k!r}", v) for k, v in spec.kwargs.items()]
            for label, value in parts:
                try:
                    self.serializer.dumps(value)
                except SerializationError as err:
                    return SerializationError(
                        f"workflow {workflow_id!r}, task {spec.task_id!r}: {label} cannot be "
                        f"pickled: {err}",
                        workflow_id=workflow_id,
                        task_id=spec.task_id,
                        argument=label,
                    )
        return SerializationError(
            f"workflow {workflow_id!r}: the DAG cannot be pickled", workflow_id=workflow_id
        )

    def read_specs(self, workflow_id: str) -> dict[str, FlatDAG]:
        """Every stored spec batch, by batch name."""
        prefix = layout.specs_prefix(workflow_id)
        batches = {}
        for key in self.storage.list(prefix):
            raw = self._get(key, workflow_id)
            if raw is None:
                continue
            batches[key[len(prefix) :]] = self._load(raw, workflow_id, None, key)
        return batches

    # --- outputs --------------------------------------------------------------------------
    def write_output(
        self, workflow_id: str, task_id: str, value: Any, header: dict[str, Any] | None = None
    ) -> bool:
        """Store a task's checkpoint, create-only; False if one was already there.

        Raises:
            SerializationError: the output cannot be pickled (names the task).
        """
        try:
            data = self.serializer.dumps(value, header, key=layout.output_key(workflow_id, task_id))
        except SerializationError as err:
            raise SerializationError(
                f"workflow {workflow_id!r}, task {task_id!r}: output cannot be pickled: {err}",
                workflow_id=workflow_id,
                task_id=task_id,
                argument="output",
            ) from err
        return self._create(layout.output_key(workflow_id, task_id), data, workflow_id, task_id)

    def write_forward(
        self, workflow_id: str, task_id: str, child: str, header: dict[str, Any]
    ) -> bool:
        """Store that a task's output is its continuation root ``child``'s output."""
        return self.write_output(workflow_id, task_id, None, {**header, _FORWARD: child})

    def has_output(self, workflow_id: str, task_id: str) -> bool:
        """Whether the task's checkpoint exists."""
        return self._get(layout.output_key(workflow_id, task_id), workflow_id) is not None

    def list_done(self, workflow_id: str) -> set[str]:
        """Ids of tasks with a checkpoint."""
        prefix = layout.outputs_prefix(workflow_id)
        return {key[len(prefix) :] for key in self.storage.list(prefix)}

    def read_output_header(self, workflow_id: str, task_id: str) -> dict[str, Any] | None:
        """The checkpoint's header (times, attempts), or None if there is no checkpoint."""
        key = layout.output_key(workflow_id, task_id)
        raw = self._get(key, workflow_id, task_id)
        if raw is None:
            return None
        try:
            what = self._what(workflow_id, task_id, key)
            return self.serializer.unwrap(raw, what=what, key=key)[0]
        except CheckpointCorruptError as err:
            raise type(err)(str(err), workflow_id=workflow_id, task_id=task_id, key=key) from None

    def read_output(self, workflow_id: str, task_id: str) -> Any:
        """A task's output, following continuations.

        Raises:
            KeyError: no checkpoint for the task (or its continuation).
            CheckpointCorruptError: naming workflow, task and key.
        """
        current = task_id
        for _ in range(1_000_000):
            key = layout.output_key(workflow_id, current)
            raw = self._get(key, workflow_id, current)
            if raw is None:
                raise KeyError(current)
            header, value = self._load_with_header(raw, workflow_id, current, key)
            if _FORWARD not in header:
                return value
            current = header[_FORWARD]
        raise CheckpointCorruptError(
            f"continuation chain of task {task_id!r} does not end", workflow_id=workflow_id
        )

    # --- task errors ----------------------------------------------------------------------
    def write_task_error(self, workflow_id: str, record: TaskErrorRecord) -> None:
        """Store the last failed attempt of a task."""
        self._put(layout.error_key(workflow_id, record.task_id), record.to_bytes(), workflow_id)

    def read_task_error(self, workflow_id: str, task_id: str) -> TaskErrorRecord | None:
        """The last failed attempt of a task, if any."""
        raw = self._get(layout.error_key(workflow_id, task_id), workflow_id, task_id)
        if raw is None:
            return None
        try:
            return TaskErrorRecord.from_bytes(raw)
        except (ValueError, KeyError, TypeError):
            return None  # informational only: a garbled error record must not block anything

    def list_task_errors(self, workflow_id: str) -> list[str]:
        """Ids of tasks with a recorded failed attempt."""
        prefix = layout.errors_prefix(workflow_id)
        return [key[len(prefix) :] for key in self.storage.list(prefix)]

    # --- lease and cancel -------------------------------------------------------------------
    def read_lease(self, workflow_id: str) -> tuple[LeaseRecord | None, bytes | None]:
        """The lease and its raw bytes (for compare-and-swap); (None, None) if absent.

        A garbled lease is returned as (None, raw) so that a runner can take it over.
        """
        raw = self._get(layout.lease_key(workflow_id), workflow_id)
        if raw is None:
            return None, None
        try:
            return LeaseRecord.from_bytes(raw), raw
        except (ValueError, KeyError, TypeError):
            return None, raw

    # A lease is written without power-cut durability (Storage.volatile): a power cut kills
    # every runner of the machine whose storage lost it, and a lost or garbled lease reads as
    # "no live owner" (RESUMABLE), which is what the workflow then is. Create-only and
    # compare-and-swap keep their atomicity, which is what makes a lease exclusive.
    def create_lease(self, workflow_id: str, lease: LeaseRecord) -> bool:
        """Claim a free lease; False if one exists."""
        with self.storage.volatile():
            return self._create(layout.lease_key(workflow_id), lease.to_bytes(), workflow_id, None)

    def swap_lease(self, workflow_id: str, old: bytes, lease: LeaseRecord) -> bool:
        """Replace the lease if it still is ``old``."""
        key = layout.lease_key(workflow_id)
        try:
            with self.storage.volatile():
                return self.storage.swap(key, old, lease.to_bytes())
        except StorageError as err:
            raise self._tag(err, workflow_id, None, key) from None

    def delete_lease(self, workflow_id: str) -> None:
        """Remove the lease."""
        with self.storage.volatile():
            self._delete(layout.lease_key(workflow_id), workflow_id)

    def request_cancel(self, workflow_id: str) -> None:
        """Ask the runner to cancel."""
        self._put(layout.cancel_key(workflow_id), str(time.time()).encode(), workflow_id)

    def cancel_requested(self, workflow_id: str) -> bool:
        """Whether a cancel request is stored."""
        return self._get(layout.cancel_key(workflow_id), workflow_id) is not None
