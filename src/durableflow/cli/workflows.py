"""Workflow commands that only read (through the Reader): list, status, show, output, metadata."""

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
    fail,
    fmt_duration,
    fmt_time,
    one_line,
    parse_seconds,
    pass_state,
)
from durableflow.model.info import running_duration
from durableflow.model.status import ACTIVE, WorkflowStatus

__all__ = [
    "list_workflows",
    "metadata",
    "output",
    "print_value",
    "show",
    "status",
    "status_counts",
]

_STATUS = click.Choice([s.value for s in WorkflowStatus], case_sensitive=False)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


DEFAULT_LIMIT = 50
"""Rows ``durableflow list`` shows without ``--limit`` or ``--all``."""


@click.command("list")
@click.option(
    "--status", "statuses", type=_STATUS, multiple=True, help="Only this status (repeatable)."
)
@click.option(
    "--since",
    callback=parse_seconds,
    metavar="DURATION",
    help="Only workflows created within this long (30s, 5m, 2h, 1d).",
)
@click.option("--prefix", metavar="TEXT", help="Only ids that start with TEXT.")
@click.option(
    "--name", metavar="NAME", help="Only runs whose root task is NAME (or ends in .NAME)."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help=f"The N most recent (default {DEFAULT_LIMIT}; with --short: the first N by id).",
)
@click.option("--all", "show_all", is_flag=True, help="Every workflow, not only the most recent.")
@click.option(
    "--short",
    is_flag=True,
    help="Only ids and statuses, by id: reads no run record of a finished workflow "
    "(fast on a big storage).",
)
@_json_option
@pass_state
def list_workflows(
    state: CliState,
    statuses: tuple[str, ...],
    since: float | None,
    prefix: str | None,
    name: str | None,
    limit: int | None,
    show_all: bool,
    short: bool,
    as_json: bool,
) -> None:
    """List workflows, newest first: id, status, root task, start, end, duration.

    The 50 most recent by default (``--limit N``, ``--all``).

    One pass over the status index, then one run record read per workflow (for its times:
    no index holds them); no metadata, environment or lease is read for a finished workflow.
    ``--short`` lists ids and statuses by id and reads no run record of a finished workflow.
    ``--name`` reads each candidate's run record and root task spec.
    """
    reader = state.reader()
    if limit is None and not show_all and not short:
        limit = DEFAULT_LIMIT
    found, more = reader.list_workflows(
        set(statuses) or None,
        prefix=prefix,
        since=None if since is None else time.time() - since,
        limit=None if name is not None else limit,
        newest_first=not short,
    )
    if name is not None:  # the root task's name: the bulk calls' filter, then --limit
        matched = reader.list_filtered(set(statuses) or None, prefix=prefix, name=name)
        named = {workflow_id for workflow_id, _ in matched}
        found = [summary for summary in found if summary.workflow_id in named][:limit]
    caption = f"{len(found)} workflow(s) in {reader.url}"
    if more is not None and not short:
        caption += f", the {len(found)} most recent (--limit N or --all for more)"
    if short:
        if as_json:
            echo_json([{"workflow_id": r.workflow_id, "status": r.status.value} for r in found])
            return
        table = Table("WORKFLOW ID", "STATUS", caption=caption)
        for summary in found:
            table.add(summary.workflow_id, summary.status.value)
        table.print()
        return
    rows = [summary.to_json() for summary in found]
    if as_json:
        echo_json(rows)
        return
    table = Table("WORKFLOW ID", "STATUS", "ROOT TASK", "START", "END", "DURATION", caption=caption)
    for r in rows:
        table.add(
            r["workflow_id"],
            r["status"],
            r["root_task_id"] or "-",
            fmt_time(r["start_time"]),
            fmt_time(r["end_time"]),
            fmt_duration(r["duration"]),
        )
    table.print()


@click.command()
@click.argument("workflow_id")
@_json_option
@pass_state
def status(state: CliState, workflow_id: str, as_json: bool) -> None:
    """Print a workflow's status."""
    value = state.reader().get_status(workflow_id).value
    if as_json:
        echo_json({"workflow_id": workflow_id, "status": value})
    else:
        click.echo(value)


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


PREVIEW_CHARS = 10_000
"""Characters of an output printed without ``--full``."""


