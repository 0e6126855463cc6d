"""DAGs as flat data, so that a deep one can be pickled.

A :class:`~durableflow.model.dag.TaskNode` holds its upstream nodes in its arguments, so
pickling a chain of a few hundred tasks recurses past Python's limit. Where a DAG (not yet
flattened into specs) crosses processes — from a driver to the Ray coordinator, or a
continuation from a Ray worker back to it — it travels packed: a list of nodes upstream first,
each referring to the others by position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from durableflow.model.dag import TaskNode, map_values
from durableflow.model.task import TaskOptions

__all__ = ["PackedDAG", "pack", "unpack"]


@dataclasses.dataclass(frozen=True)
class _Slot:
    """Stands for the node at ``index`` in a :class:`PackedDAG`."""

    index: int


@dataclasses.dataclass(frozen=True)
class PackedDAG:
    """A DAG's nodes upstream first (the root last), nodes in arguments replaced by slots."""

    nodes: tuple[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], TaskOptions], ...]


def pack(root: TaskNode) -> PackedDAG:
    """``root`` and every node upstream of it as flat data; a shared node is packed once."""
    position: dict[int, int] = {}
    seen: list[TaskNode] = []  # keeps id() keys valid
    nodes: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], TaskOptions]] = []

    def slot(value: Any) -> Any:
        return _Slot(position[id(value)]) if isinstance(value, TaskNode) else value

    stack: list[tuple[TaskNode, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in position:
            continue
        if not expanded:
            stack.append((node, True))
            children = _children(node)
            stack.extend((c, False) for c in reversed(children) if id(c) not in position)
            continue
        nodes.append((node.func, map_values(node.args, slot), map_values(node.kwargs, slot),
                      node.task_options))  # fmt: skip
        position[id(node)] = len(nodes) - 1
        seen.append(node)
    return PackedDAG(tuple(nodes))


def _children(node: TaskNode) -> list[TaskNode]:
    found: list[TaskNode] = []

    def collect(value: Any) -> Any:
        if isinstance(value, TaskNode):
            found.append(value)
        return value

    map_values(node.args, collect)
    map_values(node.kwargs, collect)
    return found


def unpack(packed: PackedDAG) -> TaskNode:
    """The DAG :func:`pack` packed, rebuilt node by node; returns its root."""
    built: list[TaskNode] = []

    def node_of(value: Any) -> Any:
        return built[value.index] if isinstance(value, _Slot) else value

    for func, args, kwargs, options in packed.nodes:
        args, kwargs = map_values(args, node_of), map_values(kwargs, node_of)
        built.append(TaskNode(func, args, kwargs, options))
    return built[-1]
