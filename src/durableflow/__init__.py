"""durableflow: durable workflows for Python with the ray.workflow API.

``from durableflow import workflow`` is the drop-in for ``from ray import workflow``;
``durableflow.install_ray_workflow()`` (or ``python -m durableflow run script.py``) makes
``from ray import workflow`` itself give it, for programs that cannot be edited.
"""

from durableflow import workflow
from durableflow.client import Client
from durableflow.compat import install_ray_workflow, uninstall_ray_workflow
from durableflow.errors import (
    CheckpointCorruptError,
    CheckpointSignatureError,
    EnvironmentMismatchError,
    InvalidWorkflowIdError,
    ResumeNotFoundError,
    RuntimeEnvError,
    SerializationError,
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    StorageURLError,
    WorkflowCancellationError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowExistsError,
    WorkflowIncompleteError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowQueueFullError,
    WorkflowStillActiveError,
    WorkflowTimeoutError,
)
from durableflow.model.dag import InputNode, WorkflowRef
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
    "ResumeNotFoundError",
    "RuntimeEnvError",
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
    "WorkflowExistsError",
    "WorkflowIncompleteError",
    "WorkflowNotFoundError",
    "WorkflowNotResumableError",
    "WorkflowQueueFullError",
    "WorkflowRef",
    "WorkflowStatus",
    "WorkflowStillActiveError",
    "WorkflowTimeoutError",
    "__version__",
    "install_ray_workflow",
    "task",
    "uninstall_ray_workflow",
    "workflow",
]
