"""What Ray's ``ray.workflow.common`` gave its users: ``WorkflowRef``, ``WorkflowStatus``, ...

``from durableflow.common import WorkflowRef`` replaces ``from ray.workflow.common import
WorkflowRef`` (after :func:`durableflow.install_ray_workflow`, the Ray import works as it is).
"""

from __future__ import annotations

from durableflow.model.dag import WorkflowRef
from durableflow.model.status import WorkflowStatus
from durableflow.model.task import WORKFLOW_OPTIONS_KEY

__all__ = ["WORKFLOW_OPTIONS", "WorkflowRef", "WorkflowStatus"]

WORKFLOW_OPTIONS = WORKFLOW_OPTIONS_KEY
"""The ``_metadata`` namespace of ``workflow.options(...)``: ``"workflow.io/options"``."""
