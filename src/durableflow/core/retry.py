"""The retry and catch policy of a failed task attempt."""

from __future__ import annotations

import enum

from durableflow.model.task import TaskOptions

__all__ = ["FailureAction", "on_failure"]


class FailureAction(enum.Enum):
    """What to do with a failed attempt."""

    RETRY = "retry"
    CATCH = "catch"
    """The task's output becomes ``(None, error)``."""
    FAIL = "fail"


def on_failure(
    options: TaskOptions,
    attempts: int,
    error: BaseException,
    system: bool,
    *,
    catchable: bool = True,
) -> FailureAction:
    """Decide after ``attempts`` attempts, the last of which raised ``error``.

    System errors (a lost worker, a storage fault) are retried up to ``max_retries``;
    application errors only when ``retry_exceptions`` is True or lists the error's type. When no
    retry is left, a task with ``catch_exceptions`` catches the error (a crashed worker too, as
    in Ray; not a storage fault, ``catchable=False``, which leaves the run RESUMABLE), else it
    fails the workflow.
    """
    retries_left = options.max_retries < 0 or attempts <= options.max_retries
    if retries_left:
        if system:
            return FailureAction.RETRY
        policy = options.retry_exceptions
        if policy is True or (isinstance(policy, tuple) and isinstance(error, policy)):
            return FailureAction.RETRY
    if options.catch_exceptions and catchable:
        return FailureAction.CATCH
    return FailureAction.FAIL
