"""The error tree: ours, and also what Ray Workflows raised in the same place (issue 11.3)."""

from __future__ import annotations

import pickle
import queue

import pytest

from durableflow import errors
from durableflow.errors import (
    EnvironmentMismatchError,
    ResumeNotFoundError,
    WorkflowError,
    WorkflowIncompleteError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowQueueFullError,
    WorkflowStillActiveError,
)


@pytest.mark.parametrize(
    ("error", "ray_base"),
    [
        (WorkflowNotFoundError, ValueError),
        (WorkflowIncompleteError, ValueError),
        (WorkflowStillActiveError, RuntimeError),
        (WorkflowQueueFullError, queue.Full),
        (ResumeNotFoundError, WorkflowNotResumableError),
        (ResumeNotFoundError, WorkflowNotFoundError),
        (ResumeNotFoundError, ValueError),
    ],
)
def test_each_error_is_also_what_ray_raised_in_its_place(error, ray_base):
    err = error("x", workflow_id="w")
    assert isinstance(err, WorkflowError)
    assert isinstance(err, ray_base)
    with pytest.raises(ray_base):
        raise err


def test_ray_era_except_clauses_catch_ours():
    caught = []
    for err in (
        WorkflowStillActiveError("running", workflow_id="w"),
        WorkflowQueueFullError("full", workflow_id="w"),
        WorkflowNotFoundError("No such workflow_id 'w'", workflow_id="w"),
    ):
        try:
            raise err
        except RuntimeError:
            caught.append("RuntimeError")
        except queue.Full:
            caught.append("queue.Full")
        except ValueError:
            caught.append("ValueError")
    assert caught == ["RuntimeError", "queue.Full", "ValueError"]


def test_errors_keep_class_and_attributes_through_pickling():
    for err in (
        ResumeNotFoundError("gone", workflow_id="w"),
        WorkflowQueueFullError("full", workflow_id="w"),
        WorkflowStillActiveError("busy", workflow_id="w", task_id="t"),
        EnvironmentMismatchError("env", workflow_id="w", diff={"python": "3.11"}),
    ):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err)
        assert (str(back), back.workflow_id, back.task_id) == (str(err), "w", err.task_id)
    assert pickle.loads(pickle.dumps(EnvironmentMismatchError("e", diff=1))).diff == 1


def test_every_public_error_is_under_the_root_and_in_the_module_docstring():
    names = [n for n in errors.__all__ if n.endswith("Error")]
    for name in names:
        assert issubclass(getattr(errors, name), WorkflowError), name
        assert name in (errors.__doc__ or ""), f"{name} missing from the tree"
