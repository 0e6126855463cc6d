"""durableflow: durable workflows for Python with the ray.workflow API.

``from durableflow import workflow`` is the drop-in for ``from ray import workflow``.
"""

from durableflow import workflow
from durableflow.client import Client
from durableflow.errors import (
    CheckpointCorruptError,
    CheckpointSignatureError,
    EnvironmentMismatchError,
    InvalidWorkflowIdError,
    SerializationError,
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    StorageURLError,
    WorkflowCancellationError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowIncompleteError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowQueueFullError,
    WorkflowStillActiveError,
)
from durableflow.model.dag import InputNode
from durableflow.model.status import WorkflowStatus
from durableflow.model.task import TaskFunction, TaskOptions, task
from durableflow.storage.base import Storage

__version__ = "0.1.0"

__all__ = [
    "CheckpointCorruptError",
    "CheckpointSignatureError",
    "Client",
    "EnvironmentMismatchError",
    "InputNode",
    "InvalidWorkflowIdError",
    "SerializationError",
    "Storage",
    "StorageError",
    "StorageFullError",
    "StorageURLError",
    "StorageUnavailableError",
    "TaskFunction",
    "TaskOptions",
    "WorkflowCancellationError",
    "WorkflowError",
    "WorkflowExecutionError",
    "WorkflowIncompleteError",
    "WorkflowNotFoundError",
    "WorkflowNotResumableError",
    "WorkflowQueueFullError",
    "WorkflowStatus",
    "WorkflowStillActiveError",
    "__version__",
    "task",
    "workflow",
]
