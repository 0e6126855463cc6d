"""KeyAccess: typed get/put/create/delete of storage keys, errors tagged with the workflow.

The base of :class:`~durableflow.storage.status_index.StatusIndex` and
:class:`~durableflow.storage.store.WorkflowStore`: every storage error raised through it names
the workflow, task and key it was about, and every pickled value is loaded with its key (signed
values are bound to the key they were written under).
"""

from __future__ import annotations

from typing import Any

from durableflow.errors import CheckpointCorruptError, SerializationError, StorageError
from durableflow.storage.base import Storage
from durableflow.storage.serializer import Serializer

__all__ = ["KeyAccess"]


class KeyAccess:
    """Storage and serializer, with helpers that tag errors.

    Args:
        storage: where the bytes go.
        serializer: how values become bytes (checksums, optional signatures).
    """

    def __init__(self, storage: Storage, serializer: Serializer | None = None) -> None:
        self.storage = storage
        self.serializer = serializer or Serializer()

    @staticmethod
    def _what(workflow_id: str, task_id: str | None, key: str) -> str:
        task = f", task {task_id!r}" if task_id else ""
        return f"stored value of workflow {workflow_id!r}{task} ({key})"

    def _load(self, raw: bytes, workflow_id: str, task_id: str | None, key: str) -> Any:
        return self._load_with_header(raw, workflow_id, task_id, key)[1]

    def _load_with_header(
        self, raw: bytes, workflow_id: str, task_id: str | None, key: str
    ) -> tuple[dict[str, Any], Any]:
        try:
            return self.serializer.loads_with_header(
                raw, what=self._what(workflow_id, task_id, key), key=key
            )
        except CheckpointCorruptError as err:
            raise type(err)(str(err), workflow_id=workflow_id, task_id=task_id, key=key) from None
        except SerializationError as err:
            raise SerializationError(str(err), workflow_id=workflow_id, task_id=task_id) from err

    @staticmethod
    def _tag(err: StorageError, workflow_id: str, task_id: str | None, key: str) -> StorageError:
        tagged = type(err)(
            f"workflow {workflow_id!r}: {err}",
            workflow_id=workflow_id,
            task_id=task_id,
            key=err.key or key,
        )
        tagged.__cause__ = err.__cause__
        return tagged

    def _get(self, key: str, workflow_id: str, task_id: str | None = None) -> bytes | None:
        try:
            return self.storage.get(key)
        except StorageError as err:
            raise self._tag(err, workflow_id, task_id, key) from None

    def _put(self, key: str, data: bytes, workflow_id: str) -> None:
        try:
            self.storage.put(key, data)
        except StorageError as err:
            raise self._tag(err, workflow_id, None, key) from None

    def _create(self, key: str, data: bytes, workflow_id: str, task_id: str | None) -> bool:
        try:
            return self.storage.create(key, data)
        except StorageError as err:
            raise self._tag(err, workflow_id, task_id, key) from None

    def _delete(self, key: str, workflow_id: str) -> None:
        try:
            self.storage.delete(key)
        except StorageError as err:
            raise self._tag(err, workflow_id, None, key) from None
