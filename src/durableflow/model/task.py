"""Task functions and their options: ``@workflow.task``, ``.bind()``, ``.options()``."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from durableflow.model.environment import redact_executor_options
from durableflow.model.ids import validate_task_id

if TYPE_CHECKING:
    from durableflow.model.dag import TaskNode

__all__ = ["WORKFLOW_OPTIONS_KEY", "TaskFunction", "TaskOptions", "task", "workflow_options"]

P = ParamSpec("P")
R = TypeVar("R")

# Ray's ``workflow.options(...)`` returns {"_metadata": {WORKFLOW_OPTIONS_KEY: {...}}}, which
# users pass to ``f.options(**...)``; we read the same shape.
WORKFLOW_OPTIONS_KEY = "workflow.io/options"
_WORKFLOW_FIELDS = (
    "task_id",
    "max_retries",
    "retry_exceptions",
    "catch_exceptions",
    "checkpoint",
    "metadata",
    "timeout_s",
)

RetryExceptions = bool | tuple[type[BaseException], ...]

log = logging.getLogger("durableflow")


def _refuse_unsupported(func: Callable[..., Any]) -> None:
    """Raise TypeError for generator and async generator functions: they cannot checkpoint.

    Calling one returns a generator object, not a value: the task would "finish" at once and
    then fail to pickle that object. Refused at decoration, where the mistake is. ``async def``
    functions are tasks (run on an event loop: docs/tasks.md).
    """
    name = getattr(func, "__qualname__", None) or repr(func)
    candidates: list[Any] = [func]
    if not inspect.isroutine(func) and not isinstance(func, (type, functools.partial)):
        candidates.append(type(func).__call__)  # an object whose __call__ is a generator
    for candidate in candidates:
        if inspect.isasyncgenfunction(candidate):
            raise TypeError(
                f"{name} is an async generator function: a task must return its value, not "
                "yield it (a generator cannot be checkpointed); make it an `async def` that "
                "returns a list"
            )
        if inspect.isgeneratorfunction(candidate):
            raise TypeError(
                f"{name} is a generator function: a task must return its value, not yield it "
                "(a generator cannot be checkpointed); return a list instead"
            )


# Functions already warned about being called directly (once per function, per process).
_warned_direct: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()
_warned_direct_ids: set[int] = set()  # functions that cannot be weakly referenced
_warned_lock = threading.Lock()


def _first_direct_call(func: Callable[..., Any]) -> bool:
    """True the first time ``func`` is called directly as a task in this process."""
    with _warned_lock:
        try:
            if func in _warned_direct:
                return False
            _warned_direct.add(func)
        except TypeError:
            if id(func) in _warned_direct_ids:
                return False
            _warned_direct_ids.add(id(func))
    return True


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """How one task runs. Persisted with the task, so it must pickle.

    Attributes:
        task_id: explicit id; None derives one from the function's module and name.
        max_retries: retries after the first attempt (-1: no limit). System errors are
            always retried up to this; application errors only as ``retry_exceptions`` says.
        retry_exceptions: True, or exception types whose instances are retried.
        catch_exceptions: the output becomes ``(result, None)`` or ``(None, exception)``.
        checkpoint: False keeps the output in memory only; it is recomputed on resume.
        metadata: JSON-serializable user metadata, shown by ``get_metadata``.
        executor_options: passed to the executor (``num_cpus``, ``resources``, ...).
        timeout_s: seconds one attempt may run (None: no limit). An attempt past it is stopped
            where its executor can stop it, recorded as failed with a ``WorkflowTimeoutError``
            and retried like a system error (see docs/tasks.md).
    """

    task_id: str | None = None
    max_retries: int = 3
    retry_exceptions: RetryExceptions = False
    catch_exceptions: bool = False
    checkpoint: bool = True
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    executor_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.task_id is not None:
            validate_task_id(self.task_id)
        limit = self.timeout_s
        if limit is not None and (
            isinstance(limit, bool)
            or not isinstance(limit, (int, float))
            or not limit > 0
            or limit == float("inf")
        ):
            raise ValueError(f"timeout_s must be a number of seconds > 0 or None, got {limit!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < -1:
            raise ValueError(f"max_retries must be an int >= -1, got {self.max_retries!r}")
        retry = self.retry_exceptions
        if isinstance(retry, list):
            object.__setattr__(self, "retry_exceptions", retry := tuple(retry))
        if not isinstance(retry, bool) and not (
            isinstance(retry, tuple)
            and all(isinstance(t, type) and issubclass(t, BaseException) for t in retry)
        ):
            raise TypeError(f"retry_exceptions must be a bool or exception types, got {retry!r}")
        if not isinstance(self.metadata, Mapping):
            raise TypeError(f"metadata must be a dict, got {type(self.metadata).__name__}")
        try:
            json.dumps(dict(self.metadata))
        except (TypeError, ValueError) as err:
            raise ValueError(f"task metadata must be JSON-serializable: {err}") from None

    def merged(self, **changes: Any) -> TaskOptions:
        """A copy with ``changes``; unknown names become executor options.

        Accepts Ray's shape too: ``_metadata={"workflow.io/options": {...}}``.
        """
        fields: dict[str, Any] = {}
        executor = dict(self.executor_options)
        ray_meta = changes.pop("_metadata", None)
        if ray_meta:
            fields.update(ray_meta.get(WORKFLOW_OPTIONS_KEY, {}))
            rest = {k: v for k, v in ray_meta.items() if k != WORKFLOW_OPTIONS_KEY}
            if rest:
                executor["_metadata"] = rest
        for name, value in changes.items():
            if name in _WORKFLOW_FIELDS or name == "executor_options":
                fields[name] = value
            else:
                executor[name] = value
        if "executor_options" in fields:
            executor.update(fields.pop("executor_options"))
        if fields.get("metadata") is None:
            fields.pop("metadata", None)
        else:
            fields["metadata"] = {**self.metadata, **fields["metadata"]}
        return dataclasses.replace(self, executor_options=executor, **fields)

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly view for ``get_metadata``."""
        retry = self.retry_exceptions
        return {
            "task_id": self.task_id,
            "max_retries": self.max_retries,
            "retry_exceptions": retry
            if isinstance(retry, bool)
            else [f"{t.__module__}.{t.__qualname__}" for t in retry],
            "catch_exceptions": self.catch_exceptions,
            "checkpoint": self.checkpoint,
            "timeout_s": self.timeout_s,
            "metadata": dict(self.metadata),
            "executor_options": {
                k: repr(v) for k, v in redact_executor_options(self.executor_options).items()
            },
        }


