"""Executors: where task attempts run. The interface (:mod:`.base`) and the embedded ones.

An executor ships ``execute_task(call)`` (a :class:`~durableflow.model.calls.TaskCall`) and
hands back its :class:`~durableflow.model.calls.TaskOutcome`. The thread and process pools are
in :mod:`.local`; the Ray executor is :mod:`durableflow.ray.executor`, with the rest of Ray.
"""

from durableflow.executors.base import Executor
from durableflow.executors.local import ProcessExecutor, ThreadExecutor

__all__ = ["Executor", "ProcessExecutor", "ThreadExecutor"]
