"""Executor names a Client accepts: thread (default), process, ray, or an Executor."""

from __future__ import annotations

import importlib

from durableflow import config
from durableflow.executors.base import Executor
from durableflow.executors.local import ProcessExecutor, ThreadExecutor

__all__ = ["make_executor"]

_EXECUTORS: dict[str, str] = {"ray": "durableflow.executors.ray:RayExecutor"}


def make_executor(spec: str | Executor | None) -> Executor:
    """An executor from a name (thread, process, ray) or an instance."""
    if isinstance(spec, Executor):
        return spec
    name = (spec or config.executor_from_env()).lower()
    if name == "thread":
        return ThreadExecutor()
    if name == "process":
        return ProcessExecutor()
    if name in _EXECUTORS:
        module, _, cls = _EXECUTORS[name].partition(":")
        executor: Executor = getattr(importlib.import_module(module), cls)()
        return executor
    raise ValueError(f"unknown executor {spec!r}; expected thread, process or ray")
