"""Executor names a Client accepts: thread (default), process, ray, or an Executor.

Executors are plugins named like storage schemes (:func:`~durableflow.storage.register_scheme`):
:func:`register_executor` maps a name to a factory, or to ``"module:attribute"`` imported only
when the name is used (so ``import durableflow`` needs no optional dependency: ``ray`` is such a
lazy entry).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from durableflow import config
from durableflow.executors.base import Executor
from durableflow.executors.local import ProcessExecutor, ThreadExecutor

__all__ = ["EXECUTORS", "make_executor", "register_executor"]

ExecutorFactory = Callable[[], Executor]

EXECUTORS: dict[str, ExecutorFactory | str] = {
    "thread": ThreadExecutor,
    "process": ProcessExecutor,
    "ray": "durableflow.ray.executor:RayExecutor",
}
"""Name -> a factory returning a new Executor, or ``"module:attribute"`` of one (lazy)."""


def register_executor(name: str, factory: ExecutorFactory | str) -> None:
    """Make ``Client(executor=name)`` (and ``DURABLEFLOW_EXECUTOR=name``) use ``factory``.

    Args:
        name: the executor's name, case-insensitive; an existing name is replaced.
        factory: a callable taking no argument and returning a new
            :class:`~durableflow.executors.base.Executor` (a class will do), or
            ``"module:attribute"`` naming one, imported when the name is first used.
    """
    if not isinstance(factory, str) and not callable(factory):
        raise TypeError(f"executor {name!r}: factory must be callable or 'module:attr'")
    EXECUTORS[name.lower()] = factory


def make_executor(spec: str | Executor | None) -> Executor:
    """An executor from a name (thread, process, ray, or a registered one) or an instance.

    Raises:
        ValueError: an unknown name.
        TypeError: the factory did not return an Executor.
    """
    if isinstance(spec, Executor):
        return spec
    name = (spec or config.executor_from_env()).lower()
    factory = EXECUTORS.get(name)
    if factory is None:
        known = ", ".join(sorted(EXECUTORS))
        raise ValueError(f"unknown executor {spec!r}; expected one of {known}")
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
    executor = factory()
    if not isinstance(executor, Executor):
        raise TypeError(f"executor {name!r} made {executor!r}, which is not an Executor")
    return executor