def workflow_options(
    *,
    task_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    catch_exceptions: bool | None = None,
    checkpoint: bool | None = None,
    max_retries: int | None = None,
    retry_exceptions: RetryExceptions | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Ray's ``workflow.options``: a dict to pass as ``f.options(**workflow.options(...))``."""
    given = {
        "task_id": task_id,
        "metadata": metadata,
        "catch_exceptions": catch_exceptions,
        "checkpoint": checkpoint,
        "max_retries": max_retries,
        "retry_exceptions": retry_exceptions,
        "timeout_s": timeout_s,
    }
    return {"_metadata": {WORKFLOW_OPTIONS_KEY: {k: v for k, v in given.items() if v is not None}}}


class TaskFunction(Generic[P, R]):
    """A function made into a workflow task.

    ``f.bind(...)`` builds a DAG node. Calling ``f(...)`` runs the plain function here, outside
    any workflow: nothing is checkpointed, retried or recorded (handy in unit tests). Ray's
    ``ray.workflow`` raised TypeError there; durableflow keeps the call and logs a warning
    (logger ``durableflow``) the first time each function is called so.

    Raises:
        TypeError: ``func`` is not callable, or is a generator or async generator function.
    """

    def __init__(self, func: Callable[P, R], options: TaskOptions | None = None) -> None:
        if not callable(func):
            raise TypeError(f"a task must wrap a callable, got {func!r}")
        _refuse_unsupported(func)
        self._func = func
        self._options = options or TaskOptions()
        self._signature: inspect.Signature | None = None
        functools.update_wrapper(self, func)

    @property
    def func(self) -> Callable[P, R]:
        """The wrapped function."""
        return self._func

    @property
    def task_options(self) -> TaskOptions:
        """The options every node bound from this function starts with."""
        return self._options

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the function directly, outside any workflow (nothing is checkpointed)."""
        if _first_direct_call(self._func):
            name = getattr(self._func, "__qualname__", repr(self._func))
            log.warning(
                "task %s was called directly: it ran as a plain function and nothing was "
                "checkpointed; use %s.bind(...) and workflow.run(...) to run it as a task "
                "(this warning is logged once per function)",
                name,
                name,
            )
        return self._func(*args, **kwargs)

    def options(self, **options: Any) -> TaskFunction[P, R]:
        """A copy with changed options (task_id, max_retries, ..., executor options)."""
        return TaskFunction(self._func, self._options.merged(**options))

    def check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise TypeError if the arguments do not fit the function's signature."""
        if self._signature is None:
            try:
                self._signature = inspect.signature(self._func)
            except (TypeError, ValueError):
                return  # builtins without a signature: checked when called
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{self._func.__qualname__}(): {err}") from None

    def bind(self, *args: Any, **kwargs: Any) -> TaskNode:
        """A DAG node that calls the function with these arguments (nodes are resolved)."""
        from durableflow.model.dag import TaskNode

        self.check_arguments(args, kwargs)
        return TaskNode(self._func, args, kwargs, self._options)

    # Ray 1.x: ``f.step(*args)`` is ``f.bind(*args)``.
    step = bind

    def __repr__(self) -> str:
        return f"<durableflow task {self._func.__module__}.{self._func.__qualname__}>"


@overload
def task(func: Callable[P, R], /) -> TaskFunction[P, R]: ...


@overload
def task(
    func: None = None, /, **options: Any
) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...


def task(
    func: Callable[P, R] | None = None, /, **options: Any
) -> TaskFunction[P, R] | Callable[[Callable[P, R]], TaskFunction[P, R]]:
    """Make a function a workflow task: ``@task`` or ``@task(max_retries=5, ...)``."""
    if func is not None:
        if options:
            raise TypeError("use @task or @task(**options), not both")
        return TaskFunction(func)

    def decorate(f: Callable[P, R]) -> TaskFunction[P, R]:
        return TaskFunction(f, TaskOptions().merged(**options))

    return decorate
