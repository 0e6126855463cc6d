"""Flattening a DAG into task specs, with deterministic task ids; running one without storage.

:func:`flatten` walks a DAG (built from the nodes of :mod:`durableflow.model.dag`) upstream
first and yields one :class:`~durableflow.model.dag.TaskSpec` per distinct node, with every
upstream node in the arguments replaced by a :class:`~durableflow.model.dag.TaskRef` and every
``InputNode`` by the run's input. :class:`IdAllocator` hands out the task ids; :func:`execute`
runs a DAG in this process (``TaskNode.execute``). The node and spec types stay in
:mod:`durableflow.model.dag` (stored pickles name them there), which re-exports these names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from durableflow.model.dag import (
    Continuation,
    DAGNode,
    FlatDAG,
    InputAttributeNode,
    InputNode,
    TaskNode,
    TaskRef,
    TaskSpec,
    WorkflowRef,
    as_node,
    map_values,
    resolve_refs,
)
from durableflow.model.ids import validate_task_id

__all__ = ["IdAllocator", "execute", "flatten"]


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
