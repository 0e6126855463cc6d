"""``durableflow show``: a workflow's header, its task table, and ``--watch`` (through the Reader).

The header (status, times, metadata, environment, error, fork, restarts, trace id), the task
table (a summary line and the tasks that are not SUCCESSFUL past ``FANOUT_ROWS`` tasks, deep
continuations drawn with capped indentation), and the live frame of ``--watch``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from durableflow import telemetry
from durableflow.cli._common import (
    CliState,
    Table,
    echo_json,
    fmt_duration,
    fmt_time,
    one_line,
    pass_state,
)
from durableflow.model.info import running_duration
from durableflow.model.status import ACTIVE

__all__ = ["show", "status_counts"]

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _env_summary(env: dict[str, Any]) -> str:
    if not env:
        return "not recorded"
    return (
        f"Python {env.get('python')} ({env.get('implementation')}, {env.get('platform')}), "
        f"durableflow {env.get('durableflow')}, {len(env.get('packages') or {})} packages, "
        f"{len(env.get('functions') or {})} task function(s) fingerprinted"
    )


FANOUT_ROWS = 40
"""Tasks ``durableflow show`` lists one per row; a bigger workflow gets a summary line and
only its tasks that are not SUCCESSFUL (``--all-tasks``: every row)."""
MAX_INDENT = 6
"""Continuation depth drawn as indentation; deeper tasks say their depth instead."""
WATCH_RUNNING_ROWS = 20
"""RUNNING tasks ``--watch`` lists (the others are counted)."""
_DONE = frozenset({"SUCCESSFUL", "NOT_CHECKPOINTED"})
# The order tasks that need a look are listed in: the trouble first.
_URGENCY = {
    "FAILED": 0,
    "RETRYING": 1,
    "RUNNING": 2,
    "CANCELED": 3,
    "CONTINUED": 4,
    "PENDING": 5,
    "SKIPPED": 6,
}


@click.command()
@click.argument("workflow_id")
@click.option(
    "--watch",
    "-w",
    is_flag=True,
    help="Refresh every second while the workflow is RUNNING or PENDING: how many tasks are "
    "done and which run, then the final view.",
)
@click.option(
    "--all-tasks",
    is_flag=True,
    help=f"List every task, also in a workflow of more than {FANOUT_ROWS} tasks (by default "
    "a summary line and the tasks that are not SUCCESSFUL).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="With --watch: seconds between two refreshes.",
)
@_json_option
@pass_state
def show(
    state: CliState,
    workflow_id: str,
    watch: bool,
    all_tasks: bool,
    interval: float,
    as_json: bool,
) -> None:
    """Show a workflow: status, times, metadata, environment, and its task table.

    A workflow of more than 40 tasks shows a summary line (tasks per status) and lists only the
    tasks that are not SUCCESSFUL; ``--all-tasks`` lists them all. ``--watch`` follows a
    RUNNING or PENDING workflow live (``n of N done``, the RUNNING tasks) until it ends.
    """
    reader = state.reader()
    if watch and as_json:
        raise click.UsageError("--watch and --json do not go together")
    if watch:
        _watch(reader, workflow_id, interval)
    meta = reader.get_metadata(workflow_id)
    tasks = [task.to_row() for task in reader.list_tasks(workflow_id)]
    if as_json:
        echo_json({**meta, "tasks": tasks})
        return
    lines = _header_lines(workflow_id, meta)
    traces = telemetry.read_traces(reader.storage, workflow_id)
    if traces:
        earlier = (
            f" (run {len(traces)}; earlier runs have their own traces)" if len(traces) > 1 else ""
        )
        lines.append(f"trace        {traces[-1]['trace_id']}{earlier}")
    click.echo("\n".join(lines))
    _task_table(tasks, all_tasks)


def _header_lines(workflow_id: str, meta: dict[str, Any]) -> list[str]:
    stats, status = meta["stats"], meta["status"]
    took = running_duration(stats.get("start_time"), stats.get("end_time"), status)
    lines = [
        f"workflow     {workflow_id}",
        f"status       {meta['status']}",
        f"created      {fmt_time(stats.get('created_at'))}",
        f"started      {fmt_time(stats.get('start_time'))}",
        f"ended        {fmt_time(stats.get('end_time'))}",
        f"duration     {fmt_duration(took)}",
        f"environment  {_env_summary(meta.get('runtime_env') or {})}",
    ]
    if meta.get("user_metadata"):
        lines.append(f"metadata     {json.dumps(meta['user_metadata'])}")
    if meta.get("error"):
        error = meta["error"]
        lines.append(
            f"error        {error['type'].rpartition('.')[2]}: "
            f"{one_line(Exception(error['message']))}"
            + (f" (task {error['task_id']})" if error.get("task_id") else "")
        )
    if meta.get("forked_from"):
        source = meta["forked_from"]
        lines.append(
            f"forked from  {source['workflow_id']}"
            + (f" (from task {source['from_task']})" if source.get("from_task") else "")
        )
    for n, restart in enumerate(meta.get("restarts") or (), start=1):
        lines.append(f"restart {n:<4} {_restart_line(restart)}")
    return lines


def status_counts(tasks: list[dict[str, Any]]) -> str:
    """``3 of 200 done: 195 PENDING, 3 SUCCESSFUL, 2 RUNNING`` (by count, largest first)."""
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    done = sum(n for status, n in counts.items() if status in _DONE)
    parts = ", ".join(
        f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return f"{done} of {len(tasks)} done" + (f": {parts}" if parts else "")


def _task_cell(t: dict[str, Any]) -> str:
    depth: int = t["depth"]
    task_id = str(t["task_id"])
    if not depth:
        return task_id
    if depth > MAX_INDENT:
        return "  " * MAX_INDENT + f"└[{depth}] " + task_id
    return "  " * depth + "└ " + task_id


def _task_table(tasks: list[dict[str, Any]], all_tasks: bool) -> None:
    shown = tasks
    caption = f"{len(tasks)} task(s)"
    if len(tasks) > FANOUT_ROWS and not all_tasks:
        unfinished = [t for t in tasks if t["status"] not in _DONE]
        unfinished.sort(key=lambda t: _URGENCY.get(t["status"], 9))
        shown = unfinished[:FANOUT_ROWS]
        click.echo(f"tasks        {status_counts(tasks)}")
        caption = (
            f"{len(shown)} of {len(tasks)} task(s) listed: the ones not SUCCESSFUL"
            + (
                f", the first {FANOUT_ROWS} of {len(unfinished)}"
                if len(unfinished) > len(shown)
                else ""
            )
            + " (--all-tasks to list every task)"
        )
        if not shown:
            click.echo(f"every task is done (--all-tasks to list all {len(tasks)})")
            return
    table = Table("TASK ID", "STATUS", "ATTEMPTS", "START", "DURATION", "ERROR", caption=caption)
    for t in shown:
        table.add(
            _task_cell(t),
            t["status"],
            t["attempts"],
            fmt_time(t["start_time"]),
            fmt_duration(t["duration"]),
            t["error"] or "",
        )
    table.print()


def _watch_frame(workflow_id: str, status: str, tasks: list[dict[str, Any]]) -> list[str]:
    """What one refresh of ``--watch`` shows: progress, then the RUNNING and failing tasks."""
    now = time.time()
    lines = [f"workflow {workflow_id}  {status}  {status_counts(tasks)}"]
    running = [t for t in tasks if t["status"] == "RUNNING"]
    for t in running[:WATCH_RUNNING_ROWS]:
        since = t["start_time"]
        took = "" if since is None else f"  running {fmt_duration(now - since)}"
        attempt = f"  attempt {t['attempts']}" if t["attempts"] and t["attempts"] > 1 else ""
        lines.append(f"  RUNNING   {t['task_id']}{attempt}{took}")
    if len(running) > WATCH_RUNNING_ROWS:
        lines.append(f"  ... and {len(running) - WATCH_RUNNING_ROWS} more RUNNING")
    for t in tasks:
        if t["status"] in ("RETRYING", "FAILED"):
            lines.append(f"  {t['status']:<9} {t['task_id']}  {t['error'] or ''}".rstrip())
    return lines


def _watch(reader: Any, workflow_id: str, interval: float) -> None:
    """Refresh until the workflow is no longer RUNNING or PENDING (the caller then shows it).

    On a terminal the frame is redrawn in place; elsewhere a frame is printed when it changes.
    """
    tty = sys.stdout.isatty()
    last: list[str] | None = None
    while True:
        status = reader.get_status(workflow_id)
        if status not in ACTIVE:
            if tty and last is not None:
                click.echo(_CLEAR, nl=False)
            return
        tasks = [task.to_row() for task in reader.list_tasks(workflow_id)]
        frame = _watch_frame(workflow_id, status.value, tasks)
        if tty:
            click.echo(_CLEAR + "\n".join(frame))
        elif frame != last:
            click.echo("\n".join(frame))
        last = frame
        time.sleep(interval)


_CLEAR = "\x1b[H\x1b[2J"
"""Cursor home, clear the screen: a terminal redraws the watch frame in place."""


def _restart_line(restart: dict[str, Any]) -> str:
    """One line of an in-place restart: when, from which tasks, what ran again, its status."""
    when = restart.get("at")
    text = f"{fmt_time(when) if isinstance(when, (int, float)) else '-'} from "
    text += ", ".join(map(str, restart.get("from") or []))
    text += f" ({len(restart.get('rerun') or [])} task(s) set aside; was {restart.get('status')})"
    return text
