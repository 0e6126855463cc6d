"""Errors of virtual actors, under the durableflow tree (:mod:`durableflow.errors`).

The tree::

    WorkflowError
    ├── WorkflowNotFoundError   (also a ValueError)
    │   └── ActorNotFoundError          no actor with this id is stored
    ├── WorkflowExistsError     (also a ValueError)
    │   └── ActorExistsError            ``create`` of an id that is taken
    ├── WorkflowExecutionError
    │   └── ActorCallError              a method raised; ``__cause__`` is its exception
    └── ActorDefinitionError    (also a TypeError) a class or method that cannot be an actor's

Each carries ``workflow_id`` (the actor id, as Ray 1.x stored an actor as a workflow of that id)
and ``actor_id``; ``ActorCallError`` also ``seq`` (the call number) and ``method``.
"""

from __future__ import annotations

from durableflow.errors import (
    WorkflowError,
    WorkflowExecutionError,
    WorkflowExistsError,
    WorkflowNotFoundError,
)

__all__ = ["ActorCallError", "ActorDefinitionError", "ActorExistsError", "ActorNotFoundError"]


class ActorNotFoundError(WorkflowNotFoundError):
    """No virtual actor with this id is stored (also a ``WorkflowNotFoundError``)."""

    @property
    def actor_id(self) -> str | None:
        """The actor id asked for."""
        return self.workflow_id


class ActorExistsError(WorkflowExistsError):
    """``create`` of an actor id that is stored already."""

    @property
    def actor_id(self) -> str | None:
        """The actor id that is taken."""
        return self.workflow_id


class ActorCallError(WorkflowExecutionError):
    """A method call of a virtual actor raised; its exception is ``__cause__``.

    The actor's state is the one before the call (a failed call commits no state change).

    Attributes:
        seq: the call's number in the actor's call log.
        method: the method's name.
    """

    def __init__(
        self,
        message: str,
        *,
        workflow_id: str | None = None,
        task_id: str | None = None,
        seq: int | None = None,
        method: str | None = None,
    ) -> None:
        super().__init__(message, workflow_id=workflow_id, task_id=task_id)
        self.seq = seq
        self.method = method

    @property
    def actor_id(self) -> str | None:
        """The actor whose call failed."""
        return self.workflow_id


class ActorDefinitionError(WorkflowError, TypeError):
    """A class or a method that cannot be used as a virtual actor's (also a ``TypeError``)."""
