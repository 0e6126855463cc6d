"""DAG nodes, and turning a DAG into task specs with deterministic task ids.

A DAG is built with ``TaskFunction.bind``; nothing runs until it is given to ``run``.
:func:`flatten` walks it upstream first and yields one :class:`TaskSpec` per distinct node,
with every upstream node in the arguments replaced by a :class:`TaskRef` placeholder and every
``InputNode`` by the run's input. Specs are what storage keeps, so a different process can
resume the workflow from them alone.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from durableflow.model.ids import validate_task_id
from durableflow.model.task import TaskOptions

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


class IdAllocator:
    """Hands out unique task ids: a base name, then ``_1``, ``_2``... for later duplicates."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._taken = set(taken)
        self._next: dict[str, int] = {}

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._taken

    def allocate(self, base: str) -> str:
        """A free id derived from ``base``, now taken."""
        if base not in self._taken:
            self._taken.add(base)
            return base
        n = self._next.get(base, 1)
        while f"{base}_{n}" in self._taken:
            n += 1
        self._next[base] = n + 1
        candidate = f"{base}_{n}"
        self._taken.add(candidate)
        return candidate


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


def flatten(
    root: Any,
    *,
    inputs: tuple[tuple[Any, ...], Mapping[str, Any]] = ((), {}),
    ids: IdAllocator | None = None,
) -> FlatDAG:
    """Turn the DAG ending in ``root`` into specs, upstream first.

    A node that appears several times is one task. Task ids are deterministic for a given
    DAG: the explicit ``task_id`` or :func:`default_task_id`, suffixed ``_1``, ``_2``... in this
    order when taken. A :class:`WorkflowRef` argument becomes a ``TaskRef`` to the task it
    names: with ``ids`` given (a continuation), a task taken already (by ``ids``, or by a node
    flattened before); without, a task of this DAG or one listed in ``FlatDAG.outside``.

    Raises:
        TypeError: ``root`` is not a task node, or the input does not fit the DAG.
        ValueError: with ``ids``, a ``WorkflowRef`` names a task that does not exist (yet).
    """
    root_node = as_node(root)
    if not isinstance(root_node, TaskNode):
        raise TypeError(f"a workflow must end in a task node (from .bind()), got {root!r}")
    strict = ids is not None  # a continuation's refs must name tasks its workflow has
    ids = ids or IdAllocator()
    outside: dict[str, None] = {}
    in_args, in_kwargs = inputs
    assigned: dict[int, str] = {}
    keep_alive: list[DAGNode] = []  # id() keys stay valid while the nodes live
    specs: list[TaskSpec] = []

    def substitute(value: Any) -> Any:
        if isinstance(value, WorkflowRef):
            if value.task_id not in ids:
                if strict:
                    raise ValueError(
                        f"WorkflowRef({value.task_id!r}): no such task in this workflow (a "
                        "WorkflowRef names a task that ran earlier or is bound earlier in the DAG)"
                    )
                outside[value.task_id] = None
            return TaskRef(value.task_id)
        node = as_node(value)
        if node is None:
            return value
        if isinstance(node, TaskNode):
            return TaskRef(assigned[id(node)])
        if isinstance(node, InputAttributeNode):
            return node.resolve(in_args, in_kwargs)
        if isinstance(node, InputNode):
            if len(in_args) == 1 and not in_kwargs:
                return in_args[0]
            raise TypeError(
                "the DAG uses its InputNode as one value, so run() takes exactly one input "
                f"argument (got {len(in_args)} positional, {len(in_kwargs)} keyword); "
                "use inp[0] / inp['name'] for several"
            )
        raise TypeError(f"unsupported DAG node {node!r}")

    stack: list[tuple[TaskNode, bool]] = [(root_node, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in assigned:
            continue
        if not expanded:
            stack.append((node, True))
            children: list[TaskNode] = []
            _collect(node.args, children)
            _collect(node.kwargs, children)
            for child in reversed(children):
                keep_alive.append(child)
                if id(child) not in assigned:
                    stack.append((child, False))
            continue
        upstream: dict[str, None] = {}  # ordered and O(1) to test: a gather has 10,000s
        leaf = functools.partial(_substitute_leaf, substitute, upstream)
        args = map_values(node.args, leaf)
        kwargs = map_values(node.kwargs, leaf)
        task_id = validate_task_id(ids.allocate(node.task_options.task_id or node.name))
        assigned[id(node)] = task_id
        specs.append(TaskSpec(task_id, node.func, args, kwargs, node.task_options, tuple(upstream)))
    mine = set(assigned.values())
    return FlatDAG(
        assigned[id(root_node)], tuple(specs), tuple(t for t in outside if t not in mine)
    )


def _substitute_leaf(
    substitute: Callable[[Any], Any], upstream: dict[str, None], value: Any
) -> Any:
    out = substitute(value)
    if isinstance(out, TaskRef):
        upstream[out.task_id] = None
    return out


def _collect(value: Any, out: list[TaskNode]) -> None:
    def leaf(v: Any) -> Any:
        node = as_node(v)
        if isinstance(node, TaskNode):
            out.append(node)
        return v

    map_values(value, leaf)


def execute(root: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a DAG in this process without storage; continuations are followed."""
    flat = flatten(root, inputs=(args, kwargs))
    values: dict[str, Any] = {}
    for spec in flat.specs:
        call_args, call_kwargs = resolve_refs(spec.args, spec.kwargs, values.__getitem__)
        try:
            out = spec.func(*call_args, **call_kwargs)
            while isinstance(out, Continuation) or as_node(out) is not None:
                out = execute(out.node if isinstance(out, Continuation) else out)
        except Exception as err:
            if not spec.options.catch_exceptions:
                raise
            values[spec.task_id] = (None, err)
            continue
        values[spec.task_id] = (out, None) if spec.options.catch_exceptions else out
    return values[flat.root]