def _preview(value: Any, limit: int) -> tuple[str, str]:
    """The text shown for ``value`` cut to ``limit`` characters, and what was left out ("").

    A str prints as itself, anything else as its ``repr``. bytes are cut before ``repr`` so a
    200 MB value is not turned into 600 MB of text just to print 10,000 characters of it.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = memoryview(value)[:limit].tobytes()
        text = repr(data)
        if len(value) <= limit and len(text) <= limit:
            return text, ""
        return text[:limit], f"the output is {memoryview(value).nbytes:,} bytes"
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text, ""
    return text[:limit], f"{len(text) - limit:,} more characters"


def _write_value(value: Any, path: str, as_json: bool) -> int:
    """Write ``value`` to ``path`` (bytes raw, a str as UTF-8, else JSON or repr); bytes written."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, str) and not as_json:
        data = value.encode()
    else:
        data = (_json_text(value) if as_json else repr(value)).encode() + b"\n"
    with open(path, "wb") as handle:
        handle.write(data)
    return len(data)


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, indent=2)
    except (TypeError, ValueError):
        raise fail(
            f"the output is a {type(value).__name__}, which is not JSON-serializable; "
            "omit --json to print its repr"
        ) from None


def print_value(value: Any, as_json: bool, *, full: bool = False, hint: str = "") -> None:
    """Print an output: JSON, or its text (a str) or ``repr``, cut to PREVIEW_CHARS unless full."""
    if as_json:
        click.echo(_json_text(value))
        return
    if full:
        click.echo(value if isinstance(value, str) else repr(value))
        return
    text, left_out = _preview(value, PREVIEW_CHARS)
    click.echo(text)
    if left_out:
        click.echo(f"… ({left_out}; {hint})", err=True)


@click.command()
@click.argument("workflow_id")
@click.option(
    "--task", "task_id", metavar="TASK_ID", help="One task's output instead of the workflow's."
)
@click.option("--wait", is_flag=True, help="Wait for a running workflow to finish.")
@click.option(
    "--timeout",
    callback=parse_seconds,
    metavar="DURATION",
    help="With --wait: give up after this long.",
)
@click.option(
    "--full",
    is_flag=True,
    help=f"Print all of a long output (by default the first {PREVIEW_CHARS:,} characters).",
)
@click.option(
    "--out",
    "out_path",
    metavar="FILE",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the output to FILE instead of printing it: bytes as they are, a str as "
    "UTF-8 text, anything else as its repr (as JSON with --json). Not a pickle.",
)
@_json_option
@pass_state
def output(
    state: CliState,
    workflow_id: str,
    task_id: str | None,
    wait: bool,
    timeout: float | None,
    full: bool,
    out_path: str | None,
    as_json: bool,
) -> None:
    """Print a workflow's output (or one task's): a str as is, anything else as its repr.

    Long outputs are cut to their first 10,000 characters; --full prints all, --out FILE
    writes it to a file.
    """
    reader = state.reader()
    try:
        value = reader.get_output(workflow_id, task_id=task_id, timeout=(timeout if wait else 0.0))
    except TimeoutError:
        current = reader.get_status(workflow_id).value
        hint = "" if wait else "; pass --wait to wait for it"
        raise fail(f"workflow {workflow_id!r} is {current} and has no output yet{hint}") from None
    if out_path is not None:
        size = _write_value(value, out_path, as_json)
        click.echo(f"wrote {size:,} bytes to {out_path}", err=True)
        return
    print_value(value, as_json, full=full, hint="--full to print all, --out FILE to write it")


@click.command()
@click.argument("workflow_id")
@click.option("--task", "task_id", metavar="TASK_ID", help="One task's metadata.")
@_json_option
@pass_state
def metadata(state: CliState, workflow_id: str, task_id: str | None, as_json: bool) -> None:
    """Print a workflow's (or a task's) metadata as JSON: status, metadata, stats, environment."""
    echo_json(state.reader().get_metadata(workflow_id, task_id))


def _restart_line(restart: dict[str, Any]) -> str:
    """One line of an in-place restart: when, from which tasks, what ran again, its status."""
    when = restart.get("at")
    text = f"{fmt_time(when) if isinstance(when, (int, float)) else '-'} from "
    text += ", ".join(map(str, restart.get("from") or []))
    text += f" ({len(restart.get('rerun') or [])} task(s) set aside; was {restart.get('status')})"
    return text
