"""Every exception durableflow raises, under one root.

The tree::

    WorkflowError
    ├── InvalidWorkflowIdError            (also a ValueError)
    ├── WorkflowNotFoundError             (also a ValueError) unknown workflow or task id
    │   └── ResumeNotFoundError           resume of an unknown id (also WorkflowNotResumableError)
    ├── WorkflowExecutionError            a task failed; ``__cause__`` is the task's exception
    ├── WorkflowCancellationError         the workflow was canceled
    ├── WorkflowTimeoutError              (also a TimeoutError) a task attempt or a workflow
    │                                     ran past its ``timeout_s``
    ├── WorkflowNotResumableError         e.g. resume of a CANCELED workflow
    │   ├── EnvironmentMismatchError      env_policy="error" and the environment changed
    │   └── ResumeNotFoundError           (see above)
    ├── WorkflowIncompleteError           (also a ValueError) output of a workflow that stopped
    ├── WorkflowStillActiveError          (also a RuntimeError) another runner owns it, or
    │                                     delete while running
    ├── WorkflowQueueFullError            (also a queue.Full) max_pending_workflows reached
    ├── SerializationError                an argument or output cannot be pickled
    ├── RuntimeEnvError                   a task's ``runtime_env`` cannot be built or used
    └── StorageError                      anything the storage layer reports
        ├── StorageURLError               unknown scheme, unusable path, bad parameter
        ├── StorageUnavailableError       the backend cannot be reached or refused the request
        ├── StorageFullError              no space left
        └── CheckpointCorruptError        a stored value fails its checksum or cannot be read
            └── CheckpointSignatureError  unsigned or tampered value while a signing key is set

The second bases are what Ray Workflows raised in the same place, so a Ray-era ``except
ValueError`` / ``except RuntimeError`` / ``except queue.Full`` clause still catches ours.

Every error carries ``workflow_id`` (and ``task_id`` / ``key`` where they apply) as attributes.
One warning category, ``EnvironmentChangedWarning``, is issued on resume with ``env_policy="warn"``.
"""

from __future__ import annotations

import queue

__all__ = [
    "CheckpointCorruptError",
    "CheckpointSignatureError",
    "EnvironmentChangedWarning",
    "EnvironmentMismatchError",
    "InvalidWorkflowIdError",
    "ResumeNotFoundError",
    "RuntimeEnvError",
    "SerializationError",
    "StorageError",
    "StorageFullError",
    "StorageURLError",
    "StorageUnavailableError",
    "WorkflowCancellationError",
    "WorkflowError",
    "WorkflowExecutionError",
    "WorkflowIncompleteError",
    "WorkflowNotFoundError",
    "WorkflowNotResumableError",
    "WorkflowQueueFullError",
    "WorkflowStillActiveError",
    "WorkflowTimeoutError",
]


