"""Layouts of the workflow page's two drawings, computed in Python; templates draw the SVG.

DAG: tasks in columns by the longest path from a source (``upstream`` edges); a continuation's
tasks go after their parent (a dashed edge from the parent to each of the continuation's
sources). Above :data:`DAG_TASK_LIMIT` tasks, the nodes of a column that share a name and a
status are drawn as one node ``name xN`` so that a 10,000-task fan-out stays one drawing.

Timeline (Gantt): one row per task, one bar per attempt on a common time axis, the bar's
class its outcome; a RUNNING attempt's bar ends at ``now`` (it grows on every refresh). Up to
:data:`TIMELINE_TASK_LIMIT` tasks are drawn; the page says how many were left out.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

from durableflow.model.attempts import ObservedTaskStatus
from durableflow.model.info import TaskInfo

__all__ = [
    "DAG_TASK_LIMIT",
    "TIMELINE_TASK_LIMIT",
    "Bar",
    "Dag",
    "DagTask",
    "Edge",
    "Node",
    "Timeline",
    "attempts_of",
    "layout_dag",
    "layout_timeline",
]

DAG_TASK_LIMIT = 300
TIMELINE_TASK_LIMIT = 300

NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD = 180, 30, 60, 12, 10


@dataclasses.dataclass(frozen=True)
class Node:
    """One drawn node: a task, or a group of ``count`` tasks."""

    key: str
    task_id: str | None
    """The task (None for a group)."""
    label: str
    status: str
    count: int
    x: float
    y: float
    w: float = NODE_W
    h: float = NODE_H


@dataclasses.dataclass(frozen=True)
class Edge:
    """A line from the right of one node to the left of another."""

    x1: float
    y1: float
    x2: float
    y2: float
    continuation: bool

    @property
    def path(self) -> str:
        """The SVG path (a horizontal S curve)."""
        mid = (self.x1 + self.x2) / 2
        return (
            f"M{self.x1:.1f},{self.y1:.1f} C{mid:.1f},{self.y1:.1f} "
            f"{mid:.1f},{self.y2:.1f} {self.x2:.1f},{self.y2:.1f}"
        )


@dataclasses.dataclass(frozen=True)
class Dag:
    """A laid-out DAG."""

    nodes: list[Node]
    edges: list[Edge]
    width: float
    height: float
    grouped: bool


class DagTask(Protocol):
    """What the DAG's layout reads of a task (a :class:`TaskInfo` has it)."""

    @property
    def task_id(self) -> str:
        """The task's id."""

    @property
    def name(self) -> str:
        """Its name (nodes of a big DAG are grouped by it)."""

    @property
    def parent(self) -> str | None:
        """The task whose continuation it belongs to."""

    @property
    def status(self) -> ObservedTaskStatus:
        """Its status (the node's colour)."""


def _short(text: str, size: int = 24) -> str:
    return text if len(text) <= size else "…" + text[-(size - 1) :]


def layout_dag(tasks: Sequence[DagTask], upstream: dict[str, tuple[str, ...]]) -> Dag:
    """Columns by longest path; continuations after their parent; big DAGs grouped."""
    known = {t.task_id for t in tasks}
    preds: dict[str, list[tuple[str, bool]]] = {}
    # list_tasks gives tasks upstream first (a continuation's right under its parent), so one
    # pass in that order sees every predecessor's column first. Most tasks of a big DAG have
    # no predecessor (a fan-out's sources): they cost a lookup each, no list.
    column: dict[str, int] = {}
    grouped = len(tasks) > DAG_TASK_LIMIT
    members: dict[str, list[DagTask]] = defaultdict(list)
    key_of: dict[str, str] = {}
    order: list[str] = []
    for task in tasks:
        task_id = task.task_id
        ups = upstream.get(task_id)
        inside = [(u, False) for u in ups if u in known] if ups else []
        if not inside and task.parent is not None and task.parent in known:
            inside.append((task.parent, True))
        col = 0
        if inside:
            preds[task_id] = inside
            col = 1 + max((column.get(p, -1) for p, _ in inside), default=-1)
        column[task_id] = col
        key = f"{col}|{task.name}|{task.status.value}" if grouped else task_id
        key_of[task_id] = key
        if key not in members:
            order.append(key)
        members[key].append(task)
    rows_in: dict[int, int] = defaultdict(int)
    nodes: dict[str, Node] = {}
    for key in order:
        group = members[key]
        first = group[0]
        c = column[first.task_id]
        r = rows_in[c]
        rows_in[c] += 1
        label = first.task_id if not grouped or len(group) == 1 else first.name.rsplit(".", 1)[-1]
        nodes[key] = Node(
            key=key,
            task_id=first.task_id if len(group) == 1 else None,
            label=_short(label) + (f" \u00d7{len(group)}" if len(group) > 1 else ""),
            status=first.status.value,
            count=len(group),
            x=PAD + c * (NODE_W + COL_GAP),
            y=PAD + r * (NODE_H + ROW_GAP),
        )
    edges: dict[tuple[str, str], Edge] = {}
    for task_id, inside in preds.items():
        dst = nodes[key_of[task_id]]
        for pred, cont in inside:
            src = nodes[key_of[pred]]
            if src.key == dst.key or (src.key, dst.key) in edges:
                continue
            edges[(src.key, dst.key)] = Edge(
                src.x + src.w, src.y + src.h / 2, dst.x, dst.y + dst.h / 2, cont
            )
    columns = max(column.values(), default=-1) + 1
    height = max(rows_in.values(), default=0)
    return Dag(
        nodes=list(nodes.values()),
        edges=list(edges.values()),
        width=PAD * 2 + max(columns, 1) * (NODE_W + COL_GAP) - COL_GAP,
        height=PAD * 2 + max(height, 1) * (NODE_H + ROW_GAP) - ROW_GAP,
        grouped=grouped,
    )


