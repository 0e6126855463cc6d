"""DAG nodes and the task specs a DAG becomes.

A DAG is built with ``TaskFunction.bind``; nothing runs until it is given to ``run``. This
module holds what a DAG is made of (:class:`TaskNode`, :class:`InputNode`, :class:`WorkflowRef`,
:class:`Continuation`) and what storage keeps of it (:class:`TaskSpec`, :class:`TaskRef`,
:class:`FlatDAG`; stored pickles name them here, so they stay here), and the walk over nested
arguments (:func:`map_values`, :func:`resolve_refs`). Turning a DAG into specs with
deterministic task ids (:func:`flatten`, :class:`IdAllocator`) and running one without storage
(:func:`execute`) live in :mod:`durableflow.model.flatten`; their names are re-exported here.
Specs are what storage keeps, so a different process can resume the workflow from them alone.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from durableflow.model.task import TaskOptions

if TYPE_CHECKING:
    from durableflow.model.flatten import IdAllocator, execute, flatten

__all__ = [
    "Continuation",
    "DAGNode",
    "FlatDAG",
    "IdAllocator",
    "InputAttributeNode",
    "InputNode",
    "TaskNode",
    "TaskRef",
    "TaskSpec",
    "WorkflowRef",
    "as_node",
    "default_task_id",
    "execute",
    "flatten",
    "map_values",
    "register_converter",
    "resolve_refs",
]


class DAGNode:
    """Base of everything that can stand in a DAG."""


class InputNode(DAGNode):
    """Placeholder for the extra arguments of ``workflow.run(dag, *args, **kwargs)``.

    ``inp`` itself is the single positional argument; ``inp[0]`` a positional argument;
    ``inp["x"]`` or ``inp.x`` a keyword argument. Usable as ``with InputNode() as inp:``.
    """

    def __enter__(self) -> InputNode:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getitem__(self, key: int | str) -> InputAttributeNode:
        return InputAttributeNode(key, "item")

    def __getattr__(self, name: str) -> InputAttributeNode:
        if name.startswith("__"):
            raise AttributeError(name)
        return InputAttributeNode(name, "attr")


@dataclasses.dataclass(frozen=True)
class InputAttributeNode(DAGNode):
    """One part of the run's input: ``inp[key]`` or ``inp.name``."""

    key: int | str
    kind: str

    def resolve(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """The value this node stands for, given the run's input."""
        key = self.key
        if isinstance(key, int):
            if key >= len(args) or key < -len(args):
                raise TypeError(
                    f"the DAG reads input [{key}] but run() got {len(args)} positional input(s)"
                )
            return args[key]
        if key in kwargs:
            return kwargs[key]
        if self.kind == "attr" and len(args) == 1 and hasattr(args[0], key):
            return getattr(args[0], key)
        raise TypeError(f"the DAG reads input {key!r} but run() got no such keyword input")


class TaskNode(DAGNode):
    """A call of a task function, bound to arguments that may hold other nodes."""

    __slots__ = ("args", "func", "kwargs", "task_options")

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: TaskOptions,
    ) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.task_options = options

    @property
    def name(self) -> str:
        """The task id this node gets when none is given (see :func:`default_task_id`)."""
        return default_task_id(self.func)

    def options(self, **options: Any) -> TaskNode:
        """A copy of this node with changed options."""
        return TaskNode(self.func, self.args, self.kwargs, self.task_options.merged(**options))

    def run(self, workflow_id: str | None = None, metadata: dict[str, Any] | None = None) -> Any:
        """Ray 1.x style: run this node as a workflow (see ``workflow.run``)."""
        return _hook("run")(self, workflow_id=workflow_id, metadata=metadata)

    def run_async(
        self, workflow_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Any:
        """Ray 1.x style: start this node as a workflow and return a future."""
        return _hook("run_async")(self, workflow_id=workflow_id, metadata=metadata)

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Run the DAG here and now, without storage (like Ray's ``dag.execute()``)."""
        from durableflow.model.flatten import execute

        return execute(self, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<TaskNode {self.name}>"


@dataclasses.dataclass(frozen=True)
class Continuation:
    """What a task returns to continue the workflow with another DAG."""

    node: TaskNode


def default_task_id(func: Callable[..., Any]) -> str:
    """A node's task id when none is given: Ray Workflows' rule.

    ``module.qualname``, the qualified name kept to ASCII letters, digits, ``_``, ``.``, ``-``
    (``mod.f.locals.g``). Ids are stored with the specs: workflows stored under the earlier
    rule (which kept ``<locals>``) resume with their own ids.
    """
    module = getattr(func, "__module__", None) or "__anonymous_module__"
    qualname = getattr(func, "__qualname__", None) or "__anonymous_func__"
    ascii_name = unicodedata.normalize("NFKD", qualname).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^\w.\-]", "", ascii_name, flags=re.ASCII).strip()
    return module + "." + re.sub(r"[-\s]+", "-", cleaned)


@dataclasses.dataclass(frozen=True)
class WorkflowRef:
    """Another task's output as an argument (Ray's ``ray.workflow.common.WorkflowRef``).

    ``f.bind(WorkflowRef("prep"))`` passes the output of the workflow's task ``prep`` (of this
    DAG, or one the workflow ran earlier: a continuation) to ``f``, which waits for it. A
    continuation naming a task its workflow lacks fails its parent task with a ``ValueError``.
    """

    task_id: str


@dataclasses.dataclass(frozen=True)
class TaskRef:
    """Placeholder for an upstream task's output inside a spec's arguments."""

    task_id: str


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Everything needed to run one task, as stored before the workflow starts.

    Attributes:
        task_id: unique in the workflow.
        func: the function (pickled by reference when importable, else by value).
        args: positional arguments, upstream outputs as TaskRef.
        kwargs: keyword arguments, likewise.
        options: the task's options.
        upstream: ids of the tasks whose outputs the arguments need, in order.
    """

    task_id: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: TaskOptions
    upstream: tuple[str, ...]

    @property
    def name(self) -> str:
        """The function's module and qualified name."""
        return f"{self.func.__module__}.{self.func.__qualname__}"


@dataclasses.dataclass(frozen=True)
class FlatDAG:
    """A DAG as specs in upstream-first order; ``root`` is the task whose output is the DAG's.

    ``outside`` names the tasks that :class:`WorkflowRef` arguments read and that are not in
    this DAG: tasks the workflow must already have (a new workflow cannot have any).
    """

    root: str
    specs: tuple[TaskSpec, ...]
    outside: tuple[str, ...] = ()


_CONVERTERS: list[Callable[[Any], DAGNode | None]] = []
_HOOKS: dict[str, Callable[..., Any]] = {}


def register_converter(converter: Callable[[Any], DAGNode | None]) -> None:
    """Accept foreign DAG objects (Ray DAG nodes): ``converter`` returns a node or None."""
    if converter not in _CONVERTERS:
        _CONVERTERS.append(converter)


def register_hook(name: str, func: Callable[..., Any]) -> None:
    """Let a higher layer serve ``TaskNode.run`` / ``run_async`` (the workflow facade does)."""
    _HOOKS[name] = func


def _hook(name: str) -> Callable[..., Any]:
    if name not in _HOOKS:
        raise RuntimeError("import durableflow.workflow to run nodes with .run()")
    return _HOOKS[name]


def as_node(obj: Any) -> DAGNode | None:
    """``obj`` as a DAG node (converting foreign nodes), or None if it is a plain value."""
    if isinstance(obj, DAGNode):
        return obj
    for convert in _CONVERTERS:
        node = convert(obj)
        if node is not None:
            return node
    return None


def map_values(value: Any, fn: Callable[[Any], Any]) -> Any:
    """Apply ``fn`` to every leaf of nested lists, tuples, dicts and sets in ``value``.

    ``fn`` returns the replacement of a leaf (a leaf is anything but those containers).
    """
    kind = type(value)
    if kind is tuple:
        return tuple([map_values(v, fn) for v in value]) if value else value
    if kind is list:
        return [map_values(v, fn) for v in value]
    if kind is dict:
        return {k: map_values(v, fn) for k, v in value.items()} if value else {}
    if kind in (set, frozenset):
        return kind(map_values(v, fn) for v in value)
    return fn(value)


def resolve_refs(
    args: tuple[Any, ...], kwargs: dict[str, Any], lookup: Callable[[str], Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Replace every TaskRef in the arguments with ``lookup(task_id)``."""

    def leaf(v: Any) -> Any:
        return lookup(v.task_id) if isinstance(v, TaskRef) else v

    return map_values(args, leaf), map_values(kwargs, leaf)


_MOVED = ("IdAllocator", "execute", "flatten")


def __getattr__(name: str) -> Any:
    """The names of :mod:`durableflow.model.flatten`, re-exported.

    Imported on first use: that module imports this one.
    """
    if name in _MOVED:
        return getattr(importlib.import_module("durableflow.model.flatten"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