class WorkflowError(Exception):
    """Root of every durableflow error.

    Attributes:
        workflow_id: the workflow concerned, or None when no workflow is.
        task_id: the task concerned, or None.
    """

    def __init__(
        self, message: str, *, workflow_id: str | None = None, task_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id
        self.task_id = task_id

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only attributes survive pickling (process pools, Ray, checkpoints).
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


def _rebuild(cls: type[WorkflowError], message: str, state: dict[str, object]) -> WorkflowError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class InvalidWorkflowIdError(WorkflowError, ValueError):
    """A workflow id that is empty, too long, or has separators or control characters."""


class WorkflowNotFoundError(WorkflowError, ValueError):
    """No workflow with this id is stored, or it has no task with this id.

    Also a ``ValueError``: Ray Workflows raised one for an unknown workflow or task id.
    """


class WorkflowExecutionError(WorkflowError):
    """A task failed after its retries; the task's exception is ``__cause__``."""


class WorkflowCancellationError(WorkflowError):
    """The workflow was canceled, so it has no output."""


class WorkflowTimeoutError(WorkflowError, TimeoutError):
    """A task attempt, or a whole workflow run, ran longer than its ``timeout_s``.

    A task's timeout is retried like a system error (up to ``max_retries``); when no retry is
    left it is the ``__cause__`` of the :class:`WorkflowExecutionError` that ``run`` raises. A
    workflow's timeout fails the workflow (FAILED) and is that error's cause.

    Attributes:
        limit_s: the ``timeout_s`` that was exceeded.
        elapsed_s: how long the attempt (or the run) had been running when it was stopped.
    """

    def __init__(
        self,
        message: str,
        *,
        workflow_id: str | None = None,
        task_id: str | None = None,
        limit_s: float | None = None,
        elapsed_s: float | None = None,
    ) -> None:
        super().__init__(message, workflow_id=workflow_id, task_id=task_id)
        self.limit_s = limit_s
        self.elapsed_s = elapsed_s


class WorkflowNotResumableError(WorkflowError):
    """The workflow is in a state that cannot be resumed (CANCELED)."""


class WorkflowExistsError(WorkflowError, ValueError):
    """The id a new workflow would take (a fork's) is taken by a stored workflow."""


class ResumeNotFoundError(WorkflowNotFoundError, WorkflowNotResumableError):
    """``resume`` of an id that is not stored.

    Both a :class:`WorkflowNotFoundError` (what durableflow raises for an unknown id everywhere)
    and a :class:`WorkflowNotResumableError` (what Ray Workflows raised on resume).
    """


class EnvironmentMismatchError(WorkflowNotResumableError):
    """A resume refused because the environment differs from the recorded one (policy "error").

    Attributes:
        diff: the :class:`~durableflow.model.environment.EnvironmentDiff` that was found.
    """

    def __init__(
        self,
        message: str,
        *,
        workflow_id: str | None = None,
        task_id: str | None = None,
        diff: object = None,
    ) -> None:
        super().__init__(message, workflow_id=workflow_id, task_id=task_id)
        self.diff = diff


class EnvironmentChangedWarning(UserWarning):
    """A workflow resumes in an environment that differs from the recorded one (policy "warn")."""


class WorkflowIncompleteError(WorkflowError, ValueError):
    """The workflow stopped before finishing (RESUMABLE or FAILED) and nobody runs it now.

    Also a ``ValueError``, as Ray's ``get_output`` of a stopped workflow raised.
    """


class WorkflowStillActiveError(WorkflowError, RuntimeError):
    """Another runner owns the workflow, or an action needs it stopped first.

    Also a ``RuntimeError``, as Ray's ``run`` / ``resume`` of a running workflow raised.
    """


class WorkflowQueueFullError(WorkflowError, queue.Full):
    """``max_pending_workflows`` workflows already wait for a slot.

    Also a ``queue.Full``, as Ray Workflows raised.
    """


class SerializationError(WorkflowError):
    """A value cannot be pickled or unpickled.

    Attributes:
        argument: the argument's name or position, when an argument is at fault.
    """

    def __init__(
        self,
        message: str,
        *,
        workflow_id: str | None = None,
        task_id: str | None = None,
        argument: str | None = None,
    ) -> None:
        super().__init__(message, workflow_id=workflow_id, task_id=task_id)
        self.argument = argument


class RuntimeEnvError(WorkflowError):
    """A task's ``runtime_env`` is invalid, cannot be built, or its process failed around it.

    Names the task; a build failure carries the tail of the installer's output.
    """


class StorageError(WorkflowError):
    """The storage failed or refused an operation.

    Attributes:
        key: the storage key concerned, when one is.
    """

    def __init__(
        self,
        message: str,
        *,
        workflow_id: str | None = None,
        task_id: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message, workflow_id=workflow_id, task_id=task_id)
        self.key = key


class StorageURLError(StorageError, ValueError):
    """A storage URL with an unknown scheme, an unusable path, or a bad parameter."""


class StorageUnavailableError(StorageError):
    """The storage cannot be reached, or refused the request."""


class StorageFullError(StorageError):
    """The storage has no space left; nothing was half-written."""


class CheckpointCorruptError(StorageError):
    """A stored value is truncated, garbled, or not a durableflow value."""


class CheckpointSignatureError(CheckpointCorruptError):
    """A stored value is unsigned or its signature does not match the signing key."""
