"""Ray Workflows compatibility: ``workflow.options`` and the ``ray.workflow`` module aliases.

``workflow.options(...)`` returns a :class:`WorkflowOptions`: a mapping, so Ray's
``f.options(**workflow.options(...))`` works, and a decorator, so Ray's
``@workflow.options(task_id=..., metadata=...)`` over ``@ray.remote`` (or over ``@workflow.task``)
works too.

:func:`install_ray_workflow` (or ``python -m durableflow run script.py``) makes
``ray.workflow``, ``ray.workflow.exceptions`` and ``ray.workflow.common`` aliases of
``durableflow.workflow``, ``durableflow.errors`` and ``durableflow.common``, so a program written
for Ray Workflows runs unmodified on a Ray that no longer has them. It is opt-in: nothing here
runs on import.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from durableflow.errors import ResumeNotFoundError, WorkflowNotFoundError
from durableflow.model.task import WORKFLOW_OPTIONS_KEY, TaskFunction, workflow_options

__all__ = [
    "ALIASES",
    "WorkflowOptions",
    "check_limit",
    "install_ray_workflow",
    "resume_not_found_as_not_resumable",
    "uninstall_ray_workflow",
]

_NAMES = frozenset(
    {
        "task_id",
        "metadata",
        "catch_exceptions",
        "checkpoint",
        "max_retries",
        "retry_exceptions",
        "timeout_s",
    }
)

ALIASES = {
    "ray.workflow": "durableflow.workflow",
    "ray.workflow.exceptions": "durableflow.errors",
    "ray.workflow.common": "durableflow.common",
}
"""The modules :func:`install_ray_workflow` registers: Ray's name -> ours."""


class WorkflowOptions(Mapping[str, Any]):
    """What ``workflow.options(...)`` returns: Ray's option mapping, usable as a decorator.

    As a mapping it is ``{"_metadata": {"workflow.io/options": {...}}}``, Ray Workflows' shape,
    for ``f.options(**workflow.options(...))``. Called on a ``@ray.remote`` function it adds the
    options to the function's defaults and returns the function (so ``.options(...)``,
    ``.bind(...)`` and ``.remote(...)`` keep working); called on a ``@workflow.task`` function it
    returns a copy with the options.

    Args:
        **options: ``task_id``, ``metadata``, ``catch_exceptions``, ``checkpoint``,
            ``max_retries``, ``retry_exceptions``.

    Raises:
        ValueError: an unknown option, or ``metadata`` that is not a JSON-serializable dict
            (what Ray raised).
    """

    __slots__ = ("_items",)

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - _NAMES)
        if unknown:
            valid = ", ".join(sorted(_NAMES))
            raise ValueError(f"invalid workflow option(s) {', '.join(unknown)}; valid: {valid}")
        metadata = options.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
            try:
                json.dumps(metadata)
            except (TypeError, ValueError) as err:
                raise ValueError(f"metadata must be JSON-serializable: {err}") from None
        self._items: dict[str, Any] = workflow_options(**options)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def workflow_fields(self) -> dict[str, Any]:
        """The workflow options given (``task_id``, ``metadata``, ...)."""
        return dict(self._items["_metadata"][WORKFLOW_OPTIONS_KEY])

    def __call__(self, func: Any) -> Any:
        """Decorate a ``@ray.remote`` or ``@workflow.task`` function with these options.

        Raises:
            ValueError: ``func`` is neither (Ray raised the same).
        """
        if isinstance(func, TaskFunction):
            return func.options(**self)
        remote_function = _ray_remote_function_type()
        if remote_function is not None and isinstance(func, remote_function):
            from durableflow.ray.dag import merge_metadata

            defaults: dict[str, Any] = getattr(func, "_default_options")  # noqa: B009
            defaults["_metadata"] = merge_metadata(defaults.get("_metadata"), self["_metadata"])
            return func
        raise ValueError(
            "workflow.options(...) decorates a @ray.remote or @workflow.task function, "
            f"not {func!r}"
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.workflow_fields.items())
        return f"workflow.options({fields})"


def check_limit(name: str, value: object, minimum: int) -> None:
    """Check a ``workflow.init`` limit as Ray did.

    Raises:
        TypeError: not an int (nor None).
        ValueError: below ``minimum``.
    """
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


@contextlib.contextmanager
def resume_not_found_as_not_resumable(workflow_id: str) -> Iterator[None]:
    """Raise a resume of an unknown id as :class:`~durableflow.errors.ResumeNotFoundError`.

    That is a WorkflowNotFoundError (ours) and a WorkflowNotResumableError (what Ray raised).
    """
    try:
        yield
    except ResumeNotFoundError:
        raise
    except WorkflowNotFoundError as err:
        if err.task_id is not None or err.workflow_id not in (None, workflow_id):
            raise
        raise ResumeNotFoundError(str(err), workflow_id=workflow_id) from err.__cause__


def _ray_remote_function_type() -> type | None:
    if "ray" not in sys.modules:
        return None
    importlib.import_module("durableflow.ray.dag")  # Ray takes ``_metadata`` again
    from ray.remote_function import RemoteFunction

    result: type = RemoteFunction
    return result


_saved: dict[str, Any] = {}


def install_ray_workflow() -> None:
    """Make ``ray.workflow``, ``ray.workflow.exceptions`` and ``ray.workflow.common`` ours.

    After this, ``from ray import workflow`` gives ``durableflow.workflow`` (and
    ``from ray.workflow.exceptions import WorkflowError``, ``from ray.workflow.common import
    WorkflowRef`` give ours), so an unmodified Ray Workflows program runs on a current Ray.
    Call it before the program imports ``ray.workflow``; calling it again does nothing.
    :func:`uninstall_ray_workflow` puts back what was there.

    Raises:
        ImportError: Ray is not installed (with the install hint).
    """
    try:
        import ray
    except ImportError as err:
        raise ImportError(
            "install_ray_workflow() aliases ray.workflow, so it needs Ray: install the ray extra "
            "(pip install '.[ray]' in a clone of durableflow) or pip install ray"
        ) from err
    for alias, ours in ALIASES.items():
        module = importlib.import_module(ours)
        if sys.modules.get(alias) is module:
            continue
        _saved.setdefault(alias, sys.modules.get(alias))
        sys.modules[alias] = module
    _saved.setdefault("ray:workflow", ray.__dict__.get("workflow"))
    setattr(ray, "workflow", sys.modules["ray.workflow"])  # noqa: B010 (``import ray.workflow``)


def uninstall_ray_workflow() -> None:
    """Undo :func:`install_ray_workflow` (for tests and notebooks)."""
    ray = sys.modules.get("ray")
    for alias in ALIASES:
        if alias not in _saved:
            continue
        previous = _saved.pop(alias)
        if previous is None:
            sys.modules.pop(alias, None)
        else:
            sys.modules[alias] = previous
    if "ray:workflow" in _saved:
        previous = _saved.pop("ray:workflow")
        if ray is not None:
            if previous is None:
                ray.__dict__.pop("workflow", None)
            else:
                setattr(ray, "workflow", previous)  # noqa: B010