@dataclasses.dataclass(frozen=True)
class Bar:
    """One attempt of one task on the time axis."""

    task_id: str
    attempt: int | None
    outcome: str
    start: float
    end: float | None
    x: float
    y: float
    w: float
    h: float
    title: str


@dataclasses.dataclass(frozen=True)
class Timeline:
    """A laid-out timeline."""

    bars: list[Bar]
    labels: list[tuple[str, float]]
    """Each drawn task's id and its row's y."""
    ticks: list[tuple[float, str]]
    """x of each axis tick and its label (seconds from the first start)."""
    width: float
    height: float
    shown: int
    total: int


def attempts_of(task: TaskInfo) -> list[dict[str, Any]]:
    """Every attempt known for a task, oldest first: ``attempt, start, end, outcome, host, pid``.

    In order, each attempt once (a later source replaces an earlier one of the same number):

    1. ``task.history``, the earlier attempts the read model knows (the attempt record's
       ``previous``, and the record's own attempt when a later, short attempt that ended with
       a checkpoint wrote none);
    2. ``task.last_attempt``, the latest attempt's record, when it has one;
    3. the latest attempt, from the task's view (its outcome is the task's).

    An earlier attempt whose record still says RUNNING never ended: it was lost.
    """
    last = task.last_attempt
    by_number: dict[int | None, dict[str, Any]] = {}
    for old in (*task.history, *((last.summary(),) if last else ())):  # 1, 2
        if isinstance(old, dict) and old.get("start") is not None:
            state = str(old.get("state", "FAILED"))
            by_number[old.get("attempt")] = {
                "attempt": old.get("attempt"),
                "start": float(old["start"]),
                "end": None if old.get("end") is None else float(old["end"]),
                "outcome": "LOST" if state == "RUNNING" else state,
                "host": old.get("host"),
                "pid": old.get("pid"),
                "error": old.get("error"),
            }
    if task.start_time is not None:  # 3
        by_number[task.attempts or None] = {
            "attempt": task.attempts or None,
            "start": task.start_time,
            "end": task.end_time,
            "outcome": _outcome(task),
            "host": last.host if last else None,
            "pid": last.pid if last else None,
            "error": task.error_summary,
        }
    return sorted(by_number.values(), key=lambda a: (a["attempt"] is None, a["attempt"] or 0))


def _outcome(task: TaskInfo) -> str:
    """The outcome of a task's latest attempt."""
    if task.status.value == "RUNNING":
        return "RUNNING"
    if task.status.value in ("SUCCESSFUL", "NOT_CHECKPOINTED"):
        return "SUCCESSFUL"
    if task.status.value == "CONTINUED":
        return "CONTINUED"
    if task.lost:
        return "LOST"
    if task.error is not None:
        return "FAILED"
    return task.status.value


def _nice_step(span: float) -> float:
    raw = span / 8 if span > 0 else 1.0
    exp = float(10.0 ** math.floor(math.log10(raw)))
    for mult in (1, 2, 5, 10):
        if raw <= mult * exp:
            return mult * exp
    return 10 * exp


def layout_timeline(
    tasks: list[TaskInfo],
    now: float,
    width: float = 900,
    *,
    started: int | None = None,
) -> Timeline:
    """One bar per attempt (see :func:`attempts_of`); RUNNING bars end at ``now``.

    ``started``: how many tasks of the workflow started, when ``tasks`` are its first ones
    only (default: those of ``tasks``).
    """
    label_w, row_h, bar_h, top = 200.0, 22.0, 14.0, 24.0
    drawn = [t for t in tasks if t.start_time is not None][:TIMELINE_TASK_LIMIT]
    total = sum(1 for t in tasks if t.start_time is not None) if started is None else started
    per_task = [(t, attempts_of(t)) for t in drawn]
    starts = [a["start"] for _, found in per_task for a in found]
    ends = [a["end"] if a["end"] is not None else now for _, found in per_task for a in found]
    t0 = min(starts, default=now)
    t1 = max(ends + starts, default=now)
    span = max(t1 - t0, 1e-3)
    scale = (width - label_w - 10) / span
    bars: list[Bar] = []
    labels: list[tuple[str, float]] = []
    for row, (task, found) in enumerate(per_task):
        y = top + row * row_h
        labels.append((task.task_id, y + bar_h - 2))
        for a in found:
            end = a["end"] if a["end"] is not None else (now if a["outcome"] == "RUNNING" else None)
            x = label_w + (a["start"] - t0) * scale
            w = max(2.0, ((end if end is not None else a["start"]) - a["start"]) * scale)
            took = f"{end - a['start']:.3f} s" if end is not None else "no end recorded"
            title = f"{task.task_id} attempt {a['attempt'] or '?'}: {a['outcome']}, {took}"
            bars.append(
                Bar(
                    task.task_id, a["attempt"], a["outcome"], a["start"], end, x, y, w, bar_h, title
                )
            )
    step = _nice_step(span)
    ticks = []
    k = 0
    while k * step <= span + 1e-9 and k < 50:
        ticks.append((label_w + k * step * scale, f"{k * step:g}s"))
        k += 1
    return Timeline(
        bars=bars,
        labels=labels,
        ticks=ticks,
        width=width,
        height=top + max(len(per_task), 1) * row_h + 4,
        shown=len(per_task),
        total=total,
    )
