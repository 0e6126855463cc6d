"""Executors: where task attempts run. One small interface, one file per implementation."""

from durableflow.executors.base import Executor
from durableflow.executors.local import ProcessExecutor, ThreadExecutor

__all__ = ["Executor", "ProcessExecutor", "ThreadExecutor"]
